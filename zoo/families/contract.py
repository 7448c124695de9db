"""What a model family provides to zoo: one typed description per family.

Each family declares one `Family` in zoo/families/<name>.py and zoo/families/catalog.py lists
them. The registry (schema enums), API (loading, conversion), CLI (choices), checks, model card
and benchmarks ask the catalog instead of branching on family names, so adding a family is a
new model package, converter, checks and benchmark module plus one entry in the catalog.

Code is named by "module:attribute" strings and imported on first use, so `zoo list` never
pays for torch or TensorFlow.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..checks.reference import Probe
    from ..checks.report import Check
    from ..registry import GoldenValue


def import_attr(path: str) -> Any:
    """`"package.module:Name.attr"` -> the object (the module itself when there is no `:`)."""
    module, _, names = path.partition(":")
    found: Any = importlib.import_module(module)
    for name in filter(None, names.split(".")):
        found = getattr(found, name)
    return found


class FamilyChecks(Protocol):
    """A family's verify checks (zoo/checks/<family>.py); each returns a Check, never raises on a bad model.

    `reference_probe` runs the family's independent reference on a fixed probe (or says why it
    cannot run here); `check_probe` compares the model with such a probe, fresh or stored.
    """

    def encodings(self, model_dir: Path, manifest: Mapping[str, Any]) -> Check: ...

    def reference_probe(self, model_dir: Path, manifest: Mapping[str, Any]) -> Probe | str: ...

    def check_probe(self, model_dir: Path, probe: Probe, name: str) -> Check: ...

    def golden(self, model_dir: Path, golden_dir: Path) -> Check: ...

    def registry_golden(self, model_dir: Path, values: tuple[GoldenValue, ...]) -> Check: ...


@dataclass(frozen=True)
class Format:
    """A source format one converter reads (the `--format` value)."""

    name: str  # e.g. "tapas-retriever"
    converter: str  # module with OPTIONS, open_source, plan_for and convert (converters/__init__.py)
    task: str  # registry task of what the conversion produces


@dataclass(frozen=True)
class CardInfo:
    """What a model card's metadata says about every model of the family."""

    library_name: str  # Hub metadata: which library loads it
    pipeline_tags: Mapping[str, str]  # task -> Hub pipeline tag
    tags: tuple[str, ...]


@dataclass(frozen=True)
class RemoteCode:
    """How transformers' Auto classes find a converted model's code (`trust_remote_code=True`).

    The model package's files are copied beside the weights; `auto_map` goes into config.json
    (per task) and `tokenizers` into the tokenizer_config.json of each named subfolder.
    """

    auto_map: Mapping[str, Mapping[str, str]]  # task -> {"AutoConfig": "module.Class", "AutoModel": ...}
    tokenizers: Mapping[str, str] = field(default_factory=dict)  # subfolder -> "module.Class"


@dataclass(frozen=True)
class Family:
    name: str  # registry `family`
    description: str
    tasks: tuple[str, ...]  # registry `task` values
    formats: tuple[Format, ...]
    loader: str  # "module:callable": a converted directory -> the ready model
    checks: str  # module implementing FamilyChecks
    bench: str  # module with run(path, data, context) -> Outcome
    card: CardInfo
    recognize: Callable[[Path], bool]  # a directory holds this family's model (reads file names / JSON only)
    input_errors: tuple[str, ...] = ()  # "module:Class" errors of the model package that mean bad input
    model_package: str | None = None  # its files ship as remote code beside converted models
    remote_code: RemoteCode | None = None  # how the Auto classes load them
    conversion_checks: tuple[str, ...] = ("weights",)  # checks a conversion must pass before it is kept
    # "module:callable" (source, resolved options, model config) -> Probe | str: the reference probe from a
    # conversion's inputs alone, so it runs while the weights are written (zoo.checks.runner.EarlyReference);
    # None where the reference needs the converted model or a manifest
    source_reference: str | None = None

    def load(self, path: Path) -> Any:
        return import_attr(self.loader)(str(path))

    def checks_module(self) -> FamilyChecks:
        module: FamilyChecks = import_attr(self.checks)
        return module

    def source_reference_fn(self) -> Callable[[Path, Mapping[str, Any], Mapping[str, Any]], Probe | str] | None:
        return import_attr(self.source_reference) if self.source_reference else None

    def bench_module(self) -> ModuleType:
        module: ModuleType = import_attr(self.bench)
        return module

    def is_input_error(self, exc: BaseException) -> bool:
        """True for the model package's own bad-input errors; their modules are not imported to ask."""
        for path in self.input_errors:
            module, _, name = path.partition(":")
            loaded = sys.modules.get(module)
            if loaded is not None and isinstance(exc, getattr(loaded, name)):
                return True
        return False
