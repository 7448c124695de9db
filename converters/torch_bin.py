"""pytorch_model.bin -> model.safetensors for Hub repos that predate safetensors (some SPLADE repos).

Not a registry FORMAT: `zoo.conversion.adopt` calls `convert_bin_weights` while it links a
pulled snapshot, so a .bin-only folder gets model.safetensors instead of its pickle. Pickles
are read with `torch.load(weights_only=True)` (no code runs). Every tensor keeps its name,
dtype and bytes; tied weights, which share storage in the pickle, are written as separate
copies so nothing is dropped. The written files are re-read and compared bit for bit before
the function returns.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path

from zoo import constants
from zoo.errors import ConversionError, FormatError

BIN_NAME = "pytorch_model.bin"
BIN_INDEX_NAME = "pytorch_model.bin.index.json"
SAFETENSORS_NAMES = ("model.safetensors", "model.safetensors.index.json")


@dataclass(frozen=True)
class BinConversion:
    """What `convert_bin_weights` did, as paths relative to the snapshot root."""

    replaced: tuple[str, ...]  # source .bin files (and index) left out of the adopted directory
    written: tuple[str, ...]  # safetensors files (and index) written instead
    tensors: int

    def note(self) -> str:
        return (
            f"converted {', '.join(self.replaced)} to {', '.join(self.written)} "
            f"({self.tensors} tensors, bit-identical, loaded with torch.load(weights_only=True))"
        )


def bin_only_dirs(root: Path) -> list[Path]:
    """Folders under `root` (relative) with PyTorch pickled weights and no safetensors beside them."""
    found = {p.parent for p in root.rglob("*") if p.name in (BIN_NAME, BIN_INDEX_NAME) and p.is_file()}
    return sorted(d.relative_to(root) for d in found if not any((d / n).is_file() for n in SAFETENSORS_NAMES))


def convert_bin_weights(snapshot: Path, out: Path) -> BinConversion | None:
    """Write safetensors into `out` for every .bin-only folder of `snapshot`; None if there is none."""
    replaced: list[str] = []
    written: list[str] = []
    tensors = 0
    for rel in bin_only_dirs(snapshot):
        src_files = _bin_files(snapshot / rel)
        state = _load_state_dict(snapshot / rel, src_files)
        target = out / rel
        target.mkdir(parents=True, exist_ok=True)
        names = _save(state, target)
        _check_identical(state, target, names)
        replaced += [(rel / n).as_posix() for n in src_files]
        written += [(rel / n).as_posix() for n in names]
        tensors += len(state)
    if not replaced:
        return None
    return BinConversion(tuple(replaced), tuple(written), tensors)


def _bin_files(folder: Path) -> list[str]:
    """The pickle(s) of one folder: the index and its shards, or the single file."""
    index = folder / BIN_INDEX_NAME
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, AttributeError) as exc:
            raise FormatError(f"{index}: not a weight index: {exc}") from None
        return [BIN_INDEX_NAME, *shards]
    return [BIN_NAME]


def _load_state_dict(folder: Path, files: list[str]) -> dict:
    import torch

    state: dict[str, torch.Tensor] = {}
    for name in files:
        if name == BIN_INDEX_NAME:
            continue
        try:
            part = torch.load(folder / name, map_location="cpu", weights_only=True, mmap=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
            raise FormatError(f"{folder / name}: cannot be loaded with weights_only=True: {exc}") from None
        if not isinstance(part, dict) or not all(isinstance(v, torch.Tensor) for v in part.values()):
            raise FormatError(f"{folder / name}: not a flat state dict of tensors")
        clash = state.keys() & part.keys()
        if clash:
            raise FormatError(f"{folder / name}: tensors also in another shard: {sorted(clash)[:5]}")
        state.update(part)
    return state


def _save(state: dict, target: Path) -> list[str]:
    """Write shards of at most SHARD_BYTES; storage shared between tensors is copied, never dropped."""
    from huggingface_hub import save_torch_state_dict

    seen: set[int] = set()
    unshared = {}
    for key, tensor in state.items():
        ptr = tensor.untyped_storage().data_ptr()
        unshared[key] = tensor.clone() if ptr in seen else tensor
        seen.add(ptr)
    save_torch_state_dict(unshared, target, max_shard_size=constants.SHARD_BYTES)
    return sorted(p.name for p in target.iterdir() if p.name.startswith("model") and "safetensors" in p.name)


def _check_identical(state: dict, target: Path, names: list[str]) -> None:
    import torch
    from safetensors import safe_open

    found: dict[str, torch.Tensor] = {}
    for name in names:
        if name.endswith(".safetensors"):
            with safe_open(str(target / name), framework="pt") as fh:
                found.update({k: fh.get_tensor(k) for k in fh.keys()})  # noqa: SIM118 - safe_open is not iterable
    if set(found) != set(state):
        raise ConversionError(f"{target}: safetensors holds {len(found)} tensors, the .bin {len(state)}")
    for key, tensor in state.items():
        other = found[key]
        if other.dtype != tensor.dtype or other.shape != tensor.shape or not torch.equal(_bytes(other), _bytes(tensor)):
            raise ConversionError(f"{target}: tensor {key!r} changed on the way to safetensors")


def _bytes(tensor):
    """The raw bytes as uint8, so NaNs and -0.0 compare by bit pattern."""
    import torch

    return tensor.contiguous().reshape(-1).view(torch.uint8)
