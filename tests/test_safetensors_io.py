"""The streaming writer produces files the safetensors library reads back exactly, sharded with an index."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from zoo.safetensors_io import INDEX_NAME, TensorSpec, read_tensor_names, shard_plan, write_safetensors


def make(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "a.weight": rng.standard_normal((7, 5)).astype(np.float32),
        "b.bias": rng.standard_normal((3,)).astype(np.float32),
        "c.scalar": np.array(1.5, dtype=np.float32),
        "d.ids": np.arange(6, dtype=np.int64).reshape(2, 3),
    }


def specs_of(tensors: dict[str, np.ndarray]) -> list[TensorSpec]:
    return [TensorSpec(k, tuple(v.shape), v.dtype) for k, v in tensors.items()]


def assert_hashed_as_written(directory: Path, written: dict) -> None:
    """Each returned hash is the sha256 of the file as it is on disk, and holds for it."""
    for name, hashed in written.items():
        assert hashed.sha256 == hashlib.sha256((directory / name).read_bytes()).hexdigest(), name
        assert hashed.holds_for(directory / name)


def test_single_file_round_trip(tmp_path):
    tensors = make(np.random.default_rng(0))
    produced: list[str] = []

    def produce(spec: TensorSpec) -> np.ndarray:
        produced.append(spec.name)
        return tensors[spec.name]

    written = write_safetensors(tmp_path, specs_of(tensors), produce)
    assert list(written) == ["model.safetensors"]
    assert_hashed_as_written(tmp_path, written)
    assert produced == list(tensors)  # each tensor produced exactly once, in order
    back = load_file(str(tmp_path / "model.safetensors"))
    assert set(back) == set(tensors)
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and np.array_equal(back[k], v)


def test_sharded_with_index(tmp_path):
    tensors = make(np.random.default_rng(1))
    names = write_safetensors(tmp_path, specs_of(tensors), lambda s: tensors[s.name], max_shard_bytes=100)
    assert INDEX_NAME in names and len(names) > 2
    assert_hashed_as_written(tmp_path, names)
    index = json.loads((tmp_path / INDEX_NAME).read_text())
    assert index["metadata"]["total_size"] == sum(v.nbytes for v in tensors.values())
    assert read_tensor_names(tmp_path) == index["weight_map"]
    for k, v in tensors.items():
        assert np.array_equal(load_file(str(tmp_path / index["weight_map"][k]))[k], v)


def test_shard_plan_never_splits_or_drops():
    specs = [TensorSpec(str(i), (n,), np.dtype("float32")) for i, n in enumerate([10, 30, 5, 40, 1])]
    shards = shard_plan(specs, max_shard_bytes=120)
    assert [s.name for shard in shards for s in shard] == [s.name for s in specs]
    assert all(sum(s.nbytes for s in shard) <= 160 for shard in shards)


def test_wrong_shape_is_refused(tmp_path):
    spec = TensorSpec("x", (2, 2), np.dtype("float32"))
    with pytest.raises(ValueError, match="planned"):
        write_safetensors(tmp_path, [spec], lambda s: np.zeros((4,), np.float32))
