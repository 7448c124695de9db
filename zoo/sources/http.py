"""URL sources (public GCS zips): resumable, verified download, then safe extraction.

`pull` decides first (reuse / extract / fetch) from local state alone, then acts. Bytes go to
`<file>.part` with a `.part.json` record (url, etag, generation, size), so a broken connection
resumes with `Range` + `If-Match`, in this run or the next; a changed object (412, other ETag)
restarts from zero and never splices two versions, a few times with backoff, then gives up and
says so. A host name that does not resolve fails at once (the next mirror is tried). The
completed file is checked (size, GCS md5/crc32c, registry hashes, sha256 or its
trust-on-first-use pin, which records the mirror it came from) before it gets its final name.
Any mismatch deletes the bytes. The whole pull runs under the model's lock, and the receipt is
re-read after taking it, so concurrent pulls of one model download once.

One HEAD and one ranged GET into the part, with the running digests, are in `http_transfer`;
this module owns the decisions around them (which URL, retry, restart, give up).

The archive is extracted into `raw/<id>/<archive sha256>/` and the receipt then points at that
directory: a `pull --force` never changes the files of a directory a conversion is reading, and
older versions are removed only while no conversion of the model holds its lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
import shutil
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import httpx2
from tqdm import tqdm

from .. import cache, constants
from ..errors import BadResponseError, DownloadError, FormatError, IntegrityError, OfflineError, UnsafeArchiveError
from ..registry import Entry
from .base import RemoteInfo
from .extract import safe_extract
from .http_transfer import Digests, Hasher, Missing, PartRecord, Restart, Transient, hash_file, stream, strong_etag
from .http_transfer import head as _head  # looked up here on each call, so a test can stand in for it

logger = logging.getLogger(__name__)

Action = Literal["reuse", "extract", "fetch"]


# --- local state and the pure decisions ---------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Where one URL entry's files live in the cache."""

    paths: cache.CachePaths
    archive: Path

    @property
    def part(self) -> Path:
        return self.archive.with_name(self.archive.name + ".part")

    @property
    def part_record(self) -> Path:
        return self.archive.with_name(self.archive.name + ".part.json")

    @property
    def archive_record(self) -> Path:
        return self.archive.with_name(self.archive.name + ".json")


def layout(entry: Entry) -> Layout:
    p = cache.paths(entry.id)
    name = PurePosixPath(unquote(urlsplit(_url(entry)).path)).name
    if name in ("", ".", ".."):
        name = f"{entry.id}.{entry.source.archive or 'bin'}"
    return Layout(p, p.download_dir / name)


def receipt_matches(entry: Entry, receipt: dict[str, Any] | None) -> bool:
    """A receipt stands for this entry only if it was made from the same URL and expected bytes."""
    if not receipt:
        return False
    src = entry.source
    return (
        receipt.get("url") == src.url
        and (src.sha256 is None or receipt.get("sha256") == src.sha256)
        and (src.size is None or receipt.get("size") == src.size)
    )


def decide(*, receipt_ok: bool, archive_ok: bool, force: bool) -> Action:
    """reuse the extracted tree, re-extract a verified archive, or fetch (resuming any part)."""
    if force:
        return "fetch"
    if receipt_ok:
        return "reuse"
    return "extract" if archive_ok else "fetch"


def resume_offset(record: PartRecord | None, part_bytes: int, remote: RemoteInfo) -> int:
    """Bytes of the part that belong to the remote object version; 0 restarts the download."""
    if record is None or part_bytes <= 0 or not strong_etag(remote.etag):
        return 0
    if record.etag != remote.etag or record.size != remote.size:
        return 0
    if remote.size is not None and part_bytes > remote.size:
        return 0
    return part_bytes


def check_digests(entry: Entry, remote: RemoteInfo, got: Digests, url: str) -> None:
    """Size, then md5/crc32c (server and registry), then sha256; raises IntegrityError on the first miss."""
    src = entry.source
    expected_size = src.size if src.size is not None else remote.size
    checks: list[tuple[str, str | None, str, str]] = [
        (
            "size",
            None if expected_size is None else str(expected_size),
            str(got.size),
            "registry" if src.size is not None else "Content-Length",
        ),
        ("md5", remote.md5, got.md5, "x-goog-hash"),
        ("crc32c", remote.crc32c, got.crc32c, "x-goog-hash"),
        ("md5", src.md5, got.md5, "registry"),
        ("crc32c", src.crc32c, got.crc32c, "registry"),
        ("sha256", src.sha256, got.sha256, "registry"),
    ]
    for what, expected, actual, origin in checks:
        if expected is not None and expected != actual:
            raise IntegrityError(
                f"{entry.id}: {what} mismatch for {url}: expected {expected} ({origin}), got {actual}; "
                "the download was deleted",
                expected=expected,
                actual=actual,
                source=url,
            )


def check_pin(entry: Entry, pin: dict[str, Any] | None, got: Digests, url: str) -> None:
    """Trust on first use: once pinned, a different upstream file is an error, never an overwrite.

    A pin made for another URL does not apply: the registry itself moved the entry.
    """
    if pin is None or pin.get("url") != entry.source.url:
        return
    if pin.get("sha256") == got.sha256 and pin.get("size") == got.size:
        return
    via = f" (pinned from the mirror {pin['fetched_from']})" if pin.get("mirror") and pin.get("fetched_from") else ""
    raise IntegrityError(
        f"{entry.id}: the upstream file changed since it was pinned"
        f" on {pin.get('pinned_at', '?')}{via}: {entry.source.url} was sha256 {pin.get('sha256')}"
        f" ({pin.get('size')} bytes), it is now sha256 {got.sha256} ({got.size} bytes). The download was"
        f" deleted. If the change is expected, re-pin with `zoo pull {entry.id} --force --repin`.",
        expected=pin.get("sha256"),
        actual=got.sha256,
        source=url,
    )


def candidate_urls(url: str) -> list[str]:
    """Each ZOO_MIRRORS base with the URL's path, then the URL itself."""
    parts = urlsplit(url)
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    return [base + tail for base in constants.url_mirrors()] + [url]


# --- public API -------------------------------------------------------------------------


def cached(entry: Entry, receipt: dict[str, Any] | None = None) -> Path | None:
    """The extracted directory if a receipt for this entry exists and every file it lists is there
    with its recorded size; no rehash (`zoo cache verify` does that). `receipt`: one already read."""
    receipt = cache.read_receipt(entry.id) if receipt is None else receipt
    if not receipt_matches(entry, receipt):
        return None
    assert receipt is not None
    raw = cache.receipt_raw_dir(entry.id, receipt)
    files = receipt.get("files")
    if raw is None or not isinstance(files, dict):
        return None
    for rel, info in files.items():
        try:
            if (raw / rel).stat().st_size != info["size"]:
                return None
        except (OSError, TypeError, KeyError):
            return None
    return raw


def pull(entry: Entry, *, force: bool = False, progress: bool = False, repin: bool = False) -> Path:
    """Download, verify and extract `entry`'s archive; returns the extracted directory.

    `repin` accepts a changed upstream file for an entry whose registry sha256 is null.
    """
    lay = layout(entry)
    offline = constants.is_offline()
    before = cache.read_receipt(entry.id)
    if not force and (raw := cached(entry, before)) is not None:
        return raw
    if offline and (force or not _archive_ok(lay)):
        raise _offline_error(entry, lay, force=force)  # at once: no lock wait, no socket
    with cache.locked(entry.id):
        now = cache.read_receipt(entry.id)
        if force and now != before and (raw := cached(entry, now)) is not None:
            return raw  # another process re-pulled while we waited for the lock
        return _pull_locked(entry, lay, force=force, progress=progress, repin=repin, offline=offline)


def _offline_error(entry: Entry, lay: Layout, *, force: bool) -> OfflineError:
    missing = [
        f"extracted files {lay.paths.raw_dir} with receipt {lay.paths.receipt}",
        f"archive {lay.archive} (from {entry.source.url})",
    ]
    why = "--force needs the network" if force else "it is not in the cache"
    return OfflineError(
        f"ZOO_OFFLINE is set and {entry.id!r} cannot be pulled: {why}; missing: "
        + "; ".join(missing)
        + ". Unset ZOO_OFFLINE, or pull it on a networked machine"
        " into the same ZOO_HOME.",
        missing=missing,
    )


def _pull_locked(entry: Entry, lay: Layout, *, force: bool, progress: bool, repin: bool, offline: bool) -> Path:
    raw = cached(entry)
    action = decide(receipt_ok=raw is not None, archive_ok=_archive_ok(lay), force=force)
    logger.debug("%s: %s", entry.id, action)
    if action == "reuse" and raw is not None:
        return raw
    if action == "extract":
        remote, got = _reverify_archive(entry, lay, repin=repin)
    elif offline:
        raise _offline_error(entry, lay, force=force)
    else:
        if force:
            _discard(lay.archive, lay.archive_record, lay.part, lay.part_record)
        remote, got = _fetch_any(entry, lay, progress=progress, repin=repin)
    return _install(entry, lay, remote, got)


def _reverify_archive(entry: Entry, lay: Layout, *, repin: bool) -> tuple[RemoteInfo, Digests]:
    """A completed archive left by an earlier run (e.g. killed while extracting) is rehashed, not refetched."""
    record = cache.read_json(lay.archive_record) or {}
    got = hash_file(lay.archive)
    remote = RemoteInfo(
        url=record.get("url") or entry.source.url or "",
        size=record.get("size"),
        etag=record.get("etag"),
        generation=record.get("generation"),
    )
    try:
        if record.get("sha256") != got.sha256:
            raise IntegrityError(
                f"{entry.id}: {lay.archive} changed on disk since it was verified "
                f"(sha256 {got.sha256}, recorded {record.get('sha256')}); it was deleted",
                expected=record.get("sha256"),
                actual=got.sha256,
                source=str(lay.archive),
            )
        _check_all(entry, remote, got, remote.url, repin=repin)
    except IntegrityError:
        _discard(lay.archive, lay.archive_record)
        raise
    return remote, got


def _check_all(entry: Entry, remote: RemoteInfo, got: Digests, url: str, *, repin: bool) -> None:
    check_digests(entry, remote, got, url)
    if entry.source.sha256 is None and not repin:
        check_pin(entry, cache.read_pin(entry.id), got, url)


def _install(entry: Entry, lay: Layout, remote: RemoteInfo, got: Digests) -> Path:
    """Extract the verified archive into raw/<id>/<sha256>/, then record the pin (if any) and receipt.

    The receipt moves from the old directory to the new one in one atomic write, so a failed
    extraction leaves an earlier good pull usable, and a directory already extracted from the
    same bytes (a `pull --force` of an unchanged file) is kept, not swapped under its readers.
    """
    raw_dir = lay.paths.raw_version(got.sha256)
    staging = cache.temp_sibling(raw_dir, ".staging")
    try:
        if entry.source.archive == "zip":
            safe_extract(lay.archive, staging)
        else:
            staging.mkdir(parents=True)
            shutil.copyfile(lay.archive, staging / lay.archive.name)
        files = cache.hash_tree(staging)
        if not (raw_dir.is_dir() and cache.compare_tree(raw_dir, files) == []):
            cache.replace_dir(staging, raw_dir)
    except (UnsafeArchiveError, FormatError):
        _discard(lay.archive, lay.archive_record)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):
            lay.paths.raw_dir.rmdir()  # only if nothing was ever extracted there
    identity = {
        "url": entry.source.url,
        "sha256": got.sha256,
        "size": got.size,
        "md5": got.md5,
        "crc32c": got.crc32c,
        "etag": remote.etag,
        "generation": remote.generation,
    }
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if entry.source.sha256 is None:
        pin = cache.read_pin(entry.id)
        if pin is None or pin.get("url") != entry.source.url or pin.get("sha256") != got.sha256:
            cache.write_pin(entry.id, {**identity, **pin_origin(entry, remote.url), "pinned_at": now})
            if remote.url != entry.source.url:
                logger.warning(
                    "%s: sha256 %s pinned from the mirror %s, not from %s (recorded in the pin as fetched_from)",
                    entry.id,
                    got.sha256,
                    remote.url,
                    entry.source.url,
                )
            else:
                logger.info("%s: pinned sha256 %s on first pull", entry.id, got.sha256)
    cache.write_receipt(
        entry.id,
        {
            **identity,
            "source": "url",
            "fetched_from": remote.url,
            "archive": str(lay.archive),
            "path": str(raw_dir),
            "files": files,
            "pulled_at": now,
        },
    )
    _drop_stale_versions(entry, keep=raw_dir)
    return raw_dir


def pin_origin(entry: Entry, fetched_from: str) -> dict[str, Any]:
    """Where a pinned hash was observed: the origin URL itself, or the mirror (never silently the origin)."""
    if fetched_from == entry.source.url:
        return {"fetched_from": fetched_from, "mirror": None}
    return {"fetched_from": fetched_from, "mirror": fetched_from[: len(fetched_from) - len(_url_tail(entry))]}


def _url_tail(entry: Entry) -> str:
    parts = urlsplit(entry.source.url or "")
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _drop_stale_versions(entry: Entry, keep: Path) -> None:
    """Remove other raw versions of the model (and leftovers of killed extractions), unless a
    conversion of the model is running: it may be reading one of them (`zoo cache prune` later)."""
    raw_root = cache.paths(entry.id).raw_dir
    with cache.try_locked(cache.paths(entry.id).convert_lock_file) as free:
        if not free:
            logger.info("%s: a conversion is running; older raw versions are left for `zoo cache prune`", entry.id)
            return
        for child in raw_root.iterdir():
            if child != keep:
                logger.info("%s: removing the superseded raw version %s", entry.id, child)
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)


# --- fetching: mirrors, retries, resuming (one exchange: zoo.sources.http_transfer) --------------


def _fetch_any(entry: Entry, lay: Layout, *, progress: bool, repin: bool) -> tuple[RemoteInfo, Digests]:
    """Try each candidate URL in order; integrity failures stop at once, network failures move on."""
    failures: list[str] = []
    refused = 0  # failures that were answers zoo refuses (BadResponseError), not the network
    lay.archive.parent.mkdir(parents=True, exist_ok=True)
    with httpx2.Client(
        timeout=httpx2.Timeout(constants.DOWNLOAD_TIMEOUT_S),
        follow_redirects=True,
        headers={"Accept-Encoding": "identity", "User-Agent": "zoo"},
    ) as client:
        for url in candidate_urls(entry.source.url or ""):
            try:
                remote, got = _fetch(client, entry, lay, url, progress=progress)
            except (DownloadError, Missing) as exc:
                failures.append(f"{url}: {exc}")
                refused += isinstance(exc, BadResponseError)
                logger.warning("%s: %s failed: %s", entry.id, url, exc)
                continue
            try:
                _check_all(entry, remote, got, url, repin=repin)
            except IntegrityError:
                _discard(lay.part, lay.part_record)
                raise
            cache.atomic_write_json(
                lay.archive_record,
                {"url": url, "etag": remote.etag, "generation": remote.generation, **dataclasses.asdict(got)},
            )
            lay.part.replace(lay.archive)
            lay.part_record.unlink(missing_ok=True)
            return dataclasses.replace(remote, url=url), got
    error = BadResponseError if refused == len(failures) else DownloadError
    raise error(f"{entry.id}: could not download {entry.source.url}: " + "; ".join(failures))


def _fetch(client: httpx2.Client, entry: Entry, lay: Layout, url: str, *, progress: bool) -> tuple[RemoteInfo, Digests]:
    """Download `url` into the part file, resuming and retrying until it is complete."""
    hasher = Hasher()
    failures = last_count = restarts = 0
    remote: RemoteInfo | None = None
    with tqdm(
        total=None, unit="B", unit_scale=True, unit_divisor=1024, desc=entry.id, disable=not progress, leave=False
    ) as bar:
        while True:
            try:
                if remote is None:
                    remote = _head(client, url)
                    _check_early_size(entry, remote, url, lay)
                offset = _prepare_part(lay, url, remote, hasher)
                bar.reset(total=remote.size)
                bar.update(offset)
                if offset and offset == remote.size:  # an earlier run got every byte
                    return remote, hasher.digests()
                return stream(client, url, lay.part, lay.part_record, remote, offset, hasher, bar), hasher.digests()
            except Restart as exc:
                _discard(lay.part, lay.part_record)
                hasher.reset()
                remote = None
                restarts += 1
                if restarts > constants.DOWNLOAD_RESTARTS:
                    raise DownloadError(
                        f"gave up after {restarts} attempts, each ended by: {exc} (the object keeps changing,"
                        " or the server refuses every conditional request); nothing was kept"
                    ) from None
                delay = 0.0 if restarts == 1 else _backoff(restarts - 1)
                logger.warning("%s: %s; restarting from zero (restart %d) in %.1fs", entry.id, exc, restarts, delay)
                time.sleep(delay)
            except (httpx2.UnsupportedProtocol, httpx2.InvalidURL, httpx2.TooManyRedirects) as exc:
                raise DownloadError(f"{type(exc).__name__}: {exc} (not retried)") from None
            except (Transient, httpx2.TransportError) as exc:
                if isinstance(exc, httpx2.TransportError) and (why := name_resolution_failure(exc)):
                    host = urlsplit(url).hostname
                    raise DownloadError(f"cannot resolve the host name {host!r}: {why} (not retried)") from None
                if hasher.count > last_count:  # progress was made: a fresh retry budget for the rest
                    failures, last_count = 0, hasher.count
                failures += 1
                if failures > constants.DOWNLOAD_RETRIES:
                    raise DownloadError(f"gave up after {failures} attempts: {exc}") from exc
                delay = _backoff(failures)
                logger.warning("%s: %s (attempt %d); retrying in %.1fs", entry.id, exc, failures, delay)
                time.sleep(delay)


def _backoff(attempt: int) -> float:
    """Exponential backoff with jitter for the `attempt`-th retry (1-based)."""
    delay = min(constants.BACKOFF_MAX_S, constants.BACKOFF_BASE_S * 2 ** (attempt - 1))
    return delay * (0.5 + random.random() / 2)


def name_resolution_failure(exc: BaseException) -> str | None:
    """Why the host name did not resolve, if that is what `exc` is (a DNS answer will not change on retry)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, socket.gaierror):
            return current.strerror or str(current)
        current = current.__cause__ or current.__context__
    return None


def _check_early_size(entry: Entry, remote: RemoteInfo, url: str, lay: Layout) -> None:
    """A registry size that the server contradicts fails before any byte is fetched."""
    size = entry.source.size
    if size is not None and remote.size is not None and size != remote.size:
        _discard(lay.part, lay.part_record)
        raise IntegrityError(
            f"{entry.id}: size mismatch for {url}: expected {size} (registry), the server"
            f" reports {remote.size}; nothing was downloaded",
            expected=str(size),
            actual=str(remote.size),
            source=url,
        )


def _prepare_part(lay: Layout, url: str, remote: RemoteInfo, hasher: Hasher) -> int:
    """Keep the part if it belongs to `remote`, hashing what is on disk; else start it afresh."""
    try:
        record: PartRecord | None = PartRecord(**cache.read_json(lay.part_record))  # type: ignore[arg-type]
    except (TypeError, ValueError):  # absent or unreadable: the part cannot be trusted
        record = None
    part_bytes = lay.part.stat().st_size if lay.part.exists() else 0
    offset = resume_offset(record, part_bytes, remote)
    if offset == 0:
        _discard(lay.part, lay.part_record)
        hasher.reset()
    elif hasher.count != offset:
        hasher.rehash(lay.part)
    return offset


# --- small helpers ----------------------------------------------------------------------


def _archive_ok(lay: Layout) -> bool:
    return lay.archive.is_file() and lay.archive_record.is_file()


def _discard(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _url(entry: Entry) -> str:
    if entry.source.kind != "url" or not entry.source.url:
        raise FormatError(f"{entry.id}: not a URL source (kind {entry.source.kind!r}, url {entry.source.url!r})")
    return entry.source.url
