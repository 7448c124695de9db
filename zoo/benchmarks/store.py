"""A resumable on-disk store of corpus embeddings.

Encoding a benchmark corpus takes hours for the large models, so it is written in fixed-size
chunks: chunk i holds items [i * chunk_size, (i + 1) * chunk_size) as one safetensors file,
written to a temp name and renamed, so a chunk file that exists is complete. That makes the
set of chunk files the progress index: a rerun skips them (resume), whichever engine wrote
them (this process, or Ray workers: zoo.benchmarks.ray_engine, whose chunks are the same
bytes). `store.json` pins what the chunks were computed from (model, data, settings), so
chunks of different origins never mix.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from safetensors.numpy import load_file, save

from .. import cache
from ..errors import InputError

META_NAME = "store.json"
Arrays = dict[str, np.ndarray]
T = TypeVar("T")


def fingerprint(*parts: Any) -> str:
    """sha256 of a JSON rendering: same inputs on any machine give the same store."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class StoreMeta:
    fingerprint: str
    size: int  # number of items
    chunk_size: int
    description: str = ""


class EmbeddingStore:
    """Chunk files under one directory; creating it twice with other metadata is an error."""

    def __init__(self, root: Path, meta: StoreMeta) -> None:
        if meta.size < 0 or meta.chunk_size < 1:
            raise InputError(f"store {root}: size {meta.size} and chunk size {meta.chunk_size} are invalid")
        self.root = Path(root)
        self.meta = meta
        existing = cache.read_json(self.root / META_NAME)
        if existing is None:
            cache.atomic_write_json(self.root / META_NAME, asdict(meta))
        elif StoreMeta(**existing) != meta:
            raise InputError(
                f"{self.root}: holds chunks of other origin or layout ({existing}); use another work directory"
            )

    @classmethod
    def open(cls, root: Path) -> EmbeddingStore:
        data = cache.read_json(Path(root) / META_NAME)
        if data is None:
            raise InputError(f"{root}: not an embedding store (no {META_NAME})")
        return cls(root, StoreMeta(**data))

    @property
    def num_chunks(self) -> int:
        return -(-self.meta.size // self.meta.chunk_size)

    def items(self, chunk: int) -> range:
        start = chunk * self.meta.chunk_size
        return range(start, min(start + self.meta.chunk_size, self.meta.size))

    def path(self, chunk: int) -> Path:
        return self.root / f"chunk-{chunk:06d}.safetensors"

    def has(self, chunk: int) -> bool:
        return self.path(chunk).is_file()

    def missing(self, chunks: Iterable[int] | None = None) -> list[int]:
        return [c for c in (range(self.num_chunks) if chunks is None else chunks) if not self.has(c)]

    @property
    def complete(self) -> bool:
        return not self.missing()

    def write(self, chunk: int, arrays: Arrays) -> None:
        self.write_bytes(chunk, chunk_bytes(arrays, len(self.items(chunk))))

    def write_bytes(self, chunk: int, data: bytes) -> None:
        """Store a chunk file made elsewhere (chunk_bytes in a Ray worker); it must hold this chunk's items."""
        if not 0 <= chunk < self.num_chunks:
            raise InputError(f"{self.root}: no chunk {chunk} (the store has {self.num_chunks})")
        header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
        if header.get("__metadata__", {}).get("items") != str(len(self.items(chunk))):
            raise InputError(f"{self.root}: chunk {chunk} was encoded for another item range")
        cache.atomic_write_bytes(self.path(chunk), data)

    def read(self, chunk: int) -> Arrays:
        return load_file(str(self.path(chunk)))

    def __iter__(self) -> Iterator[tuple[range, Arrays]]:
        """(item range, arrays) of every chunk in order; the store must be complete."""
        if missing := self.missing():
            raise InputError(
                f"{self.root}: {len(missing)} of {self.num_chunks} chunks are not encoded yet "
                f"(first missing: {missing[0]}); run zoo bench again to encode them"
            )
        for chunk in range(self.num_chunks):
            yield self.items(chunk), self.read(chunk)


def chunk_bytes(arrays: Arrays, items: int) -> bytes:
    """A chunk file's content: the arrays as safetensors, with the number of items they encode."""
    return save(arrays, metadata={"items": str(items)})


def fill(
    store: EmbeddingStore,
    items: Sequence[T],
    encode: Callable[[Sequence[T]], Arrays],
    progress: Callable[[Iterable[int]], Iterable[int]] = iter,
) -> int:
    """Encode the missing chunks in this process (`encode` maps a slice of `items` to arrays); returns how many."""
    if len(items) != store.meta.size:
        raise InputError(f"{store.root}: {len(items)} items for a store of {store.meta.size}")
    todo = store.missing()
    for chunk in progress(todo):
        span = store.items(chunk)
        store.write(chunk, encode(items[span.start : span.stop]))
    return len(todo)
