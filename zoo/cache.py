"""Where things live under ZOO_HOME, and the primitives that keep the cache honest.

Layout (one directory per model id):
    downloads/<id>/<file>          a completed, verified archive
    downloads/<id>/<file>.part     a partial download kept for resume (+ .part.json: url, etag, size)
    raw/<id>/                      the extracted archive (renamed into place only when complete)
    receipts/<id>.json             what a pull verified: source identity and sha256 of every file
    converted/<id>/                a converted HF model directory
    pins.json                      trust-on-first-use hashes for registry entries whose hash is null
    locks/<id>.lock                inter-process locks (they only save bandwidth; renames keep it safe)

A directory or file becomes visible under its final name only through `os.replace`, so an
interrupted run never leaves something that looks complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import filelock

from . import constants

LOCK_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class CachePaths:
    root: Path
    model_id: str

    @property
    def download_dir(self) -> Path:
        return self.root / "downloads" / self.model_id

    @property
    def raw_dir(self) -> Path:
        return self.root / "raw" / self.model_id

    @property
    def receipt(self) -> Path:
        return self.root / "receipts" / f"{self.model_id}.json"

    @property
    def converted_dir(self) -> Path:
        return self.root / "converted" / self.model_id

    @property
    def lock_file(self) -> Path:
        return self.root / "locks" / f"{self.model_id}.lock"


def paths(model_id: str, root: Path | None = None) -> CachePaths:
    return CachePaths(root or constants.zoo_home(), model_id)


def pins_file(root: Path | None = None) -> Path:
    return (root or constants.zoo_home()) / "pins.json"


@contextlib.contextmanager
def locked(model_id: str, root: Path | None = None) -> Iterator[None]:
    """Serialise work on one model across processes (flock: released if the holder dies)."""
    lock_path = paths(model_id, root).lock_file
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(lock_path), timeout=LOCK_TIMEOUT_S):
        yield


def temp_sibling(target: Path, suffix: str = ".tmp") -> Path:
    """A unique name beside `target` (same filesystem, so os.replace is atomic)."""
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}{suffix}")


def atomic_write_bytes(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(target)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_json(target: Path, data: Any) -> None:
    atomic_write_bytes(target, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def replace_dir(tmp_dir: Path, target: Path) -> None:
    """Move a finished temp directory into place, replacing an older one without a gap in validity."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        trash = temp_sibling(target, ".old")
        os.replace(target, trash)
        os.replace(tmp_dir, target)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp_dir, target)


def sha256_file(path: Path, chunk: int = constants.DOWNLOAD_CHUNK) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def hash_tree(root: Path, exclude: frozenset[str] = frozenset()) -> dict[str, dict[str, Any]]:
    """sha256 and size of every regular file under `root`, keyed by POSIX relative path."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel in exclude:
            continue
        out[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return out


def compare_tree(root: Path, expected: dict[str, dict[str, Any]], exclude: frozenset[str] = frozenset()) -> list[str]:
    """Problems (missing, extra, changed files) of `root` against recorded hashes; empty when intact."""
    problems: list[str] = []
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} - exclude
    for rel in sorted(set(expected) - present):
        problems.append(f"missing: {rel}")
    for rel in sorted(present - set(expected)):
        problems.append(f"not in manifest: {rel}")
    for rel in sorted(present & set(expected)):
        actual = sha256_file(root / rel)
        if actual != expected[rel]["sha256"]:
            problems.append(f"changed: {rel} (sha256 {actual[:12]}..., expected {expected[rel]['sha256'][:12]}...)")
    return problems


# --- receipts: what a pull verified -----------------------------------------------


def read_receipt(model_id: str, root: Path | None = None) -> dict[str, Any] | None:
    return read_json(paths(model_id, root).receipt)


def write_receipt(model_id: str, receipt: dict[str, Any], root: Path | None = None) -> None:
    atomic_write_json(paths(model_id, root).receipt, receipt)


def drop_receipt(model_id: str, root: Path | None = None) -> None:
    paths(model_id, root).receipt.unlink(missing_ok=True)


# --- pins: trust on first use for null registry hashes ----------------------------


def read_pin(key: str, root: Path | None = None) -> dict[str, Any] | None:
    return (read_json(pins_file(root)) or {}).get(key)


def write_pin(key: str, value: dict[str, Any], root: Path | None = None) -> None:
    """Record (or replace) one pin; the pins file is shared, so update it under a lock."""
    target = pins_file(root)
    target.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(target) + ".lock", timeout=LOCK_TIMEOUT_S):
        pins = read_json(target) or {}
        pins[key] = value
        atomic_write_json(target, pins)


def drop_pin(key: str, root: Path | None = None) -> bool:
    target = pins_file(root)
    if not target.exists():
        return False
    with filelock.FileLock(str(target) + ".lock", timeout=LOCK_TIMEOUT_S):
        pins = read_json(target) or {}
        found = pins.pop(key, None) is not None
        atomic_write_json(target, pins)
    return found
