"""`zoo cache rm` and `zoo cache prune`: what to delete, the bytes that frees, and deleting it.

Removing takes the model's pull and conversion locks without waiting and refuses while either is
held; pruning leaves alone what a running pull or conversion may still use. A Hub snapshot leaves
the Hugging Face cache through huggingface_hub's own delete strategy, and only when no other
model's receipt uses it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import cache, constants
from ..errors import CacheBusyError, InputError, OutputError
from ..registry import Entry
from ..sources import hf
from .inventory import (
    PARTIAL_SUFFIXES,
    children,
    files_under,
    hf_incomplete,
    is_temp,
    select,
    snapshot_of,
    temp_siblings,
)
from .records import Removal

RM_PARTS = ("archive", "raw", "converted")  # what `zoo cache rm` can be limited to


# --- removing -------------------------------------------------------------------------------------


def cache_remove(models: Iterable[str], parts: Iterable[str] = (), *, dry_run: bool = False) -> list[Removal]:
    """Remove the named parts ("archive", "raw", "converted"; default: everything) of each model.

    For a Hub model, "raw" is its snapshot in the Hugging Face cache, which leaves it (with the
    blobs no other revision uses) unless another model's receipt uses the same snapshot.
    Raises CacheBusyError while a pull or conversion of a model holds its lock.
    """
    chosen = set(parts) or set(RM_PARTS)
    if chosen - set(RM_PARTS):
        raise InputError(f"unknown part(s) {sorted(chosen - set(RM_PARTS))}; choose from {', '.join(RM_PARTS)}")
    out: list[Removal] = []
    for model_id, entry in list(select(models)):
        with _model_locks(model_id, hold=not dry_run) as (pull_free, convert_free):
            if not (pull_free and convert_free):
                raise CacheBusyError(
                    f"{model_id}: a {'pull' if not pull_free else 'conversion'} of this model is running"
                    " (it holds its lock); nothing was removed, try again when it has finished"
                )
            out += _remove_model(model_id, entry, chosen, dry_run=dry_run)
    return out


def _remove_model(model_id: str, entry: Entry | None, chosen: set[str], *, dry_run: bool) -> list[Removal]:
    p = cache.paths(model_id)
    receipt = cache.read_receipt(model_id)
    plan: list[tuple[str, Path, str]] = []
    if "archive" in chosen and p.download_dir.exists():
        plan.append(("archive", p.download_dir, "archives and partial downloads"))
    if "raw" in chosen and p.raw_dir.exists():
        plan.append(("raw", p.raw_dir, "extracted files"))
    if "converted" in chosen:
        plan += [("converted", x, "") for x in [p.converted_dir, *temp_siblings(p.converted_dir)] if x.exists()]
    if "raw" in chosen:  # a receipt describes the pulled files: it goes with them
        plan += [("metadata", x, "") for x in [p.receipt, *temp_siblings(p.receipt)] if x.exists()]
    if chosen == set(RM_PARTS):
        plan += [("metadata", x, "") for x in (p.lock_file, p.convert_lock_file) if x.exists()]
    hub = _hub_removal(model_id, entry, receipt) if "raw" in chosen else None
    removals = _freed(model_id, plan, hub)
    if not dry_run:
        for _, path, _ in plan:
            _delete(path)
        if hub is not None and hub.strategy is not None:
            try:
                hub.strategy.execute()
            except OSError as exc:
                raise OutputError(f"cannot remove {hub.snapshot} from the HF cache: {exc}") from None
    return removals


@dataclass(frozen=True)
class _HubRemoval:
    snapshot: Path
    strategy: Any  # huggingface_hub's DeleteCacheStrategy; None when the snapshot is kept
    note: str


def _hub_removal(model_id: str, entry: Entry | None, receipt: dict[str, Any] | None) -> _HubRemoval | None:
    """How a Hub model's snapshot leaves the HF cache: huggingface_hub's own delete strategy."""
    snapshot = snapshot_of(model_id, entry, receipt)
    if snapshot is None:
        return None
    others = [other for other in _receipt_users(snapshot) if other != model_id]
    if others:
        return _HubRemoval(snapshot, None, f"HF cache snapshot kept: {', '.join(others)} use it too")
    from huggingface_hub import scan_cache_dir

    try:
        strategy = scan_cache_dir(constants.hf_hub_cache()).delete_revisions(snapshot.name)
    except Exception as exc:  # huggingface_hub's CacheNotFound, CorruptedCacheException
        return _HubRemoval(snapshot, None, f"HF cache snapshot kept: cannot scan the HF cache ({exc})")
    repo = snapshot.parent.parent.name
    return _HubRemoval(snapshot, strategy, f"removed from the Hugging Face cache too: {repo} snapshot {snapshot.name}")


def _receipt_users(snapshot: Path) -> list[str]:
    """Model ids whose receipt points at this Hub snapshot."""
    users = []
    for path in children(constants.zoo_home() / "receipts"):
        data, _ = cache.load_json(path) if path.suffix == ".json" and not is_temp(path) else (None, None)
        if not isinstance(data, dict) or data.get("kind") != "hf" or data.get("commit") != snapshot.name:
            continue
        repo = data.get("repo")
        if isinstance(repo, str) and hf.repo_name_ok(repo) and hf.repo_folder(repo) == snapshot.parent.parent:
            users.append(path.name.removesuffix(".json"))
    return users


def _freed(model_id: str, plan: list[tuple[str, Path, str]], hub: _HubRemoval | None) -> list[Removal]:
    """A Removal per planned path, with the bytes it frees: inodes whose every link is removed."""
    targets = [(part, path, note, list(files_under(path))) for part, path, note in plan]
    if hub is not None:
        removed: list[Path] = []
        if hub.strategy is not None:
            for path in [*hub.strategy.repos, *hub.strategy.snapshots, *hub.strategy.blobs, *hub.strategy.refs]:
                removed += files_under(Path(path))
        targets.append(("snapshot", hub.snapshot, hub.note, removed))
    links: dict[tuple[int, int], int] = {}
    stats: dict[Path, os.stat_result] = {}
    for *_, files in targets:
        for file in files:
            try:
                st = file.lstat()
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and file not in stats:
                stats[file] = st
                links[(st.st_dev, st.st_ino)] = links.get((st.st_dev, st.st_ino), 0) + 1
    out: list[Removal] = []
    counted: set[tuple[int, int]] = set()
    for part, path, note, files in targets:
        size = 0
        for file in files:
            found = stats.get(file)
            if found is None:
                continue
            key = (found.st_dev, found.st_ino)
            if key not in counted and links[key] >= found.st_nlink:
                counted.add(key)
                size += found.st_size
        out.append(Removal(model_id, part, path, size, note))
    return out


# --- pruning --------------------------------------------------------------------------------------


def cache_prune(*, archives: bool = False, dry_run: bool = False) -> list[Removal]:
    """Remove what no complete model needs, leaving alone what a running pull or conversion uses.

    Partial downloads and temp files of pulls (when no pull of the model runs), temp directories
    of killed conversions and extractions and superseded raw versions (when no conversion runs
    either), receipts that cannot be read or whose files are gone, and the lock files of models
    with nothing else left. With `archives`, also archives whose extraction re-hashes equal to the
    receipt (a later `pull --force` downloads them again).
    """
    out: list[Removal] = []
    for model_id, entry in select(()):
        with _model_locks(model_id, hold=not dry_run) as (pull_free, convert_free):
            plan = _prune_plan(model_id, entry, pull_free, convert_free, archives=archives)
            out += _freed(model_id, plan, None)
            if not dry_run:
                for _, path, _ in plan:
                    _delete(path)
    leftovers = [("temp", path, "temp file of a killed write") for path in children(constants.zoo_home())]
    leftovers = [item for item in leftovers if is_temp(item[1])]
    out += _freed("-", leftovers, None)
    if not dry_run:
        for _, path, _ in leftovers:
            _delete(path)
    return out


def _prune_plan(
    model_id: str, entry: Entry | None, pull_free: bool, convert_free: bool, *, archives: bool
) -> list[tuple[str, Path, str]]:
    p = cache.paths(model_id)
    receipt = cache.read_receipt(model_id)
    plan: list[tuple[str, Path, str]] = []
    if pull_free:
        for path in children(p.download_dir):
            if path.name.endswith(PARTIAL_SUFFIXES):
                plan.append(("partial", path, "partial download; no pull is running"))
            elif is_temp(path):
                plan.append(("temp", path, "temp file of a killed pull"))
        plan += [("temp", path, "temp file of a killed pull") for path in temp_siblings(p.receipt)]
        plan += [("partial", path, "incomplete HF download") for path in hf_incomplete(entry, receipt)]
        if cache.load_json(p.receipt)[1] is not None:
            plan.append(("metadata", p.receipt, "unreadable receipt"))
        elif receipt is not None and not _receipt_has_files(model_id, entry, receipt):
            plan.append(("metadata", p.receipt, "orphaned receipt: its files are gone"))
    if pull_free and convert_free:
        current = cache.receipt_raw_dir(model_id, receipt)
        if current != p.raw_dir:
            for path in children(p.raw_dir):
                if path == current:
                    continue
                if is_temp(path):
                    plan.append(("temp", path, "temp directory of a killed extraction"))
                else:
                    plan.append(("stale", path, "superseded raw version: no receipt points to it"))
    if convert_free:
        plan += [("temp", x, "temp directory of a killed conversion") for x in temp_siblings(p.converted_dir)]
    if archives and pull_free:
        plan += [("archive", x, "archive of a verified extraction") for x in _verified_archives(model_id, receipt)]
    gone = {path for _, path, _ in plan}
    left = [x for x in _own_paths(model_id, entry, receipt) if x not in gone and not gone & set(x.parents)]
    if not left and pull_free and convert_free:
        plan += [("metadata", x, "orphaned lock") for x in (p.lock_file, p.convert_lock_file) if x.exists()]
        plan += [("metadata", x, "empty directory") for x in (p.download_dir, p.raw_dir) if x.is_dir()]
    return plan


def _verified_archives(model_id: str, receipt: dict[str, Any] | None) -> list[Path]:
    """Archives (with their records) whose sha256 is the receipt's and whose extraction re-hashes equal."""
    current = cache.receipt_raw_dir(model_id, receipt)
    files = (receipt or {}).get("files")
    if receipt is None or current is None or not isinstance(files, dict) or cache.compare_tree(current, files):
        return []
    out = []
    for path in children(cache.paths(model_id).download_dir):
        record_path = path.with_name(path.name + ".json")
        record, _ = cache.load_json(record_path)
        if path.is_file() and isinstance(record, dict) and record.get("sha256") == receipt.get("sha256"):
            out += [path, record_path]
    return out


def _own_paths(model_id: str, entry: Entry | None, receipt: dict[str, Any] | None) -> list[Path]:
    """Everything on disk for the model except its lock files and empty directories."""
    p = cache.paths(model_id)
    out = [*children(p.download_dir), *children(p.raw_dir), *temp_siblings(p.converted_dir)]
    out += [x for x in (p.converted_dir, p.receipt) if x.exists()]
    snapshot = snapshot_of(model_id, entry, receipt)
    return out + ([snapshot] if snapshot is not None else [])


def _receipt_has_files(model_id: str, entry: Entry | None, receipt: dict[str, Any]) -> bool:
    if receipt.get("kind") == "hf":
        return snapshot_of(model_id, entry, receipt) is not None
    return cache.receipt_raw_dir(model_id, receipt) is not None


# --- locks and deleting, for both -----------------------------------------------------------------


@contextlib.contextmanager
def _model_locks(model_id: str, *, hold: bool) -> Iterator[tuple[bool, bool]]:
    """(pull lock free, conversion lock free). With `hold`, the free ones are taken without waiting
    until the block ends, so no pull or conversion starts while files are deleted; without it (dry
    runs) nothing is taken and no lock file is created."""
    p = cache.paths(model_id)
    if not hold:
        yield not cache.lock_held(p.lock_file), not cache.lock_held(p.convert_lock_file)
        return
    with cache.try_locked(p.lock_file) as pull_free, cache.try_locked(p.convert_lock_file) as convert_free:
        yield pull_free, convert_free


def _delete(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            if not any(path.iterdir()):
                path.rmdir()
            else:
                shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise OutputError(f"cannot remove {path}: {exc.strerror or exc}") from None
