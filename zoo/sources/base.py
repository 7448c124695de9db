"""What every source shares: how a registry entry's raw artifact is fetched and checked.

A source module (http, hf; chosen in zoo.sources by `source.kind`) exposes
`pull(entry, *, force, progress) -> Path` and `cached(entry) -> Path | None`. Both write/read
the receipt in the cache (see zoo.cache): a receipt exists only after every byte was verified,
so `cached` needs no network.
"""

from __future__ import annotations

from dataclasses import dataclass


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
