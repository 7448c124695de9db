"""The write side of scripts/hub_server.py: repo creation, the LFS store and commits.

huggingface_hub 2.x pushes with `HF_HUB_DISABLE_XET=1` as: POST /api/repos/create, POST
/api/validate-yaml (for README.md), POST /api/models/{repo}/preupload/{rev} (regular or LFS per
file, with the oid already stored), the LFS batch API ({repo}.git/info/lfs/objects/batch, basic
transfer: PUT to a one-time URL, then POST verify), and POST /api/models/{repo}/commit/{rev} with
NDJSON lines (header, file, lfsFile, deletedFile, deletedFolder).

Integrity rules: every write needs an Authorization header (the PUT URL carries a one-time
ticket instead, as a presigned URL does); every path a client sends is validated (no `..`, no
absolute or reserved paths); an LFS object is stored only once its bytes hash to its oid; a commit
is built in a staging directory and swapped in under the index lock, so readers see the old tree
or the new one, never a half-finished commit.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import threading
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

LFS_DIR = ".lfs"  # ROOT/.lfs/<sha256>: uploaded LFS objects (never a repo: names starting with "." are refused)
OID_RE = re.compile(r"^[0-9a-f]{64}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
RESERVED = frozenset({".revisions", ".git", ".lfs"})
CHUNK = 1 << 20


class Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


class HubError(Exception):
    """An HTTP error answer: status, the Hub's X-Error-Code, and a message."""

    def __init__(self, status: int, message: str, code: str | None = None, **body: Any) -> None:
        self.status, self.code, self.body = status, code, body  # body: extra JSON fields, as the Hub sends them
        super().__init__(message)


def safe_repo_path(path: Any) -> str:
    """A client-sent file path, normalised; HubError 400 unless it stays inside the repo."""
    if not isinstance(path, str) or not path or "\x00" in path or "\\" in path:
        raise HubError(400, f"invalid path {path!r}", "InvalidPath")
    pure = PurePosixPath(path)
    parts = pure.parts
    if pure.is_absolute() or not parts or any(p in ("", ".", "..") for p in parts) or parts[0] in RESERVED:
        raise HubError(400, f"invalid path {path!r}: absolute, '..' or reserved", "InvalidPath")
    return pure.as_posix()


def repo_name(organization: Any, name: Any) -> str:
    for part in (organization, name):
        if not isinstance(part, str) or not NAME_RE.fullmatch(part) or ".." in part:
            raise HubError(400, f"invalid repo name part {part!r}", "InvalidRepoName")
    return f"{organization}/{name}"


class ConnectionDropped(Exception):
    """Test fault: the server hangs up in the middle of an LFS upload."""


class UploadStore:
    """Repos and LFS objects under `root`; `tree_lock` is the lock the read side holds while listing trees."""

    def __init__(self, root: Path, tree_lock: threading.RLock, is_lfs: Callable[[str, int], bool]) -> None:
        self.root = root
        self.tree_lock = tree_lock
        self.is_lfs = is_lfs
        self._tickets: dict[str, tuple[str, int]] = {}  # PUT ticket -> (oid, size), until its bytes are stored
        self._lock = threading.Lock()
        self.drop_puts = 0  # test fault: hang up this many LFS uploads half-way

    # --- repos ------------------------------------------------------------------------------------

    def create_repo(self, body: dict[str, Any], base_url: str) -> dict[str, Any]:
        if body.get("type") not in (None, "model"):
            raise HubError(400, "only model repos are served here", "InvalidRepoType")
        repo = repo_name(body.get("organization") or "zoo-user", body.get("name"))
        target = self.root / repo
        with self.tree_lock:
            if target.exists():
                raise HubError(
                    409, f"You already created this model repo: {repo}", "RepoExists", url=f"{base_url}/{repo}"
                )
            target.mkdir(parents=True)
        return {"url": f"{base_url}/{repo}", "name": repo, "id": repo}

    def create_branch(self, repo_dir: Path, branch: str, source: Path) -> None:
        if not NAME_RE.fullmatch(branch) or branch == "main":
            raise HubError(400, f"invalid branch name {branch!r}", "InvalidRevision")
        target = repo_dir / ".revisions" / branch
        with self.tree_lock:
            if target.exists():
                raise HubError(409, f"branch {branch!r} already exists", "BranchExists")
            staging = self._staging(target)
            _link_tree(source, staging, skip=RESERVED)
            os.replace(staging, target)

    # --- preupload and LFS -------------------------------------------------------------------------

    def preupload(self, files: Iterable[Any], existing: dict[str, Any]) -> dict[str, Any]:
        """Regular or LFS per file, and the oid the revision already holds (the client skips unchanged files)."""
        out = []
        for item in files:
            if not isinstance(item, dict) or not isinstance(item.get("size"), int):
                raise HubError(400, "preupload: each file needs a path and an integer size")
            path = safe_repo_path(item.get("path"))
            mode = "lfs" if self.is_lfs(path, item["size"]) else "regular"
            held = existing.get(path)
            oid = None
            if held is not None:
                oid = held.sha256 if mode == "lfs" else (held.oid if held.sha256 is None else None)
            out.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        return {"files": out}

    def lfs_batch(self, body: dict[str, Any], base_url: str, repo: str) -> dict[str, Any]:
        if body.get("operation") != "upload":
            raise HubError(400, "only the upload operation is served")
        objects = []
        for obj in body.get("objects") or []:
            oid, size = (obj or {}).get("oid"), (obj or {}).get("size")
            if not isinstance(oid, str) or not OID_RE.fullmatch(oid) or not isinstance(size, int) or size < 0:
                objects.append({"oid": str(oid), "size": 0, "error": {"code": 422, "message": "invalid oid or size"}})
                continue
            if self.has_object(oid, size):
                objects.append({"oid": oid, "size": size})  # no actions: already uploaded
                continue
            ticket = secrets.token_hex(16)
            with self._lock:
                self._tickets[ticket] = (oid, size)
            objects.append(
                {
                    "oid": oid,
                    "size": size,
                    "authenticated": True,
                    "actions": {
                        "upload": {"href": f"{base_url}/_lfs_upload/{ticket}"},
                        "verify": {"href": f"{base_url}/{repo}.git/info/lfs/objects/verify"},
                    },
                }
            )
        return {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}

    def lfs_put(self, ticket: str, stream: Readable, length: int | None) -> None:
        """Store the PUT body if its bytes hash to the ticket's oid; a short or wrong body stores nothing."""
        with self._lock:
            claimed = self._tickets.get(ticket)
            drop = claimed is not None and self.drop_puts > 0
            self.drop_puts -= drop
        if claimed is None:
            raise HubError(403, "unknown or used upload ticket")
        oid, size = claimed
        if drop:
            stream.read(size // 2)
            raise ConnectionDropped(f"dropped the upload of {oid} half-way")
        if length is not None and length != size:
            raise HubError(400, f"Content-Length {length} != declared size {size}")
        store = self.root / LFS_DIR
        store.mkdir(exist_ok=True)
        tmp = store / f".{oid}.{uuid.uuid4().hex}.incomplete"
        digest, received = hashlib.sha256(), 0
        try:
            with open(tmp, "wb") as fh:
                while received < size:
                    block = stream.read(min(CHUNK, size - received))
                    if not block:
                        break
                    fh.write(block)
                    digest.update(block)
                    received += len(block)
            if received != size or digest.hexdigest() != oid:
                raise HubError(400, f"uploaded bytes ({received}) do not hash to {oid}")
            os.replace(tmp, store / oid)
            with self._lock:
                self._tickets.pop(ticket, None)
        finally:
            tmp.unlink(missing_ok=True)

    def has_object(self, oid: str, size: int) -> bool:
        path = self.root / LFS_DIR / oid
        return bool(OID_RE.fullmatch(oid)) and path.is_file() and path.stat().st_size == size

    # --- commits -----------------------------------------------------------------------------------

    def commit(self, tree: Path, lines: list[dict[str, Any]], head: Callable[[], str]) -> None:
        """Apply NDJSON operations to a staging copy of `tree`, then swap it in atomically.

        Everything runs under the index lock: `head()` is the branch's commit right now, and no
        reader lists the tree between the two renames.
        """
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "commit: the first line must be the header")
        parent = (lines[0].get("value") or {}).get("parentCommit")
        operations = [self._operation(line) for line in lines[1:]]
        with self.tree_lock:
            current = head()
            if parent not in (None, current):
                raise HubError(412, f"parent commit {parent} is not the head {current}")
            staging, trash = self._staging(tree), self._staging(tree)
            try:
                _link_tree(tree, staging, skip=RESERVED)
                for apply in operations:
                    apply(staging)
                keep = tree / ".revisions"
                if keep.is_dir():
                    os.replace(keep, staging / ".revisions")
                os.replace(tree, trash)
                os.replace(staging, tree)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(trash, ignore_errors=True)

    def _operation(self, line: dict[str, Any]) -> Callable[[Path], None]:
        """One NDJSON line -> a function applying it to a staging tree (validated before anything is written)."""
        key, value = line.get("key"), line.get("value") or {}
        path = safe_repo_path(value.get("path"))
        if key == "file":
            if value.get("encoding") != "base64":
                raise HubError(400, f"{path}: only base64 file content is accepted")
            try:
                data = base64.b64decode(value.get("content") or "", validate=True)
            except ValueError:
                raise HubError(400, f"{path}: content is not base64") from None
            return lambda tree: _write(tree / path, data)
        if key == "lfsFile":
            oid, size = value.get("oid"), value.get("size")
            if (
                value.get("algo", "sha256") != "sha256"
                or not isinstance(oid, str)
                or not isinstance(size, int)
                or not self.has_object(oid, size)
            ):
                raise HubError(400, f"{path}: LFS object {oid} ({size} bytes) was not uploaded")
            return lambda tree: _link(self.root / LFS_DIR / oid, tree / path)
        if key == "deletedFile":
            return lambda tree: _delete(tree / path, folder=False)
        if key == "deletedFolder":
            return lambda tree: _delete(tree / path.rstrip("/"), folder=True)
        raise HubError(400, f"commit: unsupported operation {key!r}")

    def _staging(self, target: Path) -> Path:
        return target.with_name(f".{target.name}.{uuid.uuid4().hex}.staging")


def _link_tree(src: Path, dst: Path, skip: frozenset[str]) -> None:
    """Hard-link every file of `src` into `dst` (a new tree that shares bytes, never writes through)."""
    dst.mkdir(parents=True)
    for path in src.rglob("*"):
        rel = path.relative_to(src)
        if rel.parts[0] in skip or not path.is_file():
            continue
        _link(path, dst / rel)


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # a hard link shared with the old tree: replace, never write through
    path.write_bytes(data)


def _delete(path: Path, folder: bool) -> None:
    if folder and path.is_dir():
        shutil.rmtree(path)
    elif path.is_file():
        path.unlink()
    else:
        raise HubError(404, f"A file with this name doesn't exist: {path.name}", "EntryNotFound")


def read_ndjson(data: bytes) -> list[dict[str, Any]]:
    try:
        lines = [json.loads(line) for line in data.splitlines() if line.strip()]
    except ValueError:
        raise HubError(400, "commit body is not NDJSON") from None
    if not all(isinstance(line, dict) for line in lines):
        raise HubError(400, "commit body lines must be JSON objects")
    return lines
