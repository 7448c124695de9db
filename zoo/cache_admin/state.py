"""A model's state from the disk at call time: pulled, converted, verified, and the path it loads from."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from .. import cache, manifest, sources
from ..registry import Entry
from .inventory import files_under


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


def _mtimes(paths: list[Path], skip: Path) -> Iterator[float]:
    for path in paths:
        for file in files_under(path):
            if file != skip:
                with contextlib.suppress(OSError):
                    yield file.lstat().st_mtime
