"""Run the verify checks for a converted directory or a registry model, and record the result.

Family modules provide the model-specific checks (zoo.verify.tapas / flmr / splade); this
module decides which checks apply and writes zoo_verify.json beside the model.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import cache, manifest
from ..errors import InputError
from ..registry import Entry
from .files import files
from .report import Check, Report
from .weights import weights

FAMILY_MODULES = {"tapas": "zoo.verify.tapas", "flmr": "zoo.verify.flmr", "splade": "zoo.verify.splade"}


def _family(name: str):
    return importlib.import_module(FAMILY_MODULES[name])


def _skipped(name: str, reason: str) -> Check:
    return Check(name, ok=True, value="not run", detail=reason, ran=False)


# --- encodings: one function per family, because each has a different reference --------


def _tapas_encodings(model_dir: Path, data: dict[str, Any]) -> Check:
    return _family("tapas").encodings(model_dir, data)


def _flmr_encodings(model_dir: Path, data: dict[str, Any]) -> Check:
    reference = flmr_reference(data)
    if reference is None:
        return _skipped("encodings", "no official hub repo of the same architecture is in the cache to compare with")
    return _family("flmr").encodings(model_dir, reference)


def _splade_encodings(model_dir: Path, data: dict[str, Any]) -> Check:
    return _family("splade").encodings(model_dir)


ENCODINGS: dict[str, Callable[[Path, dict[str, Any]], Check]] = {
    "tapas": _tapas_encodings,
    "flmr": _flmr_encodings,
    "splade": _splade_encodings,
}


def flmr_reference(data: dict[str, Any]) -> Path | None:
    """The official hub model to compare a converted legacy FLMR checkpoint with, if available.

    Only converted (legacy) directories have one: a hub model is its own reference. The
    `--config` directory given at conversion is used when it holds weights (a pulled hub
    repo); otherwise a pulled registry hub repo whose config.json describes the same
    architecture.
    """
    if data.get("format") != "flmr-legacy":
        return None
    config_dir = data.get("options", {}).get("config")
    if config_dir and any(Path(config_dir).glob("*.safetensors")):
        return Path(config_dir)
    wanted = _architecture(Path(config_dir) / "config.json") if config_dir else None
    if wanted is None:
        return None
    from .. import sources
    from ..registry import load_registry

    for entry in load_registry().filter("flmr"):
        pulled = sources.cached(entry)
        if pulled is not None and _architecture(pulled / "config.json") == wanted:
            return pulled
    return None


_NOT_ARCHITECTURE = frozenset({"transformers_version", "_name_or_path", "_attn_implementation_autoset", "architectures"})


def _architecture(config_path: Path) -> dict[str, Any] | None:
    """config.json without the keys that record who wrote it rather than what the model is."""
    data = cache.read_json(config_path)
    if not isinstance(data, dict):
        return None

    def strip(d: dict[str, Any]) -> dict[str, Any]:
        return {k: strip(v) if isinstance(v, dict) else v for k, v in d.items() if k not in _NOT_ARCHITECTURE}

    return strip(data)


def conversion_checks(family: str, model_dir: Path, draft: dict[str, Any]) -> list[Check]:
    """Checks run before a converted directory is renamed into place."""
    checks = [weights(model_dir, draft)]
    if family == "tapas":  # the TF reference reads the same source checkpoint
        checks.append(ENCODINGS[family](model_dir, draft))
    return checks


def verify_dir(model_dir: Path, *, golden: Path | None = None, entry: Entry | None = None) -> Report:
    """All applicable checks on a zoo model directory; the report is also written beside it."""
    model_dir = Path(model_dir)
    data = manifest.read(model_dir)
    family = data["family"]
    receipt = cache.read_receipt(entry.id) if entry else None
    checks = [files(model_dir, data, receipt)]
    if data.get("format"):
        checks.append(weights(model_dir, data))
    checks.append(ENCODINGS[family](model_dir, data))
    module = _family(family)
    if golden is not None:
        if not Path(golden).is_dir():
            raise InputError(f"--golden {golden}: not a directory")
        checks.append(module.golden(model_dir, Path(golden)))
    if entry is not None and entry.golden:
        checks.append(module.registry_golden(model_dir, entry.golden))
    report = Report(target=str(model_dir), checks=tuple(checks))
    cache.atomic_write_json(model_dir / manifest.VERIFY_REPORT_FILENAME, report.to_dict())
    return report
