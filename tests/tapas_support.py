"""Helpers shared by the TAPAS test modules: golden fixture paths, the checkpoint generator, converting."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import numpy as np
import torch

from zoo.models.tapas import TOKEN_TYPES

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

GOLDEN = Path(__file__).resolve().parent / "data" / "golden" / "tapas"
SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
TOL = 1e-5


def factory():
    """scripts/make_tapas_checkpoint.py as a module (CheckpointSpec, write_checkpoint, write_zip, ...)."""
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    return importlib.import_module("make_tapas_checkpoint")


def golden(name: str) -> tuple[Path, dict[str, np.ndarray], dict[str, np.ndarray]]:
    folder = GOLDEN / name
    return folder, dict(np.load(folder / "inputs.npz")), dict(np.load(folder / "outputs.npz"))


def token_types(inputs: dict[str, np.ndarray]) -> np.ndarray:
    return np.stack([inputs[k] for k in TOKEN_TYPES], axis=-1).astype(np.int64)


def convert(fmt: str, src: Path, out: Path, **options):
    from converters import load_format

    out.mkdir(parents=True, exist_ok=True)
    return load_format(fmt).convert(src, out, options, False)


def max_diff(a, b) -> float:
    a, b = (x.detach() if isinstance(x, torch.Tensor) else x for x in (a, b))
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
