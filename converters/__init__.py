"""One module per source format. Each exposes FORMAT, FAMILY, RULES, SKIP, `open_source` and `convert`.

`convert(src, out, options, progress)` writes the model files (config.json, safetensors,
tokenizer files) into `out`, an empty temporary directory owned by `zoo.convert`, which adds
the model card and manifest and renames the directory into place. It returns a
ConversionResult whose `plan` verify's `weights` check replays against `open_source(src)`.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from converters.rules import Plan
from zoo.errors import InputError

# format name -> module; imported lazily so `zoo list` never pays for TensorFlow or torch.
FORMATS: Mapping[str, str] = {
    "tapas-retriever": "converters.tapas_retriever",
    "tapas-reader": "converters.tapas_reader",
    "flmr-legacy": "converters.flmr_legacy",
}


class SourceReader(Protocol):
    """Random access to a source checkpoint's tensors without loading them all."""

    def names(self) -> list[str]: ...

    def shape(self, name: str) -> tuple[int, ...]: ...

    def get(self, name: str) -> np.ndarray: ...


@dataclass(frozen=True)
class ConversionResult:
    plan: Plan
    config: dict[str, Any]
    source: dict[str, Any]  # identity recorded in the manifest: format, path, files and hashes
    options: dict[str, Any] = field(default_factory=dict)  # what open_source needs to replay
    notes: tuple[str, ...] = ()  # facts worth stating in the card, e.g. single-tower copy


def load_format(name: str) -> ModuleType:
    if name not in FORMATS:
        raise InputError(f"unknown format {name!r}; choose one of: {', '.join(FORMATS)}")
    return importlib.import_module(FORMATS[name])
