"""What a converted model says about its inputs, without the paths of the machine that converted it.

Converters describe what they read with local paths (`path` keys), so checks can replay the
conversion here. Before that description enters zoo_manifest.json, every `path` becomes the
input's `name` plus a `ref`: the sha256 of the record's own content (file hashes and sizes).
This machine remembers ref -> path in ZOO_HOME/locations.json, outside the model directory, so
a copy of the model on another machine (pushed, downloaded, moved) keeps names and hashes and
never a local path. Options that named an input by its path name it by `{"ref": ...}` instead.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import filelock

from . import cache, constants

LOCATIONS_FILENAME = "locations.json"


def _locations_file() -> Path:
    return constants.zoo_home() / LOCATIONS_FILENAME


def _digest(record: Any) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def remember(ref: str, path: Path) -> None:
    """Record where this machine holds the input named `ref` (best effort: a read-only home is fine)."""
    target = _locations_file()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with filelock.FileLock(str(target) + ".lock", timeout=cache.LOCK_TIMEOUT_S):
            known = cache.read_json(target) or {}
            known[ref] = str(Path(path).resolve())
            cache.atomic_write_json(target, known)
    except OSError:
        return  # without the index a later verify skips the replay checks and says why


def locate(record: Mapping[str, Any] | None) -> Path | None:
    """The local path of a portable record (`ref`), if this machine still has it.

    Records written before paths left the manifest carry `path` itself; it is used when it exists.
    """
    record = record or {}
    found = record.get("path")
    if isinstance(record.get("ref"), str):
        found = (cache.read_json(_locations_file()) or {}).get(record["ref"])
    if not isinstance(found, str):
        return None
    path = Path(found)
    return path if path.exists() or Path(f"{path}.index").exists() else None


def make_portable(source: Mapping[str, Any], options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(source, options) as the manifest stores them: names and refs instead of local paths."""
    refs: dict[str, str] = {}

    def walk(node: Any) -> Any:
        if isinstance(node, Mapping):
            out = {k: walk(v) for k, v in node.items() if k != "path"}
            if isinstance(node.get("path"), str):
                ref = _digest(out)
                remember(ref, Path(node["path"]))
                refs[node["path"]] = ref
                out.update(name=Path(node["path"]).name, ref=ref)
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    portable_source = walk(source)
    portable_options = {k: {"ref": refs[v]} if isinstance(v, str) and v in refs else v for k, v in options.items()}
    return portable_source, portable_options


def local_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Options with every `{"ref": ...}` turned back into a local path; also the names not found here."""
    out: dict[str, Any] = {}
    missing: list[str] = []
    for key, value in options.items():
        if isinstance(value, Mapping) and set(value) == {"ref"}:
            found = locate(value)
            if found is None:
                missing.append(key)
            out[key] = None if found is None else str(found)
        else:
            out[key] = value
    return out, missing


def describe(record: Mapping[str, Any] | None) -> str:
    """How a report names an input it cannot find: its name and hash, never a path."""
    record = record or {}
    origin = record.get("origin") or {}
    digest = origin.get("sha256") or record.get("sha256") or record.get("archive_sha256") or record.get("ref") or "?"
    name = str(origin["url"]).rsplit("/", 1)[-1] if origin.get("url") else record.get("name", "?")
    return f"{name} (sha256 {str(digest)[:12]}...)"
