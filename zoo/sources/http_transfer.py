"""One URL's bytes into a part file: HEAD, one ranged conditional GET, and the digests of what arrived.

`zoo.sources.http` runs the pull (decisions, mirrors, retries, receipts); this module holds the
exchange it repeats. The status of an answer decides what happens next: `Restart` (the object is
not the version the part belongs to: 412, 416, a 206 that does not continue it), `Transient` (retry
after backoff: 5xx, a short read), `Missing` (this URL does not serve the object: the next
mirror). GCS's x-goog-hash and x-goog-generation headers are read here; a malformed digest there
is the server's fault (BadResponseError), not an integrity failure.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import google_crc32c
import httpx2

from .. import cache, constants
from ..errors import BadResponseError, DownloadError
from .base import RemoteInfo

logger = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_MISSING_STATUS = frozenset({401, 403, 404, 410})


# --- what the bytes of a part are -------------------------------------------------------


@dataclass(frozen=True)
class Digests:
    """What the bytes of one file hash to."""

    size: int
    sha256: str
    md5: str  # hex
    crc32c: str  # base64, as x-goog-hash writes it


@dataclass(frozen=True)
class PartRecord:
    """The `.part.json` beside a partial download: which object version its bytes belong to."""

    url: str
    etag: str | None
    generation: str | None
    size: int | None


class Hasher:
    """sha256, md5 and crc32c of the bytes seen so far, in step with the part file."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sha256, self.md5 = hashlib.sha256(), hashlib.md5()
        self.crc = google_crc32c.Checksum()
        self.count = 0

    def update(self, block: bytes) -> None:
        self.sha256.update(block)
        self.md5.update(block)
        self.crc.update(block)
        self.count += len(block)

    def rehash(self, path: Path) -> None:
        self.reset()
        for block in _read_blocks(path):
            self.update(block)

    def digests(self) -> Digests:
        return Digests(
            size=self.count,
            sha256=self.sha256.hexdigest(),
            md5=self.md5.hexdigest(),
            crc32c=base64.b64encode(self.crc.digest()).decode(),
        )


def hash_file(path: Path) -> Digests:
    hasher = Hasher()
    hasher.rehash(path)
    return hasher.digests()


def _read_blocks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while block := fh.read(constants.DOWNLOAD_CHUNK):
            yield block


# --- one exchange with the server ----------------------------------------------------


class Restart(Exception):
    """The server's object is not the one the part belongs to; start again from zero."""


class Transient(Exception):
    """Retry after backoff (5xx, short read)."""


class Missing(Exception):
    """This URL does not serve the object; try the next candidate."""


def head(client: httpx2.Client, url: str) -> RemoteInfo:
    response = client.head(url)
    if response.status_code in (405, 501):  # HEAD not supported: learn from the GET instead
        return RemoteInfo(url=url)
    _raise_for_status(response)
    return _remote_info(url, response.headers, response.headers.get("content-length"))


def stream(
    client: httpx2.Client,
    url: str,
    part: Path,
    part_record: Path,
    remote: RemoteInfo,
    offset: int,
    hasher: Hasher,
    bar: Any,
) -> RemoteInfo:
    """One GET from `offset` to the end of `part` (its PartRecord written to `part_record` when
    starting from zero); raises to restart (other version) or retry (short read)."""
    headers = {}
    if strong_etag(remote.etag):
        headers["If-Match"] = remote.etag or ""
    if offset:
        headers["Range"] = f"bytes={offset}-"
    with client.stream("GET", url, headers=headers) as response:
        if response.status_code == 412:
            raise Restart("the object changed (412 Precondition Failed)")
        if response.status_code == 416:
            raise Restart("the server refused the range (416)")
        _raise_for_status(response)
        got = _remote_info(url, response.headers, None)
        if response.status_code == 206:
            start, total = _content_range(response.headers.get("content-range"))
            if (
                start != offset
                or (remote.etag and got.etag and got.etag != remote.etag)
                or (None not in (total, remote.size) and total != remote.size)
            ):
                raise Restart(
                    f"the resumed response does not continue the part (offset {start}, size {total}, ETag {got.etag})"
                )
            total = total if total is not None else remote.size
        elif response.status_code == 200:
            total = _int(response.headers.get("content-length"))
            if offset:  # the server ignored Range: take this body from the start
                logger.info("%s: server answered 200 to a Range request; restarting from zero", url)
                hasher.reset()
                bar.reset(total=total)
                offset = 0
        else:
            raise DownloadError(f"unexpected HTTP {response.status_code}")
        if got.etag and got.etag != remote.etag:  # a 200 for another version than HEAD saw: this body rules
            remote = RemoteInfo(url=url)
        remote = RemoteInfo(
            url=url,
            size=total if total is not None else remote.size,
            etag=got.etag or remote.etag,
            md5=got.md5 or remote.md5,
            crc32c=got.crc32c or remote.crc32c,
            generation=got.generation or remote.generation,
            accept_ranges=remote.accept_ranges,
        )
        if offset == 0:
            cache.atomic_write_json(
                part_record,
                dataclasses.asdict(
                    PartRecord(url=url, etag=remote.etag, generation=remote.generation, size=remote.size)
                ),
            )
        received = offset
        with open(part, "r+b" if offset else "wb") as fh:
            fh.seek(offset)
            fh.truncate()
            try:
                for block in response.iter_raw():
                    if remote.size is not None and received + len(block) > remote.size:
                        raise DownloadError(f"the server sent more than the {remote.size} bytes it announced")
                    fh.write(block)
                    hasher.update(block)
                    received += len(block)
                    bar.update(len(block))
            finally:
                fh.flush()
    if remote.size is not None and received < remote.size:
        raise Transient(f"connection closed after {received} of {remote.size} bytes")
    return remote if remote.size is not None else dataclasses.replace(remote, size=received)


def _raise_for_status(response: httpx2.Response) -> None:
    status = response.status_code
    if status in _RETRY_STATUS:
        raise Transient(f"HTTP {status}")
    if status in _MISSING_STATUS:
        raise Missing(f"HTTP {status}")
    if status >= 400:
        raise DownloadError(f"HTTP {status}")


# --- headers ----------------------------------------------------------------------------


def _remote_info(url: str, headers: httpx2.Headers, length: str | None) -> RemoteInfo:
    hashes: dict[str, str] = {}
    for value in headers.get_list("x-goog-hash"):
        for item in value.split(","):
            name, sep, digest = item.strip().partition("=")
            if sep:
                hashes[name.lower()] = digest.strip()
    md5, crc32c = hashes.get("md5"), hashes.get("crc32c")
    if crc32c is not None:
        _b64_digest("crc32c", crc32c, 4)
    return RemoteInfo(
        url=url,
        size=_int(length),
        etag=headers.get("etag"),
        md5=_b64_digest("md5", md5, 16).hex() if md5 else None,
        crc32c=crc32c,
        generation=headers.get("x-goog-generation"),
        accept_ranges=headers.get("accept-ranges", "").lower() == "bytes",
    )


def _b64_digest(name: str, value: str, size: int) -> bytes:
    """A base64 digest from x-goog-hash; a malformed one is the server's fault, not an integrity failure."""
    try:
        digest = base64.b64decode(value, validate=True)
    except ValueError:
        digest = b""
    if len(digest) != size:
        raise BadResponseError(f"malformed x-goog-hash {name}={value!r} ({size} bytes of base64 expected)")
    return digest


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """`bytes START-END/TOTAL` -> (START, TOTAL); TOTAL may be `*`."""
    if not value or not value.startswith("bytes "):
        return None, None
    span, _, total = value[6:].partition("/")
    return _int(span.partition("-")[0]), _int(total)


def _int(value: str | None) -> int | None:
    try:
        number = int(value) if value is not None else None
    except ValueError:
        return None
    return number if number is None or number >= 0 else None


def strong_etag(etag: str | None) -> bool:
    return bool(etag) and not (etag or "").startswith("W/")
