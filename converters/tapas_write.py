"""The common second half of both TAPAS converters: check the plan, stream the tensors out.

Expected shapes come from the zoo model built on the `meta` device (no memory allocated), so
the rule table is checked against the real model, not against a second list of shapes.
Tensors are produced one at a time from the TF reader into the safetensors writer; a small
prefetch thread reads and transposes the next tensor while the current one is written (and
hashed, zoo.safetensors_io), and the source files are hashed on another since the source was
opened (open_checkpoint). Writes, hashes and transposes release the GIL; TensorFlow's
get_tensor holds it while it reads (~0.3 s per GB, measured). At most PREFETCH tensors wait in
memory, so the peak stays near a few tensors, not the model.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from converters.rules import Plan, check_shapes
from converters.tapas_checkpoint import TapasSource, copy_tokenizer_files
from zoo.cache import FileHash
from zoo.errors import MappingError
from zoo.safetensors_io import TensorSpec, write_safetensors

FLOAT32 = np.dtype(np.float32)
PREFETCH = 2


def expected_shapes(model_cls, config) -> dict[str, tuple[int, ...]]:
    """State-dict shapes of `model_cls(config)`, computed on the meta device."""
    with torch.device("meta"):
        model = model_cls(config)
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def _prefetched(specs: list[TensorSpec], make) -> Generator[tuple[str, np.ndarray], None, None]:
    """Yield (name, make(spec)) in order, computed up to PREFETCH ahead on a worker thread."""
    slots: queue.Queue = queue.Queue(maxsize=PREFETCH)
    stop = threading.Event()

    def work() -> None:
        for spec in specs:
            if stop.is_set():
                return
            try:
                item = (spec.name, make(spec))
            except Exception as exc:
                item = (spec.name, exc)
            while not stop.is_set():
                try:
                    slots.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item[1], Exception):
                return

    worker = threading.Thread(target=work, name="tapas-prefetch", daemon=True)
    worker.start()
    try:
        for _ in specs:
            name, value = slots.get()
            if isinstance(value, Exception):
                raise value
            yield name, value
    finally:
        stop.set()
        worker.join()


def write_model(
    source: TapasSource, the_plan: Plan, model_cls, config, out: Path, progress: bool, fmt: str
) -> tuple[dict[str, Any], dict[str, FileHash]]:
    """Check `the_plan` against the model, write safetensors, config.json and tokenizer files into
    `out`; return the source's identity record (hashed meanwhile, since the source was opened) and
    the weight files' hashes, taken as they were written."""
    expected = expected_shapes(model_cls, config)
    check_shapes(the_plan, {m.source: source.shape(m.source) for m in the_plan.mapped}, expected)
    not_float = [f"{m.source} ({source.dtype(m.source)})" for m in the_plan.mapped if source.dtype(m.source) != FLOAT32]
    if not_float:
        raise MappingError(f"expected float32 weights, found: {', '.join(not_float)}")

    by_target = the_plan.by_target()
    specs = [TensorSpec(name, shape, FLOAT32) for name, shape in expected.items()]

    def make(spec: TensorSpec) -> np.ndarray:
        mapped = by_target[spec.name]
        return mapped.apply(source.get(mapped.source))

    stream = _prefetched(specs, make)

    def produce(spec: TensorSpec) -> np.ndarray:
        name, value = next(stream)
        if name != spec.name:  # the writer asks in spec order; anything else is a bug here
            raise RuntimeError(f"prefetch out of order: {name} != {spec.name}")
        return value

    try:
        with tqdm(
            total=sum(s.nbytes for s in specs), unit="B", unit_scale=True, disable=not progress, desc="convert"
        ) as bar:
            written = write_safetensors(out, specs, produce, on_tensor=lambda s: bar.update(s.nbytes))
    finally:
        stream.close()
    config.save_pretrained(out)
    copy_tokenizer_files(source.files, out, config.max_position_embeddings)
    return source.identity(fmt), written
