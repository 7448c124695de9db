"""One module per source format. Each exposes FORMAT, FAMILY, OPTIONS, RULES, SKIP, `open_source`,
`plan_for` and `convert`; zoo/families names which module reads which `--format`.

`convert(src, out, options, progress)` writes the model files (config.json, safetensors,
tokenizer files) into `out`, an empty temporary directory owned by `zoo.convert`, which adds
the model card and manifest and renames the directory into place. It returns a
ConversionResult whose `plan` verify's `weights` check replays against `open_source(src)`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol, TypeVar

import numpy as np

from converters.rules import Plan
from zoo.families import find_format, import_attr


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


T = TypeVar("T")
_SHARED: ContextVar[dict[Hashable, Any] | None] = ContextVar("zoo_shared_sources", default=None)


@contextlib.contextmanager
def sharing() -> Iterator[None]:
    """Within the block a source is opened (a zip extracted, a pickle read) once, and the converter
    and every check that replays it share it; everything opened is closed at the end."""
    opened: dict[Hashable, Any] = {}
    token = _SHARED.set(opened)
    try:
        yield
    finally:
        _SHARED.reset(token)
        for value in opened.values():
            close = getattr(value, "close", None)
            if close is not None:
                close()


def shared(key: Hashable, open_source: Callable[[], T]) -> tuple[T, bool]:
    """(the opened source, whether the caller owns it and must close it)."""
    opened = _SHARED.get()
    if opened is None:
        return open_source(), True
    if key not in opened:
        opened[key] = open_source()
    return opened[key], False


def load_format(name: str) -> ModuleType:
    """The converter module for a `--format` value (imported now: it may need TensorFlow or torch)."""
    module: ModuleType = import_attr(find_format(name)[1].converter)
    return module
