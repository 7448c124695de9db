"""Where things live under ZOO_HOME, and the primitives that keep the cache honest.

Layout (one directory per model id):
    downloads/<id>/<file>          a completed, verified archive
    downloads/<id>/<file>.part     a partial download kept for resume (+ .part.json: url, etag, size)
    raw/<id>/<sha256>/             the extracted archive, one directory per archive sha256 (content-addressed:
                                   a new pull never changes files a conversion is reading)
    receipts/<id>.json             what a pull verified: source identity and sha256 of every file
    converted/<id>/                a converted HF model directory
    pins.json                      trust-on-first-use hashes for registry entries whose hash is null
    locks/<id>.lock                the pull lock of a model; locks/<id>.convert.lock its conversion lock

A directory or file becomes visible under its final name only through `os.replace` (or an atomic
exchange, for a directory that replaces another), so an interrupted run never leaves something
that looks complete, and a reader never finds nothing where a finished directory was.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import filelock

from . import constants
from .errors import FormatError, OutputError

log = logging.getLogger(__name__)

LOCK_TIMEOUT_S = 3600.0
CONVERT_LOCK_SUFFIX = ".convert"
# names `temp_sibling` makes: `.<target name>.<12 hex>.<kind>` (kind: tmp, partial, staging, extract, old)
TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.[0-9a-f]{12}\.(?P<kind>tmp|partial|staging|extract|old)$")


@dataclass(frozen=True)
class CachePaths:
    root: Path
    model_id: str

    @property
    def download_dir(self) -> Path:
        return self.root / "downloads" / self.model_id

    @property
    def raw_dir(self) -> Path:
        """The model's raw root: one content-addressed directory per pulled archive below it."""
        return self.root / "raw" / self.model_id

    def raw_version(self, sha256: str) -> Path:
        """Where the archive with this sha256 is extracted."""
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.raw_dir / sha256

    @property
    def receipt(self) -> Path:
        return self.root / "receipts" / f"{self.model_id}.json"

    @property
    def converted_dir(self) -> Path:
        return self.root / "converted" / self.model_id

    @property
    def lock_file(self) -> Path:
        return self.root / "locks" / f"{self.model_id}.lock"

    @property
    def convert_lock_file(self) -> Path:
        return self.root / "locks" / f"{self.model_id}{CONVERT_LOCK_SUFFIX}.lock"


def paths(model_id: str, root: Path | None = None) -> CachePaths:
    return CachePaths(root or constants.zoo_home(), model_id)


def pins_file(root: Path | None = None) -> Path:
    return (root or constants.zoo_home()) / "pins.json"


def _lock(lock_path: Path, timeout: float) -> filelock.FileLock:
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the lock directory {lock_path.parent}: {exc.strerror or exc}") from None
    return filelock.FileLock(str(lock_path), timeout=timeout)


@contextlib.contextmanager
def locked(model_id: str, root: Path | None = None) -> Iterator[None]:
    """Serialise work on one model across processes (flock: released if the holder dies).

    `model_id` names the lock: `<id>` is the pull lock, `<id>.convert` the conversion lock.
    """
    lock_path = paths(model_id, root).lock_file
    lock = _lock(lock_path, LOCK_TIMEOUT_S)
    try:
        lock.acquire()
    except PermissionError as exc:
        raise OutputError(f"cannot take the lock {lock_path}: {exc.strerror or exc} (is ZOO_HOME writable?)") from None
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def try_locked(lock_path: Path) -> Iterator[bool]:
    """Take the lock at `lock_path` only if no one holds it; yields whether it was taken.

    A lock this very process holds counts as held (filelock refuses to take it twice).
    """
    lock = _lock(lock_path, 0)
    try:
        lock.acquire(blocking=False)
    except (filelock.Timeout, RuntimeError):
        yield False
        return
    except PermissionError as exc:
        raise OutputError(f"cannot take the lock {lock_path}: {exc.strerror or exc} (is ZOO_HOME writable?)") from None
    try:
        yield True
    finally:
        lock.release()


def lock_held(lock_path: Path) -> bool:
    """Whether a live process holds this lock now (never creates a lock file that is not there)."""
    if not lock_path.is_file():
        return False
    try:
        with try_locked(lock_path) as taken:
            return not taken
    except OutputError:
        return False  # a read-only cache: no one can be writing to it


def check_output_dir(out: Path) -> None:
    """OutputError unless a directory can be made (or replaced) at `out`: checked before long work starts."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise OutputError(f"output path {out} exists and is not a directory")
    parent = out.absolute()
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"cannot write the output directory {out}: {parent} is not a directory")
    try:
        probe = Path(tempfile.mkdtemp(prefix=".zoo-probe-", dir=parent))
    except OSError as exc:
        raise OutputError(f"cannot write the output directory {out}: {exc.strerror or exc} ({parent})") from None
    probe.rmdir()


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


def load_json(path: Path) -> tuple[Any | None, str | None]:
    """(data, None), or (None, why it cannot be read): for callers that report a corrupt file by name."""
    try:
        return json.loads(path.read_text()), None
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{type(exc).__name__}: {exc}"


def replace_dir(tmp_dir: Path, target: Path) -> None:
    """Move a finished temp directory into place; an older one is swapped out in one atomic step.

    With an existing target the two directories are exchanged (Linux renameat2 RENAME_EXCHANGE,
    macOS renamex_np RENAME_SWAP), so a reader finds the old or the new directory, never nothing;
    the old one is then deleted. Only where the file system cannot exchange are there two renames.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        try:
            os.replace(tmp_dir, target)
            return
        except OSError as exc:  # another writer put a directory there meanwhile: exchange with it
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
    if exchange(tmp_dir, target):
        shutil.rmtree(tmp_dir, ignore_errors=True)  # now holds the old directory
        return
    trash = temp_sibling(target, ".old")
    os.replace(target, trash)
    os.replace(tmp_dir, target)
    shutil.rmtree(trash, ignore_errors=True)


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths; False where the platform or file system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return False
    if sys.platform.startswith("linux") and hasattr(libc, "renameat2"):
        at_fdcwd, rename_exchange = -100, 2
        rc = libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    elif sys.platform == "darwin" and hasattr(libc, "renamex_np"):
        rename_swap = 2
        rc = libc.renamex_np(os.fsencode(a), os.fsencode(b), rename_swap)
    else:
        return False
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EPERM):
        log.debug("atomic exchange of %s and %s unsupported here (%s)", a, b, os.strerror(err))
        return False
    raise OSError(err, os.strerror(err), str(b))


def sha256_file(path: Path, chunk: int = constants.DOWNLOAD_CHUNK) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class FileHash:
    """A file's sha256 taken from the bytes as they were written (zoo.safetensors_io), so sealing a
    conversion need not read gigabytes back; it stands while the file keeps the size and mtime it
    had when its writer closed it."""

    sha256: str
    size: int
    mtime_ns: int

    @classmethod
    def written(cls, path: Path, sha256: str) -> FileHash:
        stat = path.stat()
        return cls(sha256, stat.st_size, stat.st_mtime_ns)

    def holds_for(self, path: Path) -> bool:
        stat = path.stat()
        return (stat.st_size, stat.st_mtime_ns) == (self.size, self.mtime_ns)


def hash_tree(
    root: Path, exclude: frozenset[str] = frozenset(), known: Mapping[str, FileHash] | None = None
) -> dict[str, dict[str, Any]]:
    """sha256 and size of every regular file under `root`, keyed by POSIX relative path.

    A file in `known` whose size and mtime are unchanged takes the hash its writer computed."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel in exclude:
            continue
        hashed = (known or {}).get(rel)
        digest = hashed.sha256 if hashed is not None and hashed.holds_for(path) else sha256_file(path)
        out[rel] = {"sha256": digest, "size": path.stat().st_size}
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


def receipt_raw_dir(model_id: str, receipt: dict[str, Any] | None, root: Path | None = None) -> Path | None:
    """The extracted directory a URL source's receipt stands for, if on disk: raw/<id>/<sha256>/,
    or raw/<id>/ itself for receipts written before raw directories were content-addressed."""
    if not receipt or receipt.get("kind") == "hf":
        return None
    p = paths(model_id, root)
    sha = receipt.get("sha256")
    if isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha) and p.raw_version(sha).is_dir():
        return p.raw_version(sha)
    if receipt.get("path") == str(p.raw_dir) and p.raw_dir.is_dir():
        return p.raw_dir
    return None


def read_receipt(model_id: str, root: Path | None = None) -> dict[str, Any] | None:
    """The receipt, or None when there is none or it is unreadable (`zoo cache verify` names a corrupt one)."""
    data, problem = load_json(paths(model_id, root).receipt)
    if problem is not None or (data is not None and not isinstance(data, dict)):
        log.warning("%s: ignoring the corrupt receipt %s (%s)", model_id, paths(model_id, root).receipt, problem)
        return None
    return data


def write_receipt(model_id: str, receipt: dict[str, Any], root: Path | None = None) -> None:
    atomic_write_json(paths(model_id, root).receipt, receipt)


def drop_receipt(model_id: str, root: Path | None = None) -> None:
    paths(model_id, root).receipt.unlink(missing_ok=True)


# --- pins: trust on first use for null registry hashes ----------------------------


def _read_pins(target: Path) -> dict[str, Any]:
    """The pins file; a corrupt one is an error, never an empty trust store."""
    data, problem = load_json(target)
    if problem is not None or (data is not None and not isinstance(data, dict)):
        raise FormatError(
            f"{target}: corrupt pins file ({problem or 'not a JSON object'}); "
            "fix it, or delete it to pin every null-hash model again on its next pull"
        )
    return data or {}


def read_pin(key: str, root: Path | None = None) -> dict[str, Any] | None:
    value = _read_pins(pins_file(root)).get(key)
    return value if isinstance(value, dict) else None


def write_pin(key: str, value: dict[str, Any], root: Path | None = None) -> None:
    """Record (or replace) one pin; the pins file is shared, so update it under a lock."""
    target = pins_file(root)
    target.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(target) + ".lock", timeout=LOCK_TIMEOUT_S):
        pins = _read_pins(target)
        pins[key] = value
        atomic_write_json(target, pins)


def drop_pin(key: str, root: Path | None = None) -> bool:
    target = pins_file(root)
    if not target.exists():
        return False
    with filelock.FileLock(str(target) + ".lock", timeout=LOCK_TIMEOUT_S):
        pins = _read_pins(target)
        found = pins.pop(key, None) is not None
        atomic_write_json(target, pins)
    return found
