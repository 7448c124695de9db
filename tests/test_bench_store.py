"""Embedding store: atomic chunks, resume after an interruption, shards that merge into one store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zoo.benchmarks.store import EmbeddingStore, Shard, StoreMeta, fill, merge
from zoo.errors import InputError

META = StoreMeta(fingerprint="f" * 64, size=10, chunk_size=3)


def _encode(items: range) -> dict[str, np.ndarray]:
    return {"embeddings": np.arange(items.start, items.stop, dtype=np.float32)[:, None] * np.ones((1, 4), np.float32)}


def _all(store: EmbeddingStore) -> np.ndarray:
    return np.concatenate([arrays["embeddings"] for _, arrays in store])


def test_interrupted_fill_resumes_to_the_same_result(tmp_path: Path) -> None:
    calls: list[range] = []

    def flaky(items: range) -> dict[str, np.ndarray]:
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed while encoding the third chunk
        calls.append(items)
        return _encode(items)

    store = EmbeddingStore(tmp_path / "s", META)
    with pytest.raises(KeyboardInterrupt):
        fill(store, flaky)
    assert store.missing() == [2, 3]
    assert not list(store.root.glob(".*tmp"))  # nothing half-written is left under a chunk name
    with pytest.raises(InputError, match="2 of 4 chunks"):
        _all(store)
    resumed = []
    assert fill(EmbeddingStore(tmp_path / "s", META), lambda r: resumed.append(r) or _encode(r)) == 2
    assert resumed == [range(6, 9), range(9, 10)]
    whole = EmbeddingStore(tmp_path / "w", META)
    fill(whole, _encode)
    np.testing.assert_array_equal(_all(store), _all(whole))


def test_two_shards_merged_equal_one(tmp_path: Path) -> None:
    for i in range(2):
        fill(EmbeddingStore(tmp_path / f"m{i}" / "ds", META), _encode, Shard(i, 2))
    assert EmbeddingStore.open(tmp_path / "m0" / "ds").missing() == [2, 3]
    assert EmbeddingStore.open(tmp_path / "m1" / "ds").missing() == [0, 1]
    assert merge([tmp_path / "m0", tmp_path / "m1"], tmp_path / "all") == 4
    merged = EmbeddingStore.open(tmp_path / "all" / "ds")
    single = EmbeddingStore(tmp_path / "one", META)
    fill(single, _encode)
    np.testing.assert_array_equal(_all(merged), _all(single))


def test_stores_of_other_origin_do_not_mix(tmp_path: Path) -> None:
    EmbeddingStore(tmp_path / "s", META)
    with pytest.raises(InputError, match="other origin"):
        EmbeddingStore(tmp_path / "s", StoreMeta("0" * 64, 10, 3))
    fill(EmbeddingStore(tmp_path / "x" / "s", StoreMeta("0" * 64, 10, 3)), _encode)
    with pytest.raises(InputError, match="other origin"):
        merge([tmp_path / "x"], tmp_path)


@pytest.mark.parametrize(("text", "chunks"), [("0/1", range(7)), ("0/3", range(2)), ("2/3", range(4, 7))])
def test_shards_are_contiguous_and_cover_everything(text: str, chunks: range) -> None:
    assert Shard.parse(text).chunks(7) == chunks
    assert sorted(c for i in range(3) for c in Shard(i, 3).chunks(7)) == list(range(7))


@pytest.mark.parametrize("text", ["3/3", "1", "-1/2", "a/b"])
def test_bad_shards_are_input_errors(text: str) -> None:
    with pytest.raises(InputError):
        Shard.parse(text)
