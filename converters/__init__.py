"""One module per source format. Each exposes FORMAT, FAMILY, OPTIONS, RULES, SKIP, `open_source`,
`plan_for` and `convert`; zoo/families names which module reads which `--format`.

`convert(src, out, options, progress, on_config=None)` writes the model files (config.json,
safetensors, tokenizer files) into `out`, an empty temporary directory owned by `zoo.convert`,
which adds the model card and manifest and renames the directory into place. It returns a
ConversionResult whose `plan` verify's `weights` check replays against `open_source(src)`.
Before it writes the weights it calls `on_config(config, options)` with the model config and the
options it resolved (those of its ConversionResult): zoo starts a reference that needs only the
source then, beside the writing (zoo.checks.runner.EarlyReference).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from converters.rules import Plan
from converters.sharing import shared, sharing
from zoo.cache import FileHash
from zoo.families import find_format, import_attr

__all__ = ["ConfigReady", "ConversionResult", "SourceReader", "load_format", "shared", "sharing"]

ConfigReady = Callable[[Mapping[str, Any], Mapping[str, Any]], None]  # on_config(model config, resolved options)


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
    written: Mapping[str, FileHash] = field(default_factory=dict)  # weight files hashed as they were written


def load_format(name: str) -> ModuleType:
    """The converter module for a `--format` value (imported now: it may need TensorFlow or torch)."""
    module: ModuleType = import_attr(find_format(name)[1].converter)
    return module
