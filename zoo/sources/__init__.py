"""Sources: fetch a registry entry's raw artifact into the cache, verified. Chosen by source kind."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from ..errors import InputError
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
