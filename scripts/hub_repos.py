"""The read side of scripts/hub_server.py: the repo index (what each branch holds, with the
hashes the Hub reports, recomputed only for files that changed) and the JSON bodies of model info
and tree listings. The layout it reads is described in hub_server.py.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

REVISIONS_DIR = ".revisions"
SKIP_DIRS = frozenset({REVISIONS_DIR, ".git"})
LFS_SUFFIXES = frozenset({".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".zip"})
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


# --- the repo index: what each branch contains ----------------------------------


@dataclass(frozen=True)
class RepoEntry:
    """One served file: the tree fields the Hub reports, and where the bytes live."""

    path: str
    size: int
    oid: str  # git blob sha1 (of the LFS pointer for LFS files, as on the Hub)
    sha256: str | None  # LFS oid; None for plain git blobs
    pointer_size: int | None
    local: Path

    @property
    def etag(self) -> str:
        return self.sha256 or self.oid


@dataclass(frozen=True)
class Revision:
    branch: str
    commit: str
    files: dict[str, RepoEntry]
    modified: float

    def folders(self) -> set[str]:
        return {p.rsplit("/", i)[0] for p in self.files for i in range(1, p.count("/") + 1)}


class NotFound(Exception):
    """Maps to 404 with the Hub's X-Error-Code."""

    def __init__(self, code: str, message: str, commit: str | None = None) -> None:
        self.code, self.commit = code, commit
        super().__init__(message)


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


class RepoIndex:
    """Hashes of the served trees, recomputed only for files whose size or mtime changed."""

    def __init__(self, root: Path, lfs_threshold: int) -> None:
        self.root = root
        self.lfs_threshold = lfs_threshold
        self._hashes: dict[tuple[str, int, int], tuple[str, str]] = {}
        self._lock = threading.Lock()
        self.tree_lock = threading.RLock()  # held while listing trees and while a commit swaps one in

    def is_lfs(self, path: str, size: int) -> bool:
        return size > self.lfs_threshold or PurePosixPath(path).suffix in LFS_SUFFIXES

    def _is_lfs(self, path: Path, size: int) -> bool:
        return self.is_lfs(path.name, size)

    def _entry(self, base: Path, path: Path) -> RepoEntry:
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        with self._lock:
            hashed = self._hashes.get(key)
        if hashed is None:
            data = path.read_bytes()
            hashed = (git_blob_sha1(data), hashlib.sha256(data).hexdigest())
            with self._lock:
                self._hashes[key] = hashed
        rel = path.relative_to(base).as_posix()
        if self._is_lfs(path, st.st_size):
            pointer = lfs_pointer(hashed[1], st.st_size)
            return RepoEntry(rel, st.st_size, git_blob_sha1(pointer), hashed[1], len(pointer), path)
        return RepoEntry(rel, st.st_size, hashed[0], None, None, path)

    def _tree(self, base: Path, branch: str) -> Revision:
        files: dict[str, RepoEntry] = {}
        newest = 0.0
        for path in sorted(_walk(base)):
            entry = self._entry(base, path)
            files[entry.path] = entry
            newest = max(newest, path.stat().st_mtime)
        listing = "".join(f"{e.oid} {e.size} {e.path}\n" for e in files.values())
        commit = hashlib.sha1(b"tree\n" + listing.encode()).hexdigest()
        return Revision(branch, commit, files, newest)

    def repo_dir(self, repo: str) -> Path:
        parts = repo.split("/")
        if len(parts) != 2 or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
            raise NotFound("RepoNotFound", f"Repository {repo!r} not found")
        path = self.root / parts[0] / parts[1]
        if not path.is_dir():
            raise NotFound("RepoNotFound", f"Repository {repo!r} not found")
        return path

    def revisions(self, repo: str) -> dict[str, Revision]:
        with self.tree_lock:
            base = self.repo_dir(repo)
            out = {"main": self._tree(base, "main")}
            extra = base / REVISIONS_DIR
            if extra.is_dir():
                for branch_dir in sorted(p for p in extra.iterdir() if p.is_dir()):
                    out[branch_dir.name] = self._tree(branch_dir, branch_dir.name)
            return out

    def branch_dir(self, repo: str, branch: str) -> Path:
        base = self.repo_dir(repo)
        if branch == "main":
            return base
        if branch not in self.revisions(repo):
            raise NotFound("RevisionNotFound", f"Invalid rev id: {branch}")
        return base / REVISIONS_DIR / branch

    def resolve(self, repo: str, rev: str) -> Revision:
        revisions = self.revisions(repo)
        if rev in revisions:
            return revisions[rev]
        for revision in revisions.values():
            if COMMIT_RE.match(rev) and revision.commit == rev:
                return revision
        raise NotFound("RevisionNotFound", f"Invalid rev id: {rev}")


def _walk(base: Path) -> Iterator[Path]:
    for child in base.iterdir():
        if child.is_dir():
            if child.name not in SKIP_DIRS:
                yield from _walk(child)
        elif child.is_file():
            yield child


# --- JSON bodies --------------------------------------------------------------


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def model_info(repo: str, rev: Revision, blobs: bool) -> dict[str, Any]:
    siblings = []
    for e in rev.files.values():
        sib: dict[str, Any] = {"rfilename": e.path}
        if blobs:
            sib.update(size=e.size, blobId=e.oid)
            if e.sha256:
                sib["lfs"] = {"sha256": e.sha256, "size": e.size, "pointerSize": e.pointer_size}
        siblings.append(sib)
    return {
        "_id": hashlib.sha1(repo.encode()).hexdigest()[:24],
        "id": repo,
        "modelId": repo,
        "author": repo.split("/")[0],
        "sha": rev.commit,
        "lastModified": _iso(rev.modified),
        "createdAt": _iso(rev.modified),
        "private": False,
        "disabled": False,
        "gated": False,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "siblings": siblings,
        "usedStorage": sum(e.size for e in rev.files.values()),
    }


def tree_listing(rev: Revision, path: str, recursive: bool, expand: bool) -> list[dict[str, Any]]:
    prefix = f"{path.strip('/')}/" if path.strip("/") else ""
    if prefix and prefix[:-1] not in rev.folders():
        raise NotFound("EntryNotFound", f"{path} does not exist on {rev.branch}", rev.commit)

    def wanted(p: str) -> bool:
        return p.startswith(prefix) and (recursive or "/" not in p[len(prefix) :])

    last_commit = {"id": rev.commit, "title": "zoo hub server snapshot", "date": _iso(rev.modified)}
    out: list[dict[str, Any]] = []
    for folder in sorted(f for f in rev.folders() if wanted(f)):
        tree_oid = hashlib.sha1("".join(sorted(p for p in rev.files if p.startswith(folder + "/"))).encode())
        out.append({"type": "directory", "oid": tree_oid.hexdigest(), "size": 0, "path": folder})
    for e in rev.files.values():
        if not wanted(e.path):
            continue
        item: dict[str, Any] = {"type": "file", "oid": e.oid, "size": e.size, "path": e.path}
        if e.sha256:
            item["lfs"] = {"oid": e.sha256, "size": e.size, "pointerSize": e.pointer_size}
        if expand:
            item["lastCommit"] = last_commit
        out.append(item)
    if expand:
        for item in out:
            item.setdefault("lastCommit", last_commit)
    return out
