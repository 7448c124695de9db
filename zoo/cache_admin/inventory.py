"""What is on disk for a model, found by looking: the ids under ZOO_HOME, a model's Hub snapshot
and unfinished Hub downloads, temp names beside a target, and the directory walks the rest shares.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .. import cache, constants
from ..errors import BadResponseError, UnknownModelError
from ..registry import Entry, load_registry
from ..sources import hf

PARTIAL_SUFFIXES = (".part", ".part.json")


def select(models: Iterable[str]) -> Iterator[tuple[str, Entry | None]]:
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
    ids |= {e.id for e in registry if e.source.kind == "hf" and snapshot_of(e.id, e, None) is not None}
    for model_id in sorted(ids, key=lambda i: (i not in by_id, i.lower())):
        yield model_id, by_id.get(model_id)


def _ids_on_disk() -> set[str]:
    root = constants.zoo_home()
    ids: set[str] = set()
    for sub in ("downloads", "raw", "converted", "receipts"):
        for path in children(root / sub):
            match = cache.TEMP_NAME.match(path.name)
            name = match.group("target") if match else path.name
            ids.add(name.removesuffix(".json") if sub == "receipts" else name)
    for path in children(root / "locks"):
        if path.name.endswith(".lock"):
            ids.add(path.name.removesuffix(".lock").removesuffix(cache.CONVERT_LOCK_SUFFIX))
    return ids


def snapshot_of(model_id: str, entry: Entry | None, receipt: dict[str, Any] | None) -> Path | None:
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


def hf_incomplete(entry: Entry | None, receipt: dict[str, Any] | None) -> list[Path]:
    """Blobs huggingface_hub is downloading (or was, when killed) for the model's repo."""
    repo = receipt.get("repo") if receipt and receipt.get("kind") == "hf" else None
    if repo is None and entry is not None and entry.source.kind == "hf":
        repo = entry.source.repo
    if not isinstance(repo, str) or not hf.repo_name_ok(repo):
        return []
    return sorted((hf.repo_folder(repo) / "blobs").glob("*.incomplete"))


def temp_siblings(target: Path) -> list[Path]:
    """Names `cache.temp_sibling` made beside `target` (left by killed runs, or in use by running ones)."""
    out = []
    for path in children(target.parent):
        match = cache.TEMP_NAME.match(path.name)
        if match and match.group("target") == target.name:
            out.append(path)
    return out


def is_temp(path: Path) -> bool:
    return cache.TEMP_NAME.match(path.name) is not None


def children(directory: Path) -> list[Path]:
    try:
        return sorted(directory.iterdir())
    except OSError:
        return []


def files_under(path: Path) -> list[Path]:
    """Files and links at or under `path`, without following links to directories."""
    if path.is_symlink() or path.is_file():
        return [path]
    return [Path(d) / name for d, _, names in os.walk(path) for name in names]
