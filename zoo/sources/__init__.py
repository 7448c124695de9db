"""Sources: fetch a registry entry's raw artifact into the cache, verified. Chosen by source kind."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

from .. import cache
from ..errors import InputError, NotCachedError
from ..registry import Entry

SOURCES: dict[str, str] = {"url": "zoo.sources.http", "hf": "zoo.sources.hf"}


def source_for(entry: Entry) -> ModuleType:
    return importlib.import_module(SOURCES[entry.source.kind])


def pull(entry: Entry, *, force: bool = False, progress: bool = False, repin: bool = False) -> Path:
    """Download (or reuse) `entry`'s artifact; returns the local directory of verified files.

    `repin` accepts a changed upstream file for a trust-on-first-use pin; only URL sources pin
    (Hub repos are checked against the oids the Hub itself publishes).
    """
    if repin:
        if entry.source.kind != "url":
            raise InputError(f"--repin applies to URL sources; {entry.id} is a Hub repo checked against its own oids")
        return source_for(entry).pull(entry, force=force, progress=progress, repin=True)
    return source_for(entry).pull(entry, force=force, progress=progress)


def cached(entry: Entry) -> Path | None:
    """The verified local copy, or None; never touches the network."""
    return source_for(entry).cached(entry)


def located(entry: Entry) -> tuple[Path, dict[str, Any]] | None:
    """The verified local copy and the receipt that describes it, from one read of the receipt.

    A concurrent `pull --force` may write a new receipt at any time: a caller that needs both the
    files and what they are (a conversion recording its source) must take them together.
    """
    receipt = cache.read_receipt(entry.id)
    if receipt is None:
        return None
    path = source_for(entry).cached(entry, receipt)
    return (path, receipt) if path is not None else None


def obtain(entry: Entry, *, progress: bool = False) -> tuple[Path, dict[str, Any]]:
    """`located`, pulling first when the entry is not in the cache."""
    found = located(entry)
    if found is None:
        pull(entry, progress=progress)
        found = located(entry)
    if found is None:
        raise NotCachedError(f"{entry.id}: its files went missing right after the pull; pull it again")
    return found
