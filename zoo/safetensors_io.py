"""A streaming safetensors writer: header first, then one tensor at a time.

Shapes and dtypes are known before any data is read (TF checkpoints and torch state dicts
both expose them), so the header and the shard plan are computed up front and each tensor is
produced, written and dropped in turn. Peak memory is one tensor, not one shard or the model.
Each file is hashed from the bytes as they are written, on a second thread (hashlib and the
write both release the GIL), so the manifest need not read the model back.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import constants
from .cache import FileHash
from .errors import FormatError

_DTYPES: dict[np.dtype, str] = {
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
) -> dict[str, FileHash]:
    """Write `specs` into model.safetensors (or shards + index above the limit); return each file's hash."""
    limit = constants.SHARD_BYTES if max_shard_bytes is None else max_shard_bytes
    shards = shard_plan(specs, limit)
    if len(shards) == 1:
        names = [WEIGHTS_NAME]
    else:
        names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    written = {
        name: _write_one(directory / name, part, produce, on_tensor) for name, part in zip(names, shards, strict=True)
    }
    if len(shards) > 1:
        index = {
            "metadata": {"total_size": sum(s.nbytes for s in specs)},
            "weight_map": {s.name: name for name, shard in zip(names, shards, strict=False) for s in shard},
        }
        text = (json.dumps(index, indent=2, sort_keys=True) + "\n").encode()
        (directory / INDEX_NAME).write_bytes(text)
        written[INDEX_NAME] = FileHash.written(directory / INDEX_NAME, hashlib.sha256(text).hexdigest())
    return written


def _write_one(path: Path, specs: Sequence[TensorSpec], produce, on_tensor) -> FileHash:
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
    head = struct.pack("<Q", len(raw)) + raw
    digest = hashlib.sha256(head)
    with open(path, "wb") as fh, ThreadPoolExecutor(max_workers=1, thread_name_prefix="zoo-hash") as hasher:
        fh.write(head)
        for spec in specs:
            array = np.asarray(produce(spec), dtype=spec.dtype, order="C")  # keeps 0-d (ascontiguousarray makes 1-d)
            if tuple(array.shape) != tuple(spec.shape):
                raise ValueError(f"{spec.name}: produced shape {array.shape}, planned {spec.shape}")
            data = array.reshape(-1).view(np.uint8).data
            hashed = hasher.submit(digest.update, data)  # beside the write, on the same bytes
            fh.write(data)
            hashed.result()
            del data, array
            if on_tensor is not None:
                on_tensor(spec)
    return FileHash.written(path, digest.hexdigest())


def read_tensor_names(directory: Path) -> dict[str, str]:
    """Map tensor name -> file for a single-file or sharded safetensors model directory."""
    index = _index(directory)
    if index is not None:
        return index
    return dict.fromkeys(_header(directory / WEIGHTS_NAME)[0], WEIGHTS_NAME)


class TensorReader:
    """A model directory's tensors read one at a time with pread (single file or shards).

    Nothing is memory-mapped, so reading a whole model keeps one tensor in memory at a time and
    leaves no file pages mapped into the process (they would count towards its RSS).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._where = read_tensor_names(self.directory)
        self._files: dict[str, tuple[dict[str, Any], int, int]] = {}  # file -> (header, data start, fd)

    def names(self) -> list[str]:
        return sorted(self._where)

    def get(self, name: str) -> np.ndarray:
        if name not in self._where:
            raise FormatError(f"{self.directory}: no tensor {name!r}")
        header, start, fd = self._open(self._where[name])
        info = header[name]
        begin, end = info["data_offsets"]
        if info["dtype"] not in _NUMPY:
            raise FormatError(f"{self.directory}: {name} is {info['dtype']}, which numpy cannot hold")
        array = np.empty(info["shape"], dtype=_NUMPY[info["dtype"]])  # read straight into it: no second copy
        if (
            array.nbytes != end - begin
            or os.preadv(fd, [array.reshape(-1).view(np.uint8).data], start + begin) != array.nbytes
        ):
            raise FormatError(f"{self.directory}: {name} is cut short or its offsets do not match its shape")
        return array

    def _open(self, file: str) -> tuple[dict[str, Any], int, int]:
        if file not in self._files:
            header, start = _header(self.directory / file)
            self._files[file] = (header, start, os.open(self.directory / file, os.O_RDONLY))
        return self._files[file]

    def close(self) -> None:
        for _, _, fd in self._files.values():
            os.close(fd)
        self._files.clear()

    def __enter__(self) -> TensorReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_NUMPY: dict[str, np.dtype] = {code: dtype for dtype, code in _DTYPES.items()}


def _header(path: Path) -> tuple[dict[str, Any], int]:
    """(tensor name -> {dtype, shape, data_offsets}, where the data starts) of one safetensors file."""
    try:
        with open(path, "rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(length))
    except (OSError, struct.error, ValueError) as exc:
        raise FormatError(f"{path}: not a readable safetensors file ({exc})") from None
    header.pop("__metadata__", None)
    return header, 8 + length


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
