"""The common second half of both TAPAS converters: check the plan, stream the tensors out.

Expected shapes come from the zoo model built on the `meta` device (no memory allocated), so
the rule table is checked against the real model, not against a second list of shapes.
Tensors are produced one at a time straight from the TF reader into the safetensors writer.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from converters.rules import Plan, check_shapes
from converters.tapas_checkpoint import TapasSource, copy_tokenizer_files
from zoo.errors import MappingError
from zoo.safetensors_io import TensorSpec, write_safetensors

FLOAT32 = np.dtype(np.float32)


def expected_shapes(model_cls, config) -> dict[str, tuple[int, ...]]:
    """State-dict shapes of `model_cls(config)`, computed on the meta device."""
    with torch.device("meta"):
        model = model_cls(config)
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def write_model(source: TapasSource, the_plan: Plan, model_cls, config, out: Path, progress: bool) -> list[str]:
    """Check `the_plan` against the model, then write safetensors, config.json and tokenizer files."""
    expected = expected_shapes(model_cls, config)
    check_shapes(the_plan, {m.source: source.shape(m.source) for m in the_plan.mapped}, expected)
    not_float = [f"{m.source} ({source.dtype(m.source)})" for m in the_plan.mapped if source.dtype(m.source) != FLOAT32]
    if not_float:
        raise MappingError(f"expected float32 weights, found: {', '.join(not_float)}")

    by_target = the_plan.by_target()
    specs = [TensorSpec(name, shape, FLOAT32) for name, shape in expected.items()]

    def produce(spec: TensorSpec) -> np.ndarray:
        mapped = by_target[spec.name]
        return mapped.apply(source.get(mapped.source))

    with tqdm(total=sum(s.nbytes for s in specs), unit="B", unit_scale=True, disable=not progress,
              desc="convert") as bar:
        written = write_safetensors(out, specs, produce, on_tensor=lambda s: bar.update(s.nbytes))
    config.save_pretrained(out)
    return [*written, "config.json", *copy_tokenizer_files(source.files, out, config.max_position_embeddings)]
