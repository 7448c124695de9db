"""Hugging Face Hub repos: `snapshot_download` pinned to a commit, then every file hashed.

huggingface_hub checks sizes only. Here each file must also match the repo's own oid for that
commit, as the tree endpoint lists it: sha256 for LFS files, git-blob sha1 for the rest. The
receipt then records the commit and the sha256 of every file, so later pulls, `cached`,
`files_check` and offline use need no network. Files live in the standard HF cache
(HF_HUB_CACHE / HF_HOME), so transformers and sentence-transformers share them.

Names that come from a server (the commit sha, tree paths, oids) or from a receipt on disk are
validated before they become paths: a `..` path or a malformed sha is a BadResponseError, and
nothing is written for it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeGuard

import httpx2
from huggingface_hub import HfApi, snapshot_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import repo_folder_name
from huggingface_hub.hf_api import RepoFile
from tqdm.auto import tqdm

from .. import cache, constants
from ..errors import BadResponseError, DownloadError, FormatError, IntegrityError, OfflineError
from ..registry import Entry

log = logging.getLogger(__name__)

DEFAULT_REVISION = "main"
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# a git ref name as the Hub uses them (branches, tags, refs/pr/N): no `..`, no leading `/` or `-`
REVISION_RE = re.compile(r"^(?!.*\.\.)(?!.*//)(?![/.-])[A-Za-z0-9._/-]{1,255}(?<![/.])$")


@dataclass(frozen=True)
class RemoteFile:
    """One file of the repo at the pinned commit, with the oid the Hub lists for it."""

    path: str
    size: int
    git_oid: str  # git blob sha1 (for LFS files: of the pointer, so not a content hash)
    lfs_sha256: str | None

    @property
    def oid(self) -> str:
        """The content hash this file must match: sha256 for LFS, git-blob sha1 otherwise."""
        return self.lfs_sha256 or self.git_oid

    @property
    def algorithm(self) -> str:
        return "sha256" if self.lfs_sha256 else "git-sha1"


@dataclass
class Audit:
    """A snapshot directory compared with the sha256 a receipt recorded."""

    missing: list[str] = field(default_factory=list)
    changed: list[tuple[str, str, str]] = field(default_factory=list)  # (path, expected, actual)
    extra: list[str] = field(default_factory=list)


# --- public API ------------------------------------------------------------------


def pull(entry: Entry, *, force: bool = False, progress: bool = False) -> Path:
    """Download (or reuse) the repo at its pinned commit, hash-verified; returns the snapshot dir.

    With a receipt the snapshot is re-hashed instead of downloaded; `force` downloads again.
    """
    repo, revision = _repo_revision(entry)
    if constants.is_offline():
        return _pull_offline(entry, repo, revision)
    with cache.locked(entry.id):
        # re-read under the lock: another process may have finished the same pull meanwhile
        receipt = cache.read_receipt(entry.id)
        if not force and _receipt_matches(receipt, repo, revision):
            snapshot = _reuse(entry, receipt)
            if snapshot is not None:
                return snapshot
        return _download(entry, repo, revision, force=force, progress=progress)


def cached(entry: Entry, receipt: Mapping[str, Any] | None = None) -> Path | None:
    """The verified snapshot dir if the receipt matches the entry and every file is present; no hashing.

    `receipt`: one already read (else it is read now).
    """
    repo, revision = _repo_revision(entry)
    receipt = cache.read_receipt(entry.id) if receipt is None else receipt
    if not _receipt_matches(receipt, repo, revision):
        return None
    snapshot = snapshot_dir(receipt["repo"], receipt["commit"])
    for rel, info in receipt["files"].items():
        path = snapshot / rel
        try:
            if not path.is_file() or path.stat().st_size != info["size"]:
                return None
        except (OSError, TypeError, KeyError):
            return None
    return snapshot


def files_check(entry_or_receipt: Entry | Mapping[str, Any]) -> list[str]:
    """Problems of a pulled repo's snapshot against its receipt (missing, changed, extra); empty if intact."""
    receipt: Mapping[str, Any] | None
    if isinstance(entry_or_receipt, Entry):
        entry = entry_or_receipt
        receipt = cache.read_receipt(entry.id)
        if receipt is None:
            return [f"not pulled: no receipt for {entry.id!r}"]
        repo, revision = _repo_revision(entry)
        if not _receipt_matches(receipt, repo, revision):
            return [
                f"stale receipt: pulled {receipt.get('repo')}@{receipt.get('revision')}, "
                f"registry says {repo}@{revision}"
            ]
    else:
        receipt = entry_or_receipt
    audit = _audit(snapshot_dir(receipt["repo"], receipt["commit"]), receipt["files"])
    return (
        [f"missing: {p}" for p in audit.missing]
        + [f"changed: {p} (sha256 {act[:12]}..., expected {exp[:12]}...)" for p, exp, act in audit.changed]
        + [f"not in receipt: {p}" for p in audit.extra]
    )


def snapshot_dir(repo: str, commit: str) -> Path:
    """Where huggingface_hub keeps `repo` at `commit` in the current HF cache."""
    if not COMMIT_RE.fullmatch(commit) or not repo_name_ok(repo):
        raise BadResponseError(f"refusing to build an HF cache path from repo {repo!r} and commit {commit!r}")
    return repo_folder(repo) / "snapshots" / commit


def repo_folder(repo: str) -> Path:
    """The repo's folder in the current HF cache (models--org--name)."""
    root = constants.hf_hub_cache().resolve()  # as snapshot_download returns it
    return root / repo_folder_name(repo_id=repo, repo_type="model")


def check_commit(commit: object, where: str) -> str:
    """A commit sha from a server must be 40 lowercase hex digits before it names a directory."""
    if not isinstance(commit, str) or not COMMIT_RE.fullmatch(commit):
        raise BadResponseError(f"{where}: the server sent the commit sha {commit!r}, not 40 hex digits; refused")
    return commit


def check_tree(files: list[RemoteFile], where: str) -> dict[str, RemoteFile]:
    """Tree entries from a server: safe relative paths, well-formed oids, sizes; else BadResponseError."""
    out: dict[str, RemoteFile] = {}
    folded: set[str] = set()
    for rf in files:
        problem = path_problem(rf.path)
        if problem is None and not (isinstance(rf.size, int) and rf.size >= 0):
            problem = f"size {rf.size!r}"
        if problem is None and not (isinstance(rf.git_oid, str) and COMMIT_RE.fullmatch(rf.git_oid)):
            problem = f"git oid {rf.git_oid!r}"
        if problem is None and rf.lfs_sha256 is not None and not SHA256_RE.fullmatch(str(rf.lfs_sha256)):
            problem = f"LFS sha256 {rf.lfs_sha256!r}"
        if problem is None and rf.path.casefold() in folded:
            problem = "listed twice"
        if problem is not None:
            raise BadResponseError(
                f"{where}: the server lists the file {rf.path!r}: {problem}; refused, nothing written"
            )
        folded.add(rf.path.casefold())
        out[rf.path] = rf
    return out


def path_problem(rel: object) -> str | None:
    """Why `rel` cannot be a file path inside a snapshot, or None when it can."""
    if not isinstance(rel, str) or not rel:
        return "empty or not a string"
    if "\x00" in rel or "\\" in rel:
        return "NUL byte or backslash in the path"
    if rel.startswith("/") or re.match(r"^[A-Za-z]:", rel):
        return "absolute path"
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "'..', '.' or an empty component in the path"
    return None


def repo_name_ok(repo: object) -> bool:
    if not isinstance(repo, str) or repo.count("/") != 1:
        return False
    return all(p and p not in (".", "..") and path_problem(p) is None for p in repo.split("/"))


# --- download and verify -----------------------------------------------------------


def _download(entry: Entry, repo: str, revision: str, *, force: bool, progress: bool) -> Path:
    endpoint = constants.hf_endpoint()
    api = HfApi(endpoint=endpoint)
    where = f"{entry.id}: HF repo {repo!r} at {endpoint}"
    with _hub_errors(entry, repo, revision, endpoint):
        commit = revision if COMMIT_RE.fullmatch(revision) else api.model_info(repo, revision=revision).sha
        if not commit:
            raise DownloadError(f"{endpoint}: no commit sha for {repo}@{revision}")
        commit = check_commit(commit, where)
        remote = check_tree(
            [
                RemoteFile(f.path, f.size, f.blob_id, f.lfs.sha256 if f.lfs else None)
                for f in api.list_repo_tree(repo, revision=commit, recursive=True)
                if isinstance(f, RepoFile)
            ],
            where,
        )
        log.info("downloading %s@%s (%d files) from %s", repo, commit[:12], len(remote), endpoint)
        snapshot = Path(
            snapshot_download(
                repo,
                revision=commit,
                cache_dir=constants.hf_hub_cache(),
                endpoint=endpoint,
                force_download=force,
                tqdm_class=None if progress else _QuietTqdm,
            )
        )
    files = _verify_download(entry, repo, commit, snapshot, remote, endpoint)
    if not COMMIT_RE.fullmatch(revision):
        # loading by repo id with HF_HUB_OFFLINE=1 looks up refs/<branch>; pinned downloads write none
        cache.atomic_write_bytes(snapshot.parent.parent / "refs" / revision, commit.encode())
    cache.write_receipt(
        entry.id,
        {
            "kind": "hf",
            "id": entry.id,
            "repo": repo,
            "revision": revision,
            "commit": commit,
            "endpoint": endpoint,
            "path": str(snapshot),
            "pulled_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "files": files,
        },
    )
    return snapshot


def _verify_download(
    entry: Entry, repo: str, commit: str, snapshot: Path, remote: dict[str, RemoteFile], endpoint: str
) -> dict[str, dict[str, Any]]:
    """Hash every file against its oid; on any mismatch drop the bad blobs and the receipt, then raise."""
    files: dict[str, dict[str, Any]] = {}
    bad: list[tuple[RemoteFile, str, int]] = []
    missing = [rel for rel in remote if not (snapshot / rel).is_file()]
    if missing:
        raise DownloadError(f"{repo}@{commit[:12]}: download incomplete, missing {', '.join(missing)}")
    for rel, rf in sorted(remote.items()):
        sha256, git_sha1, size = hash_file(snapshot / rel, git=rf.lfs_sha256 is None)
        actual = sha256 if rf.lfs_sha256 else (git_sha1 or "")
        if actual != rf.oid or size != rf.size:
            bad.append((rf, actual, size))
        files[rel] = {"sha256": sha256, "size": size, "oid": rf.oid, "lfs": rf.lfs_sha256 is not None}
    if bad:
        cache.drop_receipt(entry.id)
        for rf, _, _ in bad:
            _discard(snapshot / rf.path)
        rf, actual, size = bad[0]
        names = ", ".join(b[0].path for b in bad)
        raise IntegrityError(
            f"{repo}@{commit[:12]}: {len(bad)} file(s) do not match the repo's oids: {names}. "
            f"{rf.path}: expected {rf.algorithm} {rf.oid} ({rf.size} bytes), got {actual} ({size} bytes). "
            "The bad files were removed from the HF cache; pull again to re-download.",
            expected=rf.oid,
            actual=actual,
            source=f"{endpoint}/{repo}/resolve/{commit}/{rf.path}",
        )
    return files


def _reuse(entry: Entry, receipt: Mapping[str, Any]) -> Path | None:
    """Re-hash a receipted snapshot: the path if intact, None if files are missing, IntegrityError if changed."""
    snapshot = snapshot_dir(receipt["repo"], receipt["commit"])
    audit = _audit(snapshot, receipt["files"])
    if audit.changed:
        cache.drop_receipt(entry.id)
        for rel, _, _ in audit.changed:
            _discard(snapshot / rel)
        rel, expected, actual = audit.changed[0]
        raise IntegrityError(
            f"{entry.id}: {len(audit.changed)} cached file(s) changed since they were verified: "
            f"{', '.join(c[0] for c in audit.changed)}. {rel}: expected sha256 {expected}, got {actual}. "
            "They were removed from the HF cache; pull again (or `zoo pull --force`) to re-download.",
            expected=expected,
            actual=actual,
            source=str(snapshot / rel),
        )
    if audit.missing:
        log.info("%s: %d cached file(s) missing, downloading again", entry.id, len(audit.missing))
        return None
    return snapshot


def _pull_offline(entry: Entry, repo: str, revision: str) -> Path:
    receipt = cache.read_receipt(entry.id)
    if not _receipt_matches(receipt, repo, revision):
        raise OfflineError(
            f"offline mode (ZOO_OFFLINE / HF_HUB_OFFLINE): {entry.id} (HF repo {repo}@{revision}) "
            "is not in the cache; pull it once with network access",
            missing=[f"{repo}@{revision}"],
        )
    snapshot = _reuse(entry, receipt)
    if snapshot is None:
        gone = _audit(snapshot_dir(repo, receipt["commit"]), receipt["files"], hash_files=False).missing
        raise OfflineError(
            f"offline mode (ZOO_OFFLINE / HF_HUB_OFFLINE): {entry.id} ({repo}@{receipt['commit'][:12]}) "
            f"is missing {len(gone)} file(s) from the HF cache: {', '.join(gone)}",
            missing=gone,
        )
    return snapshot


# --- helpers -----------------------------------------------------------------------


class _QuietTqdm(tqdm):
    """Progress bars that never draw: no global huggingface_hub switch is flipped for a quiet pull."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.pop("name", None)
        super().__init__(*args, **{**kwargs, "disable": True})


def _repo_revision(entry: Entry) -> tuple[str, str]:
    if entry.source.kind != "hf" or not repo_name_ok(entry.source.repo):
        raise FormatError(f"{entry.id}: not an HF repo source (need source.repo 'org/name')")
    assert entry.source.repo is not None
    revision = entry.source.revision or DEFAULT_REVISION
    if not REVISION_RE.fullmatch(revision):
        raise FormatError(f"{entry.id}: source.revision {revision!r} is not a branch, tag or commit name")
    return entry.source.repo, revision


def _receipt_matches(receipt: Mapping[str, Any] | None, repo: str, revision: str) -> TypeGuard[Mapping[str, Any]]:
    """The receipt is for this repo and revision, and its names are safe to use as paths."""
    if not receipt or receipt.get("kind") != "hf" or receipt.get("repo") != repo:
        return False
    if not (receipt.get("revision") == revision or receipt.get("commit") == revision):
        return False
    files = receipt.get("files")
    if not isinstance(receipt.get("commit"), str) or not COMMIT_RE.fullmatch(receipt["commit"]):
        return False
    return isinstance(files, dict) and all(path_problem(rel) is None for rel in files)


def hash_file(path: Path, *, git: bool) -> tuple[str, str | None, int]:
    """sha256, git-blob sha1 (when `git`) and size, in one read."""
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    sha1 = hashlib.sha1(b"blob %d\0" % size) if git else None
    read = 0
    with open(path, "rb") as fh:
        while block := fh.read(constants.DOWNLOAD_CHUNK):
            sha256.update(block)
            if sha1 is not None:
                sha1.update(block)
            read += len(block)
    return sha256.hexdigest(), sha1.hexdigest() if sha1 else None, read


def _audit(snapshot: Path, files: Mapping[str, Mapping[str, Any]], *, hash_files: bool = True) -> Audit:
    audit = Audit()
    present = (
        {p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()} if snapshot.is_dir() else set()
    )
    audit.missing.extend(sorted(set(files) - present))
    audit.extra.extend(sorted(present - set(files)))
    if hash_files:
        for rel in sorted(present & set(files)):
            actual, _, _ = hash_file(snapshot / rel, git=False)
            if actual != files[rel]["sha256"]:
                audit.changed.append((rel, files[rel]["sha256"], actual))
    return audit


def _discard(pointer: Path) -> None:
    """Remove a snapshot file and the blob it links to, so nothing bad stays in the cache as good."""
    if pointer.is_symlink():
        pointer.resolve().unlink(missing_ok=True)
    pointer.unlink(missing_ok=True)


@contextlib.contextmanager
def _hub_errors(entry: Entry, repo: str, revision: str, endpoint: str) -> Iterator[None]:
    """Translate huggingface_hub / transport errors into zoo's DownloadError, naming the repo."""
    where = f"{entry.id}: HF repo {repo!r}"
    try:
        yield
    except RevisionNotFoundError:
        raise DownloadError(f"{where}: revision {revision!r} not found at {endpoint}") from None
    except RepositoryNotFoundError:
        raise DownloadError(
            f"{where} not found (or not accessible) at {endpoint}; check source.repo in the registry"
        ) from None
    except RemoteEntryNotFoundError as exc:
        raise DownloadError(f"{where}: a file listed for {revision!r} is missing on the server: {exc}") from None
    except (LocalEntryNotFoundError, httpx2.TransportError) as exc:
        raise DownloadError(f"{where}: cannot reach {endpoint}: {exc}") from exc
    except HfHubHTTPError as exc:
        raise DownloadError(f"{where}: Hub error at {endpoint}: {exc}") from exc
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # huggingface_hub refusing what the server sent
        if isinstance(exc, BadResponseError):
            raise
        raise BadResponseError(f"{where}: the server's answer at {endpoint} was refused: {exc}") from exc
    except OSError as exc:
        if isinstance(exc, DownloadError):
            raise
        raise DownloadError(f"{where}: download failed: {exc}") from exc
