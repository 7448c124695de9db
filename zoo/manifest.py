"""zoo_manifest.json: what a converted directory must contain and where it came from.

The manifest lists the sha256 of every file (except itself and the verify report), the
source identity, the converter and its version, and the applied tensor mapping, so that
`verify` can re-check files and replay the weights transform later.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import cache, constants
from ._version import __version__
from .errors import FormatError

MANIFEST_VERSION = 1
VERIFY_REPORT_FILENAME = "zoo_verify.json"
UNLISTED = frozenset({constants.MANIFEST_FILENAME, VERIFY_REPORT_FILENAME})


def describe(
    *,
    family: str,
    format: str | None,
    source: dict[str, Any],
    model_id: str | None = None,
    options: dict[str, Any] | None = None,
    mapping: list[dict[str, str]] | None = None,
    skipped: list[str] | None = None,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """Everything the manifest says except file hashes: what the checks need before the files are final."""
    return {
        "manifest_version": MANIFEST_VERSION,
        "model_id": model_id,
        "family": family,
        "format": format,
        "converter": {"name": format or "none", "version": __version__},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": source,
        "options": options or {},
        "mapping": mapping or [],
        "skipped": skipped or [],
        "notes": notes or [],
    }


def seal(
    directory: Path,
    description: dict[str, Any],
    checks: list[dict[str, Any]] | None = None,
    written: Mapping[str, cache.FileHash] | None = None,
) -> dict[str, Any]:
    """Hash every file once the directory is complete and write the manifest; returns it.

    `written`: hashes taken as files were written (relative path -> FileHash), used while they still hold."""
    files = cache.hash_tree(directory, exclude=UNLISTED, known=written)
    data = {**description, "checks_at_conversion": checks or [], "files": files}
    cache.atomic_write_json(directory / constants.MANIFEST_FILENAME, data)
    return data


def rehash(directory: Path, data: dict[str, Any], changed: list[str]) -> dict[str, Any]:
    """Re-seal a copy in which only `changed` files differ: those are hashed again, the rest kept."""
    files = dict(data["files"])
    for rel in changed:
        path = directory / rel
        files[rel] = {"sha256": cache.sha256_file(path), "size": path.stat().st_size}
    updated = {**data, "files": files}
    cache.atomic_write_json(directory / constants.MANIFEST_FILENAME, updated)
    return updated


def exists(directory: Path) -> bool:
    """A zoo model directory is one with a manifest (written last, so it is complete)."""
    return (Path(directory) / constants.MANIFEST_FILENAME).is_file()


def read(directory: Path) -> dict[str, Any]:
    path = directory / constants.MANIFEST_FILENAME
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FormatError(f"{directory} is not a zoo model directory (no {constants.MANIFEST_FILENAME})") from None
    except json.JSONDecodeError as exc:
        raise FormatError(f"{path}: malformed manifest: {exc}") from None
    if not isinstance(data, dict) or data.get("manifest_version") != MANIFEST_VERSION or "files" not in data:
        raise FormatError(f"{path}: not a zoo manifest (version {MANIFEST_VERSION} expected)")
    return data
