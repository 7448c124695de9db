"""The checkpoint registry: frozen dataclasses, JSON-schema validation, and lookup.

registry.json is the single source of truth for every listed checkpoint; user files named
in ZOO_REGISTRY are merged over it (same id replaces, new ids add). Nothing loads at import.
"""
from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from . import constants
from .errors import RegistryError, UnknownModelError

FAMILIES = ("tapas", "flmr", "splade")
TASKS = ("dense-retriever", "reader", "sparse-encoder", "late-interaction")


@dataclass(frozen=True)
class Source:
    """Where the raw artifact lives and what its bytes must hash to (None: pin on first pull)."""

    kind: str  # "url" (a zip over HTTP, e.g. GCS) or "hf" (a Hub repo)
    url: str | None = None
    archive: str | None = None  # "zip" or None
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None  # hex
    crc32c: str | None = None  # base64, as GCS serves it
    repo: str | None = None
    revision: str | None = None  # branch, tag or 40-hex commit; None means "main"


@dataclass(frozen=True)
class Attributes:
    hard_negatives: bool | None = None
    down_projection_dim: int | None = None
    fine_tuned_on: str | None = None
    vision_encoder: str | None = None
    text_encoder: str | None = None
    params: int | None = None


@dataclass(frozen=True)
class Metric:
    """One published number with where it came from.

    `set` separates the FLMR paper numbers ("paper") from those of the converted HF
    checkpoints ("converted"); other families publish one set ("published").
    """

    benchmark: str
    metric: str
    value: float
    set: str
    provenance: str
    scale: str = "percent"  # "percent" (0-100) or "fraction" (0-1)


@dataclass(frozen=True)
class GoldenValue:
    """A recorded reference output, e.g. a model card's similarity example."""

    name: str
    kind: str  # "similarity"
    inputs: Mapping[str, Any]
    values: tuple[float, ...]
    tolerance: float
    provenance: str


@dataclass(frozen=True)
class Paper:
    title: str
    arxiv: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class Entry:
    # identity
    id: str
    family: str
    task: str
    size: str
    # what it is
    attributes: Attributes
    # where the weights come from
    source: Source
    converter: str | None  # converter FORMAT name, or None when already a modern format
    # provenance
    license: str
    paper: Paper
    metrics: tuple[Metric, ...] = ()
    golden: tuple[GoldenValue, ...] = ()
    notes: str = ""
    registry_file: str = field(default="", compare=False)

    @property
    def full_id(self) -> str:
        """The HF repo id for Hub entries, else the registry id."""
        return self.source.repo or self.id

    def metrics_of(self, set_name: str) -> tuple[Metric, ...]:
        return tuple(m for m in self.metrics if m.set == set_name)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        data = asdict(self)
        data.pop("registry_file")
        return data
