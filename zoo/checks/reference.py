"""Proof that travels: a fixed probe and what an independent reference computed from it.

At conversion the family's independent reference (TensorFlow for TAPAS, the official hub model
for legacy FLMR, plain transformers for SPLADE) runs on a fixed probe; the probe's inputs and
the reference's outputs are stored in the model directory as zoo_reference.safetensors, covered
by the manifest's hashes. `encodings` compares the model with a fresh reference run (it needs
the source); `reference` compares it with the stored outputs (it needs nothing but the directory),
with the same tolerance policy, so a downloaded or moved copy can still be checked.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import provenance
from ..errors import FormatError
from .report import Check

REFERENCE_FILENAME = "zoo_reference.safetensors"
_META_KEY = "zoo_reference"


@dataclass(frozen=True)
class Probe:
    """Fixed inputs and the outputs an independent reference computed from them."""

    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    reference: str  # what computed `outputs`, for the report
    texts: dict[str, list[str]] = field(default_factory=dict)  # text inputs the model tokenizes itself


def save(directory: Path, probe: Probe) -> None:
    from safetensors.numpy import save_file

    tensors = {f"inputs.{k}": np.ascontiguousarray(v) for k, v in probe.inputs.items()}
    tensors.update({f"outputs.{k}": np.ascontiguousarray(v) for k, v in probe.outputs.items()})
    meta = {"reference": probe.reference, "texts": probe.texts}
    save_file(tensors, str(directory / REFERENCE_FILENAME), metadata={_META_KEY: json.dumps(meta)})


def load(directory: Path) -> Probe | None:
    """The stored probe, None when the directory has none; FormatError when it is unreadable."""
    from safetensors import SafetensorError, safe_open

    path = directory / REFERENCE_FILENAME
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="np") as fh:
            meta: Mapping[str, Any] = json.loads((fh.metadata() or {}).get(_META_KEY, "{}"))
            arrays = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - safe_open is not iterable
    except (SafetensorError, OSError, ValueError) as exc:
        raise FormatError(f"{path}: unreadable reference outputs ({exc})") from None
    inputs = {k.removeprefix("inputs."): v for k, v in arrays.items() if k.startswith("inputs.")}
    outputs = {k.removeprefix("outputs."): v for k, v in arrays.items() if k.startswith("outputs.")}
    texts = {str(k): [str(t) for t in v] for k, v in dict(meta.get("texts") or {}).items()}
    return Probe(inputs, outputs, str(meta.get("reference", "unknown reference")), texts)


def on_source(probe: Probe | str, manifest: Mapping[str, Any]) -> Probe | str:
    """The probe with its reference named after the source the manifest records (by name and hash, never a path)."""
    if isinstance(probe, str):
        return probe
    return replace(probe, reference=f"{probe.reference} on {provenance.describe(manifest.get('source'))}")


def run_encodings(probe: Probe | str, check: Callable[[Probe], Check]) -> Check:
    """The `encodings` check from a fresh reference probe, or why no reference could run here."""
    if isinstance(probe, str):
        return Check("encodings", ok=True, ran=False, value="not run", detail=probe)
    return check(probe)


def stored_reference(model_dir: Path, check: Callable[[Probe], Check]) -> Check:
    """The `reference` check: the model against the outputs stored at conversion."""
    try:
        probe = load(model_dir)
    except FormatError as exc:
        return Check("reference", ok=False, value="unreadable", detail=str(exc))
    if probe is None:
        return Check(
            "reference",
            ok=True,
            ran=False,
            value="not run",
            detail=f"no {REFERENCE_FILENAME}: no independent reference ran when this model was converted",
        )
    return check(probe)
