"""Embedding store: atomic chunks, resume after an interruption, chunk files made elsewhere (Ray workers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zoo.benchmarks.store import EmbeddingStore, StoreMeta, chunk_bytes, fill
from zoo.errors import InputError

META = StoreMeta(fingerprint="f" * 64, size=10, chunk_size=3)
ITEMS = list(range(10))


def _encode(items) -> dict[str, np.ndarray]:
    return {"embeddings": np.asarray(items, dtype=np.float32)[:, None] * np.ones((1, 4), np.float32)}


def _all(store: EmbeddingStore) -> np.ndarray:
    return np.concatenate([arrays["embeddings"] for _, arrays in store])


def test_interrupted_fill_resumes_to_the_same_result(tmp_path: Path) -> None:
    calls: list[list[int]] = []

    def flaky(items: list[int]) -> dict[str, np.ndarray]:
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed while encoding the third chunk
        calls.append(items)
        return _encode(items)

    store = EmbeddingStore(tmp_path / "s", META)
    with pytest.raises(KeyboardInterrupt):
        fill(store, ITEMS, flaky)
    assert store.missing() == [2, 3]
    assert not list(store.root.glob(".*tmp"))  # nothing half-written is left under a chunk name
    with pytest.raises(InputError, match="2 of 4 chunks"):
        _all(store)
    resumed = []
    assert fill(EmbeddingStore(tmp_path / "s", META), ITEMS, lambda r: resumed.append(r) or _encode(r)) == 2
    assert resumed == [[6, 7, 8], [9]]
    whole = EmbeddingStore(tmp_path / "w", META)
    fill(whole, ITEMS, _encode)
    np.testing.assert_array_equal(_all(store), _all(whole))


def test_chunk_files_made_elsewhere_are_the_same_bytes(tmp_path: Path) -> None:
    """What a Ray worker sends back (chunk_bytes) is the file this process would write, checked on the way in."""
    here = EmbeddingStore(tmp_path / "here", META)
    fill(here, ITEMS, _encode)
    there = EmbeddingStore(tmp_path / "there", META)
    for chunk in range(there.num_chunks):
        items = ITEMS[there.items(chunk).start : there.items(chunk).stop]
        there.write_bytes(chunk, chunk_bytes(_encode(items), len(items)))
    assert [there.path(c).read_bytes() for c in range(4)] == [here.path(c).read_bytes() for c in range(4)]
    with pytest.raises(InputError, match="another item range"):
        there.write_bytes(3, chunk_bytes(_encode([0, 1, 2]), 3))  # chunk 3 holds one item
    with pytest.raises(InputError, match="no chunk 4"):
        there.write_bytes(4, chunk_bytes(_encode([0]), 1))
    with pytest.raises(InputError, match="9 items for a store of 10"):
        fill(EmbeddingStore(tmp_path / "short", META), ITEMS[:9], _encode)


def test_stores_of_other_origin_do_not_mix(tmp_path: Path) -> None:
    EmbeddingStore(tmp_path / "s", META)
    with pytest.raises(InputError, match="other origin"):
        EmbeddingStore(tmp_path / "s", StoreMeta("0" * 64, 10, 3))
    with pytest.raises(InputError, match="other origin"):
        EmbeddingStore(tmp_path / "s", StoreMeta("f" * 64, 10, 4))  # same origin, other chunk layout
