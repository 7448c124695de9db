"""Run a model's own forward with its weights read from disk one block at a time.

The model is built on the meta device (no memory); forward pre-hooks give each block (a
tower's embeddings, one encoder layer, the pooler) its weights from the safetensors files just
before it runs, and forward hooks drop them after. Parameters outside every block (projections,
heads: small) are loaded once up front. So checking a LARGE model needs one layer's weights at a
time, not the model, and the code that runs is the model's own forward, not a re-implementation.
Embedding tables stay as stored and the rows they return are cast: the same values as a lookup in
a cast table, without a float64 copy of a 30k-row vocabulary.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence

import torch
from torch import nn

from ..errors import FormatError
from ..safetensors_io import TensorReader


@contextlib.contextmanager
def streamed(model: nn.Module, reader: TensorReader, blocks: Sequence[nn.Module], dtype: torch.dtype) -> Iterator[None]:
    """Within the block, `model` (built on meta) computes in `dtype` with weights streamed from `reader`."""
    prefixes = {id(module): name for name, module in model.named_modules()}
    inside = {id(p) for block in blocks for p in block.parameters()}
    embeddings = [m for m in model.modules() if isinstance(m, nn.Embedding)]

    # block-relative name -> the `dtype` storage it is cast into, reused by the next block of the
    # same structure (one encoder layer after another): a fresh 32 MB float64 kernel per layer
    # would be mapped and unmapped, and its pages faulted in, every time
    casts: dict[str, torch.Tensor] = {}

    def cast(key: str, value: torch.Tensor) -> torch.Tensor:
        if value.dtype == dtype:
            return value
        into = casts.get(key)
        if into is None or into.shape != value.shape:
            into = casts[key] = torch.empty(value.shape, dtype=dtype)
        return into.copy_(value)

    def load(module: nn.Module, prefix: str, recurse: bool = True) -> None:
        module.to_empty(device="cpu", recurse=recurse)
        owners: Iterable[tuple[str, nn.Module]] = module.named_modules(prefix=prefix) if recurse else [(prefix, module)]
        for owner_name, owner in owners:
            for short, param in owner.named_parameters(recurse=False):
                name = f"{owner_name}.{short}" if owner_name else short
                value = torch.from_numpy(reader.get(name))
                if value.shape != param.shape:
                    raise FormatError(
                        f"{reader.directory}: {name} has shape {tuple(value.shape)}, "
                        f"the model expects {tuple(param.shape)}"
                    )
                key = name.removeprefix(prefix) if recurse else name
                param.data = value if isinstance(owner, nn.Embedding) else cast(key, value)

    def before(module: nn.Module, args: object) -> None:
        load(module, prefixes[id(module)])

    def after(module: nn.Module, args: object, output: object) -> None:
        module.to_empty(device="meta")

    def cast_rows(module: nn.Module, args: object, output: torch.Tensor) -> torch.Tensor:
        return output.to(dtype)

    for name, module in model.named_modules():  # everything outside the blocks, once
        if any(id(p) not in inside for p in module.parameters(recurse=False)):
            load(module, name, recurse=False)
    handles = [
        h for block in blocks for h in (block.register_forward_pre_hook(before), block.register_forward_hook(after))
    ]
    handles += [table.register_forward_hook(cast_rows) for table in embeddings]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        model.to_empty(device="meta")
