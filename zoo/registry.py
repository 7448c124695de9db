"""The checkpoint registry: frozen dataclasses, JSON-schema validation, and lookup.

registry.json is the single source of truth for every listed checkpoint; user files named
in ZOO_REGISTRY are merged over it (same id replaces, new ids add). Nothing loads at import.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from . import constants, families
from .errors import RegistryError, UnknownModelError


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

    def metrics_of(self, set_name: str) -> tuple[Metric, ...]:
        return tuple(m for m in self.metrics if m.set == set_name)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("registry_file")
        return data


# --- loading -----------------------------------------------------------------------


@dataclass(frozen=True)
class Registry:
    """An immutable, merged view of the packaged registry and any user files."""

    entries: tuple[Entry, ...]
    files: tuple[str, ...]

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def ids(self) -> list[str]:
        return [e.id for e in self.entries]

    def get(self, model_id: str) -> Entry:
        """Look up by registry id or by full HF repo id (`org/name`)."""
        for entry in self.entries:
            if model_id in (entry.id, entry.source.repo):
                return entry
        names = self.ids() + [e.source.repo for e in self.entries if e.source.repo]
        close = difflib.get_close_matches(model_id, names, n=3, cutoff=0.5)
        if not close:
            lowered = model_id.lower()
            close = [n for n in names if lowered in n.lower()][:3]
        raise UnknownModelError(model_id, close)

    def filter(self, family: str | None = None) -> list[Entry]:
        return [e for e in self.entries if family is None or e.family == family]


def packaged_registry_path() -> Path:
    """registry.json inside the installed package, else at the source checkout's root."""
    bundled = resources.files("zoo").joinpath(constants.REGISTRY_FILENAME)
    if bundled.is_file():
        return Path(str(bundled))
    return Path(__file__).resolve().parent.parent / constants.REGISTRY_FILENAME


def _schema() -> dict[str, Any]:
    """registry.schema.json with the family, task and converter values the family catalog declares."""
    schema = json.loads(resources.files("zoo").joinpath("registry.schema.json").read_text())
    fields = schema["$defs"]["entry"]["properties"]
    fields["family"] = {"enum": families.names()}
    fields["task"] = {"enum": families.tasks()}
    fields["converter"] = {"enum": [*families.format_names(), None]}
    return schema


def load_registry(paths: Iterable[Path] | None = None) -> Registry:
    """Load the packaged registry plus ZOO_REGISTRY files (or `paths`), later files winning per id."""
    files = [packaged_registry_path(), *(constants.extra_registry_paths() if paths is None else paths)]
    merged: dict[str, Entry] = {}
    for path in files:
        for entry in _load_file(Path(path)):
            merged[entry.id] = entry
    return Registry(tuple(merged.values()), tuple(str(p) for p in files))


def _load_file(path: Path) -> list[Entry]:
    name = str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(name, None, None, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(name, None, None, f"cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise RegistryError(
            name, None, None, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    _validate(name, data)
    entries = [_entry(m, name) for m in data["models"]]
    seen: set[str] = set()
    for entry in entries:
        if entry.id in seen:
            raise RegistryError(name, entry.id, "id", "duplicate id in this file")
        seen.add(entry.id)
        _check_family(name, entry)
    return entries


def _check_family(file: str, entry: Entry) -> None:
    """The task and converter must be ones the entry's family declares."""
    fam = families.family(entry.family)
    if entry.task not in fam.tasks:
        raise RegistryError(file, entry.id, "task", f"{entry.task!r} is not a {fam.name} task ({', '.join(fam.tasks)})")
    known = [f.name for f in fam.formats]
    if entry.converter is not None and entry.converter not in known:
        raise RegistryError(
            file,
            entry.id,
            "converter",
            f"{entry.converter!r} is not a {fam.name} format ({', '.join(known) or 'none'})",
        )


def _validate(name: str, data: Any) -> None:
    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if not errors:
        return
    error = jsonschema.exceptions.best_match(errors)
    path = list(error.absolute_path)
    entry = field_name = None
    if len(path) >= 2 and path[0] == "models" and isinstance(path[1], int):
        model = data["models"][path[1]]
        entry = (
            model.get("id") if isinstance(model, dict) and isinstance(model.get("id"), str) else f"models[{path[1]}]"
        )
        field_name = ".".join(str(p) for p in path[2:]) or None
    elif path:
        field_name = ".".join(str(p) for p in path)
    problem = error.message
    if error.validator == "additionalProperties":
        extra = [k for k in error.instance if k not in error.schema.get("properties", {})]
        field_name = ".".join(filter(None, [field_name, extra[0]]))
        problem = f"unknown field {extra[0]!r} (allowed: {', '.join(error.schema.get('properties', {}))})"
    elif error.validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        field_name = ".".join(filter(None, [field_name, missing[0]]))
        problem = "required field is missing"
        if len(missing) > 1:
            problem = f"required fields are missing: {', '.join(missing)}"
    raise RegistryError(name, entry, field_name, problem)


def _entry(raw: Mapping[str, Any], file: str) -> Entry:
    return Entry(
        id=raw["id"],
        family=raw["family"],
        task=raw["task"],
        size=raw["size"],
        attributes=Attributes(**raw["attributes"]),
        source=Source(**raw["source"]),
        converter=raw["converter"],
        license=raw["license"],
        paper=Paper(**raw["paper"]),
        metrics=tuple(Metric(**m) for m in raw.get("metrics", ())),
        golden=tuple(GoldenValue(**{**g, "values": tuple(g["values"])}) for g in raw.get("golden", ())),
        notes=raw.get("notes", ""),
        registry_file=file,
    )
