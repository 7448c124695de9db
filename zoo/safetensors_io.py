"""A streaming safetensors writer: header first, then one tensor at a time.

Shapes and dtypes are known before any data is read (TF checkpoints and torch state dicts
both expose them), so the header and the shard plan are computed up front and each tensor is
produced, written and dropped in turn. Peak memory is one tensor, not one shard or the model.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import constants
from .errors import FormatError

_DTYPES = {
    np.dtype("float32"): "F32",
    np.dtype("float16"): "F16",
    np.dtype("float64"): "F64",
    np.dtype("int64"): "I64",
    np.dtype("int32"): "I32",
    np.dtype("int8"): "I8",
    np.dtype("uint8"): "U8",
    np.dtype("bool"): "BOOL",
}
WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


def shard_plan(specs: Sequence[TensorSpec], max_shard_bytes: int) -> list[list[TensorSpec]]:
    shards: list[list[TensorSpec]] = [[]]
    size = 0
    for spec in specs:
        if shards[-1] and size + spec.nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(spec)
        size += spec.nbytes
    return shards


def write_safetensors(
    directory: Path,
    specs: Sequence[TensorSpec],
    produce: Callable[[TensorSpec], np.ndarray],
    *,
    max_shard_bytes: int | None = None,
    on_tensor: Callable[[TensorSpec], None] | None = None,
) -> list[str]:
    """Write `specs` into model.safetensors (or shards + index above the limit); return file names."""
    limit = constants.SHARD_BYTES if max_shard_bytes is None else max_shard_bytes
    shards = shard_plan(specs, limit)
    if len(shards) == 1:
        names = [WEIGHTS_NAME]
    else:
        names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    for name, shard in zip(names, shards, strict=False):
        _write_one(directory / name, shard, produce, on_tensor)
    if len(shards) > 1:
        index = {
            "metadata": {"total_size": sum(s.nbytes for s in specs)},
            "weight_map": {s.name: name for name, shard in zip(names, shards, strict=False) for s in shard},
        }
        (directory / INDEX_NAME).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
        names.append(INDEX_NAME)
    return names


def _write_one(path: Path, specs: Sequence[TensorSpec], produce, on_tensor) -> None:
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for spec in specs:
        header[spec.name] = {
            "dtype": _DTYPES[spec.dtype],
            "shape": list(spec.shape),
            "data_offsets": [offset, offset + spec.nbytes],
        }
        offset += spec.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # safetensors aligns the data section to 8 bytes
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        for spec in specs:
            array = np.asarray(produce(spec), dtype=spec.dtype, order="C")  # keeps 0-d (ascontiguousarray makes 1-d)
            if tuple(array.shape) != tuple(spec.shape):
                raise ValueError(f"{spec.name}: produced shape {array.shape}, planned {spec.shape}")
            fh.write(array.reshape(-1).view(np.uint8).data)
            del array
            if on_tensor is not None:
                on_tensor(spec)
        fh.flush()


def read_tensor_names(directory: Path) -> dict[str, str]:
    """Map tensor name -> file for a single-file or sharded safetensors model directory."""
    from safetensors import SafetensorError, safe_open

    index = _index(directory)
    if index is not None:
        return index
    try:
        with safe_open(str(directory / WEIGHTS_NAME), framework="np") as fh:
            return dict.fromkeys(fh.keys(), WEIGHTS_NAME)
    except (OSError, SafetensorError) as exc:  # missing, or a damaged header
        raise FormatError(f"{directory / WEIGHTS_NAME}: unreadable safetensors file ({exc})") from None


def weight_files(directory: Path) -> list[str]:
    """The safetensors files of a model directory (the index's shards, or model.safetensors); [] if none."""
    index = _index(directory)
    if index is not None:
        return sorted(set(index.values()))
    return [WEIGHTS_NAME] if (directory / WEIGHTS_NAME).is_file() else []


def _index(directory: Path) -> dict[str, str] | None:
    """The weight map of model.safetensors.index.json, None when the model is not sharded."""
    path = directory / INDEX_NAME
    if not path.is_file():
        return None
    try:
        return dict(json.loads(path.read_text())["weight_map"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"{path}: not a safetensors weight index ({exc})") from None
