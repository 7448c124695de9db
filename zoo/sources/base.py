"""The Source protocol: how a registry entry's raw artifact is fetched and checked.

A source module (http, hf) exposes `pull(entry, *, force, progress) -> Path` and
`cached(entry) -> Path | None`. Both write/read the receipt in the cache (see zoo.cache):
a receipt exists only after every byte was verified, so `cached` needs no network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..registry import Entry


@dataclass(frozen=True)
class RemoteInfo:
    """What a server says about an object before we download it."""

    url: str
    size: int | None = None
    etag: str | None = None
    md5: str | None = None  # hex
    crc32c: str | None = None  # base64, as in x-goog-hash
    generation: str | None = None
    accept_ranges: bool = False


class SourceModule(Protocol):
    def pull(self, entry: Entry, *, force: bool = False, progress: bool = False) -> Path: ...

    def cached(self, entry: Entry) -> Path | None: ...
