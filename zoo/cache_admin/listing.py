"""`zoo cache ls`: every model with something on disk, its parts and the bytes each adds.

Sizes count each inode once (a converted Hub model hard-links the snapshot's blobs), so the parts
of a listing add up to the bytes on disk.
"""

from __future__ import annotations

import contextlib
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .. import cache
from ..registry import Entry
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
from .records import CacheEntry, Part
from .state import entry_state

PARTS = ("archive", "partial", "raw", "stale", "snapshot", "converted", "temp", "metadata")


def cache_list(models: Iterable[str] = ()) -> list[CacheEntry]:
    """Every model with something on disk (or the named ones), each part with its size."""
    sizer = _Sizer()
    return [_describe(model_id, entry, sizer) for model_id, entry in select(models)]


def _describe(model_id: str, entry: Entry | None, sizer: _Sizer) -> CacheEntry:
    p = cache.paths(model_id)
    receipt = cache.read_receipt(model_id)
    groups: dict[str, list[Path]] = {name: [] for name in PARTS}
    for path in children(p.download_dir):
        name = "temp" if is_temp(path) else "partial" if path.name.endswith(PARTIAL_SUFFIXES) else "archive"
        groups[name].append(path)
    current = cache.receipt_raw_dir(model_id, receipt)
    if current is not None and current == p.raw_dir:  # written before raw directories were content-addressed
        groups["raw"].append(current)
    else:
        for path in children(p.raw_dir):
            groups["temp" if is_temp(path) else "raw" if path == current else "stale"].append(path)
    snapshot = snapshot_of(model_id, entry, receipt)
    if snapshot is not None:
        groups["snapshot"] += [snapshot, *_commit_files(snapshot)]
    groups["partial"] += hf_incomplete(entry, receipt)
    if p.converted_dir.exists():
        groups["converted"].append(p.converted_dir)
    groups["temp"] += temp_siblings(p.converted_dir) + temp_siblings(p.receipt)
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
        for file in files_under(path):
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


def _commit_files(snapshot: Path) -> list[Path]:
    """The HF cache's files about this snapshot's commit: refs (branch names) naming it, its cached tree listing."""
    repo = snapshot.parent.parent
    out = [repo / "trees" / f"{snapshot.name}.json"]
    for ref in (p for p in (repo / "refs").rglob("*") if p.is_file()) if (repo / "refs").is_dir() else ():
        with contextlib.suppress(OSError):
            if ref.read_text().strip() == snapshot.name:
                out.append(ref)
    return sorted(p for p in out if p.is_file())


def _receipt_kind(receipt: dict[str, Any] | None) -> str | None:
    if not receipt:
        return None
    return "hf" if receipt.get("kind") == "hf" else "url"
