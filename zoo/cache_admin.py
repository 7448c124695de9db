"""The cache as a managed store: what each model holds on disk, removing it, pruning leftovers, re-hashing.

Everything here is computed from the disk at call time: a model's parts are found by looking
(downloads/, raw/, converted/, receipts/, locks/ under ZOO_HOME, and the model's snapshot in the
Hugging Face cache), its state by checking that the files its receipt and manifest list are there.
Sizes count each inode once (a converted Hub model hard-links the snapshot's blobs), so the parts
of a listing add up to the bytes on disk. Removing takes the model's pull and conversion locks
without waiting and refuses while either is held; pruning leaves alone what a running pull or
conversion may still use.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import cache, constants, manifest, sources
from .errors import BadResponseError, CacheBusyError, InputError, OutputError, UnknownModelError
from .registry import Entry, load_registry
from .sources import hf

PARTS = ("archive", "partial", "raw", "stale", "snapshot", "converted", "temp", "metadata")
RM_PARTS = ("archive", "raw", "converted")  # what `zoo cache rm` can be limited to
_PARTIAL_SUFFIXES = (".part", ".part.json")


@dataclass
class Part:
    """One kind of thing a model holds: its paths and the bytes they add to the disk."""

    part: str
    paths: list[Path] = field(default_factory=list)
    size_bytes: int = 0  # bytes of inodes not already counted for an earlier part
    linked_bytes: int = 0  # bytes of hard links to inodes counted for an earlier part
    files: int = 0
    last_modified: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "part": self.part,
            "paths": [str(p) for p in self.paths],
            "size_bytes": self.size_bytes,
            "linked_bytes": self.linked_bytes,
            "files": self.files,
            "last_modified": _iso(self.last_modified),
        }


@dataclass
class CacheEntry:
    """A model with something on disk (`registered` False: an id the registry does not list)."""

    id: str
    registered: bool
    kind: str | None
    state: dict[str, bool]
    parts: list[Part]

    @property
    def size_bytes(self) -> int:
        return sum(p.size_bytes for p in self.parts)

    @property
    def last_modified(self) -> float | None:
        return max((p.last_modified for p in self.parts if p.last_modified is not None), default=None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "registered": self.registered,
            "kind": self.kind,
            "state": self.state,
            "size_bytes": self.size_bytes,
            "last_modified": _iso(self.last_modified),
            "parts": [p.to_dict() for p in self.parts],
        }


@dataclass(frozen=True)
class Removal:
    """One thing `cache_remove` / `cache_prune` removed (or would remove, in a dry run)."""

    id: str  # "-" for files of the cache as a whole
    part: str
    path: Path
    size_bytes: int  # bytes freed on disk (an inode still linked elsewhere frees nothing)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "part": self.part,
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "note": self.note,
        }


@dataclass(frozen=True)
class Problem:
    """A file that does not match its record (changed, missing, extra, unreadable), or a corrupt record."""

    part: str
    path: Path
    kind: str
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"part": self.part, "path": str(self.path), "kind": self.kind, "detail": self.detail}

    def __str__(self) -> str:
        return f"{self.part}: {self.kind}: {self.path}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class CacheCheck:
    """`cache_verify` of one model: files checked per part, and every problem found."""

    id: str
    checked: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "ok": self.ok, "checked": self.checked, "problems": [p.to_dict() for p in self.problems]}


# --- state from disk ---------------------------------------------------------------------------


def converted_complete(directory: Path) -> bool:
    """A readable manifest, and every file it lists present with its recorded size (no hashing)."""
    try:
        files = manifest.read(directory)["files"]
        return isinstance(files, dict) and all((directory / r).stat().st_size == i["size"] for r, i in files.items())
    except (OSError, TypeError, KeyError, ValueError):  # FormatError is a ValueError
        return False


def entry_state(entry: Entry) -> dict[str, bool]:
    """pulled / converted / verified, from what is on disk now (the HF cache included).

    verified: the last `zoo verify` of the converted directory passed, and neither its files nor
    the pull (the receipt) changed since; the pulled source must still be there, as verify checks it.
    """
    found = sources.located(entry)
    p = cache.paths(entry.id)
    converted = converted_complete(p.converted_dir)
    report_path = p.converted_dir / manifest.VERIFY_REPORT_FILENAME
    report, _ = cache.load_json(report_path)
    verified = False
    if converted and found is not None and isinstance(report, dict) and report.get("ok") is True:
        newest = max(_mtimes([p.converted_dir, p.receipt], skip=report_path), default=0.0)
        with contextlib.suppress(OSError):
            verified = report_path.stat().st_mtime >= newest
    return {"pulled": found is not None, "converted": converted, "verified": verified}


def model_path(entry: Entry) -> Path | None:
    """The converted directory if complete, else the pulled files, else None."""
    converted = cache.paths(entry.id).converted_dir
    if converted_complete(converted):
        return converted
    found = sources.located(entry)
    return found[0] if found is not None else None


# --- listing -----------------------------------------------------------------------------------


def cache_list(models: Iterable[str] = ()) -> list[CacheEntry]:
    """Every model with something on disk (or the named ones), each part with its size."""
    sizer = _Sizer()
    return [_describe(model_id, entry, sizer) for model_id, entry in _select(models)]


def _describe(model_id: str, entry: Entry | None, sizer: _Sizer) -> CacheEntry:
    p = cache.paths(model_id)
    receipt = cache.read_receipt(model_id)
    groups: dict[str, list[Path]] = {name: [] for name in PARTS}
    for path in _children(p.download_dir):
        name = "temp" if _is_temp(path) else "partial" if path.name.endswith(_PARTIAL_SUFFIXES) else "archive"
        groups[name].append(path)
    current = _current_raw(model_id, receipt)
    if current is not None and current == p.raw_dir:  # written before raw directories were content-addressed
        groups["raw"].append(current)
    else:
        for path in _children(p.raw_dir):
            groups["temp" if _is_temp(path) else "raw" if path == current else "stale"].append(path)
    snapshot = _snapshot_of(model_id, entry, receipt)
    if snapshot is not None:
        groups["snapshot"] += [snapshot, *_commit_files(snapshot)]
    groups["partial"] += _hf_incomplete(entry, receipt)
    if p.converted_dir.exists():
        groups["converted"].append(p.converted_dir)
    groups["temp"] += _temp_siblings(p.converted_dir) + _temp_siblings(p.receipt)
    groups["metadata"] += [x for x in (p.receipt, p.lock_file, p.convert_lock_file) if x.exists()]
    parts = []
    for name in PARTS:
        if groups[name]:
            part = Part(name, groups[name])
            for path in groups[name]:
                sizer.add(part, path, follow=name == "snapshot")
            parts.append(part)
    state = entry_state(entry) if entry is not None else {"pulled": False, "converted": False, "verified": False}
    kind = entry.source.kind if entry is not None else _receipt_kind(receipt)
    return CacheEntry(model_id, entry is not None, kind, state, parts)


class _Sizer:
    """Bytes on disk, each inode counted once across everything measured with one sizer."""

    def __init__(self) -> None:
        self.seen: set[tuple[int, int]] = set()

    def add(self, part: Part, path: Path, *, follow: bool = False) -> None:
        """Count the files under `path` into `part`; `follow`: files are links to blobs (a Hub snapshot)."""
        for file in _files(path):
            try:
                st = file.stat() if follow else file.lstat()
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            part.files += 1
            part.last_modified = max(part.last_modified or 0.0, st.st_mtime)
            key = (st.st_dev, st.st_ino)
            if key in self.seen:
                part.linked_bytes += st.st_size
            else:
                self.seen.add(key)
                part.size_bytes += st.st_size


# --- removing ----------------------------------------------------------------------------------


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
    for model_id, entry in list(_select(models)):
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
        plan += [("converted", x, "") for x in [p.converted_dir, *_temp_siblings(p.converted_dir)] if x.exists()]
    if "raw" in chosen:  # a receipt describes the pulled files: it goes with them
        plan += [("metadata", x, "") for x in [p.receipt, *_temp_siblings(p.receipt)] if x.exists()]
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
    snapshot = _snapshot_of(model_id, entry, receipt)
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


def _freed(model_id: str, plan: list[tuple[str, Path, str]], hub: _HubRemoval | None) -> list[Removal]:
    """A Removal per planned path, with the bytes it frees: inodes whose every link is removed."""
    targets = [(part, path, note, list(_files(path))) for part, path, note in plan]
    if hub is not None:
        removed: list[Path] = []
        if hub.strategy is not None:
            for path in [*hub.strategy.repos, *hub.strategy.snapshots, *hub.strategy.blobs, *hub.strategy.refs]:
                removed += _files(Path(path))
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


# --- pruning -----------------------------------------------------------------------------------


def cache_prune(*, archives: bool = False, dry_run: bool = False) -> list[Removal]:
    """Remove what no complete model needs, leaving alone what a running pull or conversion uses.

    Partial downloads and temp files of pulls (when no pull of the model runs), temp directories
    of killed conversions and extractions and superseded raw versions (when no conversion runs
    either), receipts that cannot be read or whose files are gone, and the lock files of models
    with nothing else left. With `archives`, also archives whose extraction re-hashes equal to the
    receipt (a later `pull --force` downloads them again).
    """
    out: list[Removal] = []
    for model_id, entry in _select(()):
        with _model_locks(model_id, hold=not dry_run) as (pull_free, convert_free):
            plan = _prune_plan(model_id, entry, pull_free, convert_free, archives=archives)
            out += _freed(model_id, plan, None)
            if not dry_run:
                for _, path, _ in plan:
                    _delete(path)
    leftovers = [("temp", path, "temp file of a killed write") for path in _children(constants.zoo_home())]
    leftovers = [item for item in leftovers if _is_temp(item[1])]
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
        for path in _children(p.download_dir):
            if path.name.endswith(_PARTIAL_SUFFIXES):
                plan.append(("partial", path, "partial download; no pull is running"))
            elif _is_temp(path):
                plan.append(("temp", path, "temp file of a killed pull"))
        plan += [("temp", path, "temp file of a killed pull") for path in _temp_siblings(p.receipt)]
        plan += [("partial", path, "incomplete HF download") for path in _hf_incomplete(entry, receipt)]
        if cache.load_json(p.receipt)[1] is not None:
            plan.append(("metadata", p.receipt, "unreadable receipt"))
        elif receipt is not None and not _receipt_has_files(model_id, entry, receipt):
            plan.append(("metadata", p.receipt, "orphaned receipt: its files are gone"))
    if pull_free and convert_free:
        current = _current_raw(model_id, receipt)
        if current != p.raw_dir:
            for path in _children(p.raw_dir):
                if path == current:
                    continue
                if _is_temp(path):
                    plan.append(("temp", path, "temp directory of a killed extraction"))
                else:
                    plan.append(("stale", path, "superseded raw version: no receipt points to it"))
    if convert_free:
        plan += [("temp", x, "temp directory of a killed conversion") for x in _temp_siblings(p.converted_dir)]
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
    current = _current_raw(model_id, receipt)
    files = (receipt or {}).get("files")
    if receipt is None or current is None or not isinstance(files, dict) or cache.compare_tree(current, files):
        return []
    out = []
    for path in _children(cache.paths(model_id).download_dir):
        record_path = path.with_name(path.name + ".json")
        record, _ = cache.load_json(record_path)
        if path.is_file() and isinstance(record, dict) and record.get("sha256") == receipt.get("sha256"):
            out += [path, record_path]
    return out


# --- verifying ---------------------------------------------------------------------------------


def cache_verify(models: Iterable[str] = ()) -> list[CacheCheck]:
    """Re-hash, offline, archives and raw files against their pull receipts, converted directories
    against their manifests, and Hub snapshots against the oids recorded at pull.

    Without `models`: every model with something to check (lock files alone are not listed).
    """
    names = list(models)
    checks = [_verify_model(model_id, entry) for model_id, entry in _select(names)]
    return checks if names else [c for c in checks if c.checked or c.problems]


def _verify_model(model_id: str, entry: Entry | None) -> CacheCheck:
    p = cache.paths(model_id)
    result = CacheCheck(model_id)
    receipt, problem = cache.load_json(p.receipt)
    if problem is not None or (receipt is not None and not isinstance(receipt, dict)):
        result.problems.append(Problem("receipt", p.receipt, "corrupt", problem or "not a JSON object"))
        receipt = None
    if receipt is not None and receipt.get("kind") == "hf":
        _verify_snapshot(result, p.receipt, receipt)
    elif receipt is not None:
        _verify_raw(result, model_id, receipt)
    for path in _children(p.download_dir):
        if not path.name.endswith((*_PARTIAL_SUFFIXES, ".json")) and not _is_temp(path) and path.is_file():
            _verify_archive(result, path, receipt)
    if p.converted_dir.exists():
        _verify_converted(result, p.converted_dir)
    return result


def _verify_raw(result: CacheCheck, model_id: str, receipt: dict[str, Any]) -> None:
    files = receipt.get("files")
    current = _current_raw(model_id, receipt)
    if not isinstance(files, dict) or not all(isinstance(i, dict) for i in files.values()):
        result.problems.append(Problem("receipt", cache.paths(model_id).receipt, "corrupt", "no usable 'files' table"))
    elif current is None:
        result.problems.append(Problem("raw", Path(str(receipt.get("path"))), "missing", "the extracted directory"))
    else:
        result.checked["raw"] = len(files)
        result.problems += _compare("raw", current, {rel: info.get("sha256") for rel, info in files.items()})


def _verify_archive(result: CacheCheck, path: Path, receipt: dict[str, Any] | None) -> None:
    record_path = path.with_name(path.name + ".json")
    record, problem = cache.load_json(record_path)
    if problem is not None or not isinstance(record, dict):
        why = problem or ("missing" if record is None else "not a JSON object")
        result.problems.append(Problem("archive", record_path, "corrupt", f"archive record: {why}"))
        return
    result.checked["archive"] = result.checked.get("archive", 0) + 1
    actual = _sha256(path)
    expected = [("its record", record.get("sha256"))]
    if receipt is not None and receipt.get("archive") == str(path):
        expected.append(("the receipt", receipt.get("sha256")))
    if actual is None:
        result.problems.append(Problem("archive", path, "unreadable"))
        return
    for origin, sha in expected:
        if actual != sha:
            result.problems.append(Problem("archive", path, "changed", f"sha256 {actual}, {origin} says {sha}"))
            return


def _verify_snapshot(result: CacheCheck, receipt_path: Path, receipt: dict[str, Any]) -> None:
    files = receipt.get("files")
    try:
        snapshot = hf.snapshot_dir(str(receipt.get("repo")), str(receipt.get("commit")))
    except BadResponseError as exc:  # a damaged receipt: its repo or commit cannot name a path
        result.problems.append(Problem("receipt", receipt_path, "corrupt", str(exc)))
        return
    if not isinstance(files, dict) or any(hf.path_problem(r) or not isinstance(i, dict) for r, i in files.items()):
        result.problems.append(Problem("receipt", receipt_path, "corrupt", "no usable 'files' table"))
        return
    if not snapshot.is_dir():
        result.problems.append(Problem("snapshot", snapshot, "missing", "no longer in the HF cache"))
        return
    result.checked["snapshot"] = len(files)
    present = set(_relative_files(snapshot))
    result.problems += [Problem("snapshot", snapshot / r, "missing") for r in sorted(set(files) - present)]
    result.problems += [
        Problem("snapshot", snapshot / r, "extra", "not in the receipt") for r in sorted(present - set(files))
    ]
    for rel in sorted(present & set(files)):
        info = files[rel]
        lfs = bool(info.get("lfs"))
        try:
            sha256, git_sha1, _ = hf.hash_file(snapshot / rel, git=not lfs)
        except OSError as exc:
            result.problems.append(Problem("snapshot", snapshot / rel, "unreadable", exc.strerror or str(exc)))
            continue
        actual, algorithm = (sha256, "sha256") if lfs else (git_sha1, "git-sha1")
        if actual != info.get("oid") or sha256 != info.get("sha256"):
            detail = f"{algorithm} {actual}, the repo's oid at pull was {info.get('oid')}"
            result.problems.append(Problem("snapshot", snapshot / rel, "changed", detail))


def _verify_converted(result: CacheCheck, directory: Path) -> None:
    path = directory / constants.MANIFEST_FILENAME
    data, problem = cache.load_json(path)
    files = data.get("files") if isinstance(data, dict) else None
    if problem is not None or not isinstance(files, dict) or not all(isinstance(i, dict) for i in files.values()):
        why = problem or ("missing" if data is None else "no usable 'files' table")
        result.problems.append(Problem("converted", path, "corrupt", f"manifest: {why}"))
        return
    result.checked["converted"] = len(files)
    expected = {rel: info.get("sha256") for rel, info in files.items()}
    result.problems += _compare("converted", directory, expected, exclude=manifest.UNLISTED)


def _compare(part: str, root: Path, expected: dict[str, Any], exclude: frozenset[str] = frozenset()) -> list[Problem]:
    present = set(_relative_files(root)) - exclude
    problems = [Problem(part, root / rel, "missing") for rel in sorted(set(expected) - present)]
    problems += [Problem(part, root / rel, "extra", "not in the record") for rel in sorted(present - set(expected))]
    for rel in sorted(present & set(expected)):
        actual = _sha256(root / rel)
        if actual is None:
            problems.append(Problem(part, root / rel, "unreadable"))
        elif actual != expected[rel]:
            problems.append(Problem(part, root / rel, "changed", f"sha256 {actual}, recorded {expected[rel]}"))
    return problems


# --- what is on disk for a model ---------------------------------------------------------------


def _select(models: Iterable[str]) -> Iterator[tuple[str, Entry | None]]:
    """(id, registry entry or None) for the named models, or for every id with something on disk."""
    registry = load_registry()
    names = list(models)
    if names:
        on_disk = _ids_on_disk()
        seen: set[str] = set()
        for name in names:
            entry: Entry | None
            try:
                entry = registry.get(name)
            except UnknownModelError:
                if name not in on_disk:
                    raise
                entry = None
            model_id = entry.id if entry is not None else name
            if model_id not in seen:
                seen.add(model_id)
                yield model_id, entry
        return
    by_id = {e.id: e for e in registry}
    ids = _ids_on_disk()
    ids |= {e.id for e in registry if e.source.kind == "hf" and _snapshot_of(e.id, e, None) is not None}
    for model_id in sorted(ids, key=lambda i: (i not in by_id, i.lower())):
        yield model_id, by_id.get(model_id)


def _ids_on_disk() -> set[str]:
    root = constants.zoo_home()
    ids: set[str] = set()
    for sub in ("downloads", "raw", "converted", "receipts"):
        for path in _children(root / sub):
            match = cache.TEMP_NAME.match(path.name)
            name = match.group("target") if match else path.name
            ids.add(name.removesuffix(".json") if sub == "receipts" else name)
    for path in _children(root / "locks"):
        if path.name.endswith(".lock"):
            ids.add(path.name.removesuffix(".lock").removesuffix(cache.CONVERT_LOCK_SUFFIX))
    return ids


def _own_paths(model_id: str, entry: Entry | None, receipt: dict[str, Any] | None) -> list[Path]:
    """Everything on disk for the model except its lock files and empty directories."""
    p = cache.paths(model_id)
    out = [*_children(p.download_dir), *_children(p.raw_dir), *_temp_siblings(p.converted_dir)]
    out += [x for x in (p.converted_dir, p.receipt) if x.exists()]
    snapshot = _snapshot_of(model_id, entry, receipt)
    return out + ([snapshot] if snapshot is not None else [])


def _current_raw(model_id: str, receipt: dict[str, Any] | None) -> Path | None:
    return cache.receipt_raw_dir(model_id, receipt)


def _receipt_has_files(model_id: str, entry: Entry | None, receipt: dict[str, Any]) -> bool:
    if receipt.get("kind") == "hf":
        return _snapshot_of(model_id, entry, receipt) is not None
    return _current_raw(model_id, receipt) is not None


def _receipt_kind(receipt: dict[str, Any] | None) -> str | None:
    if not receipt:
        return None
    return "hf" if receipt.get("kind") == "hf" else "url"


def _snapshot_of(model_id: str, entry: Entry | None, receipt: dict[str, Any] | None) -> Path | None:
    """The Hub snapshot directory a model uses, if it is in the HF cache: its receipt's commit, else
    the commit its registry revision names there (a pull killed before its receipt was written)."""
    try:
        if receipt and receipt.get("kind") == "hf":
            snapshot = hf.snapshot_dir(str(receipt.get("repo")), str(receipt.get("commit")))
            return snapshot if snapshot.is_dir() else None
        if entry is None or entry.source.kind != "hf" or not entry.source.repo:
            return None
        commit = entry.source.revision or hf.DEFAULT_REVISION
        if not hf.COMMIT_RE.fullmatch(commit):
            if not hf.REVISION_RE.fullmatch(commit):
                return None
            ref = hf.repo_folder(entry.source.repo) / "refs" / commit
            commit = ref.read_text().strip() if ref.is_file() else ""
        if not hf.COMMIT_RE.fullmatch(commit):
            return None
        snapshot = hf.snapshot_dir(entry.source.repo, commit)
    except (OSError, BadResponseError):
        return None
    return snapshot if snapshot.is_dir() else None


def _commit_files(snapshot: Path) -> list[Path]:
    """The HF cache's files about this snapshot's commit: refs (branch names) naming it, its cached tree listing."""
    repo = snapshot.parent.parent
    out = [repo / "trees" / f"{snapshot.name}.json"]
    for ref in (p for p in (repo / "refs").rglob("*") if p.is_file()) if (repo / "refs").is_dir() else ():
        with contextlib.suppress(OSError):
            if ref.read_text().strip() == snapshot.name:
                out.append(ref)
    return sorted(p for p in out if p.is_file())


def _hf_incomplete(entry: Entry | None, receipt: dict[str, Any] | None) -> list[Path]:
    """Blobs huggingface_hub is downloading (or was, when killed) for the model's repo."""
    repo = receipt.get("repo") if receipt and receipt.get("kind") == "hf" else None
    if repo is None and entry is not None and entry.source.kind == "hf":
        repo = entry.source.repo
    if not isinstance(repo, str) or not hf.repo_name_ok(repo):
        return []
    return sorted((hf.repo_folder(repo) / "blobs").glob("*.incomplete"))


def _receipt_users(snapshot: Path) -> list[str]:
    """Model ids whose receipt points at this Hub snapshot."""
    users = []
    for path in _children(constants.zoo_home() / "receipts"):
        data, _ = cache.load_json(path) if path.suffix == ".json" and not _is_temp(path) else (None, None)
        if not isinstance(data, dict) or data.get("kind") != "hf" or data.get("commit") != snapshot.name:
            continue
        repo = data.get("repo")
        if isinstance(repo, str) and hf.repo_name_ok(repo) and hf.repo_folder(repo) == snapshot.parent.parent:
            users.append(path.name.removesuffix(".json"))
    return users


def _temp_siblings(target: Path) -> list[Path]:
    """Names `cache.temp_sibling` made beside `target` (left by killed runs, or in use by running ones)."""
    out = []
    for path in _children(target.parent):
        match = cache.TEMP_NAME.match(path.name)
        if match and match.group("target") == target.name:
            out.append(path)
    return out


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


# --- small helpers -------------------------------------------------------------------------------


def _is_temp(path: Path) -> bool:
    return cache.TEMP_NAME.match(path.name) is not None


def _children(directory: Path) -> list[Path]:
    try:
        return sorted(directory.iterdir())
    except OSError:
        return []


def _files(path: Path) -> list[Path]:
    """Files and links at or under `path`, without following links to directories."""
    if path.is_symlink() or path.is_file():
        return [path]
    return [Path(d) / name for d, _, names in os.walk(path) for name in names]


def _relative_files(root: Path) -> list[str]:
    """POSIX paths, relative to `root`, of what reads as a file there (a link to a missing blob does not)."""
    return [file.relative_to(root).as_posix() for file in _files(root) if file.is_file()]


def _mtimes(paths: list[Path], skip: Path) -> Iterator[float]:
    for path in paths:
        for file in _files(path):
            if file != skip:
                with contextlib.suppress(OSError):
                    yield file.lstat().st_mtime


def _sha256(path: Path) -> str | None:
    try:
        return cache.sha256_file(path)
    except OSError:
        return None


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


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds") if ts is not None else None
