"""A resumable, shardable on-disk store of corpus embeddings.

Encoding a benchmark corpus takes hours for the large models, so it is written in fixed-size
chunks: chunk i holds items [i * chunk_size, (i + 1) * chunk_size) as one safetensors file,
written to a temp name and renamed, so a chunk file that exists is complete. That makes the
set of chunk files the progress index: a rerun skips them (resume), and `--shard i/n` encodes
a contiguous run of chunks so several machines fill one store between them. Stores filled on
different machines are combined by copying chunk files (`merge`); `store.json` pins what the
chunks were computed from (model, data, settings), so chunks of different origins never mix.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save

from .. import cache
from ..errors import InputError

META_NAME = "store.json"
Arrays = dict[str, np.ndarray]


def fingerprint(*parts: Any) -> str:
    """sha256 of a JSON rendering: same inputs on any machine give the same store."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (0-based): a contiguous run of chunks."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match or not 0 <= int(match.group(1)) < int(match.group(2)):
            raise InputError(f"--shard {text!r}: expected i/n with 0 <= i < n (e.g. 0/4)")
        return cls(int(match.group(1)), int(match.group(2)))

    def chunks(self, num_chunks: int) -> range:
        return range(num_chunks * self.index // self.count, num_chunks * (self.index + 1) // self.count)

    @property
    def is_whole(self) -> bool:
        return self.count == 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


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
        cache.atomic_write_bytes(self.path(chunk), save(arrays, metadata={"items": str(len(self.items(chunk)))}))

    def read(self, chunk: int) -> Arrays:
        return load_file(str(self.path(chunk)))

    def __iter__(self) -> Iterator[tuple[range, Arrays]]:
        """(item range, arrays) of every chunk in order; the store must be complete."""
        if missing := self.missing():
            raise InputError(
                f"{self.root}: {len(missing)} of {self.num_chunks} chunks are not encoded yet "
                f"(first missing: {missing[0]}); run the remaining shards or merge their stores"
            )
        for chunk in range(self.num_chunks):
            yield self.items(chunk), self.read(chunk)


def fill(
    store: EmbeddingStore,
    encode: Callable[[range], Arrays],
    shard: Shard = Shard(),
    progress: Callable[[Iterable[int]], Iterable[int]] = iter,
) -> int:
    """Encode this shard's missing chunks (`encode` maps an item range to arrays); returns how many."""
    todo = store.missing(shard.chunks(store.num_chunks))
    for chunk in progress(todo):
        store.write(chunk, encode(store.items(chunk)))
    return len(todo)


def merge(sources: Sequence[Path], dest: Path) -> int:
    """Copy the chunk files of every store under `sources` into the same relative place under `dest`.

    Stores are matched by their path relative to each source root; their store.json must agree.
    Returns the number of chunk files copied.
    """
    copied = 0
    for source in map(Path, sources):
        metas = sorted(source.rglob(META_NAME))
        if not metas:
            raise InputError(f"{source}: no embedding stores found to merge")
        for meta_path in metas:
            src = EmbeddingStore.open(meta_path.parent)
            dst = EmbeddingStore(dest / meta_path.parent.relative_to(source), src.meta)
            for chunk in range(src.num_chunks):
                if src.has(chunk) and not dst.has(chunk):
                    tmp = cache.temp_sibling(dst.path(chunk))
                    shutil.copyfile(src.path(chunk), tmp)
                    tmp.replace(dst.path(chunk))
                    copied += 1
    return copied
