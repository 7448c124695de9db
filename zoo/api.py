"""The Python API: list, get, pull, convert, resolve, load, verify."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from . import cache, constants, conversion, manifest, sources
from .errors import InputError, UnknownModelError
from .registry import Entry, load_registry
from .verify.report import Report

# (family, task) -> "module:attribute" of the class (or factory) that loads a converted directory
LOADERS: dict[tuple[str, str], str] = {
    ("tapas", "dense-retriever"): "zoo.models.tapas:TapasDualEncoder",
    ("tapas", "reader"): "zoo.models.tapas:TapasReader",
    ("flmr", "late-interaction"): "zoo.models.flmr:FLMRModelForRetrieval",
    ("splade", "sparse-encoder"): "zoo.models.splade:load_sparse_encoder",
}
FORMAT_TASKS = {"tapas-retriever": "dense-retriever", "tapas-reader": "reader", "flmr-legacy": "late-interaction"}


def list_models(family: str | None = None) -> list[Entry]:
    return load_registry().filter(family)


def get(model_id: str) -> Entry:
    return load_registry().get(model_id)


def pull(model_id: str, *, force: bool = False, progress: bool = False) -> Path:
    """Download and verify the raw artifact; returns its local directory."""
    return sources.pull(get(model_id), force=force, progress=progress)


def convert(model_id: str, *, out: Path | None = None, force: bool = False, progress: bool = False) -> Path:
    """Pull if needed, then convert (or adopt, for safetensors repos) into `out` or the cache."""
    entry = get(model_id)
    target = Path(out) if out else cache.paths(entry.id).converted_dir
    raw = sources.cached(entry) or sources.pull(entry, progress=progress)
    with cache.locked(entry.id + ".convert"):
        if entry.converter is None:
            return conversion.adopt(entry, raw, target, force=force)
        if not force and (target / "zoo_manifest.json").exists():
            return target
        receipt = cache.read_receipt(entry.id) or {}
        origin = {"url": receipt.get("url") or entry.source.url, "sha256": receipt.get("sha256")}
        # the cache's own directory may be replaced (a stale or older conversion); a user's --out may not
        return conversion.convert_local(raw, entry.converter, target, entry=entry, origin=origin,
                                        force=force or out is None, progress=progress)


def resolve(model_id: str, *, progress: bool = False) -> Path:
    """The directory to pass to from_pretrained: converted if present, else pulled and converted now."""
    entry = get(model_id)
    converted = cache.paths(entry.id).converted_dir
    if (converted / "zoo_manifest.json").exists():
        return converted
    return convert(entry.id, progress=progress)


def _locate(target: str | Path) -> tuple[Path, Entry | None]:
    """A zoo model directory, or a registry id resolved to its converted directory.

    A Path, or a string naming a directory with a zoo manifest, is a directory; any other
    string is a registry id first, so a same-named folder (an unzipped download) never shadows it.
    """
    path = Path(target)
    if isinstance(target, Path) or (path / constants.MANIFEST_FILENAME).is_file():
        data = manifest.read(path)
        entry = None
        if data.get("model_id"):
            try:
                entry = get(data["model_id"])
            except InputError:
                entry = None
        return path, entry
    try:
        entry = get(str(target))
    except UnknownModelError:
        if path.is_dir():
            manifest.read(path)  # raises: a directory, but not one zoo wrote
        raise
    return resolve(entry.id), entry


def load(model_id_or_dir: str | Path) -> Any:
    """A ready torch model (TapasDualEncoder, TapasReader, FLMRModelForRetrieval or SparseEncoder)."""
    path, entry = _locate(model_id_or_dir)
    if entry is not None:
        key = (entry.family, entry.task)
    else:
        data = manifest.read(path)
        key = (data["family"], FORMAT_TASKS.get(data.get("format") or "", ""))
    if key not in LOADERS:
        raise InputError(f"{model_id_or_dir}: no loader for family/task {key}")
    module_name, attr = LOADERS[key].split(":")
    loader = getattr(importlib.import_module(module_name), attr)
    return loader.from_pretrained(str(path)) if hasattr(loader, "from_pretrained") else loader(str(path))


def verify(model_id_or_dir: str | Path, golden: str | Path | None = None) -> Report:
    """Run every applicable check; `report.ok` is True only if all pass."""
    from .verify.runner import verify_dir

    path, entry = _locate(model_id_or_dir)
    return verify_dir(path, golden=Path(golden) if golden is not None else None, entry=entry)


def state(entry: Entry) -> dict[str, bool]:
    """Cache state for `zoo list`; reads only local files."""
    converted = cache.paths(entry.id).converted_dir
    report = cache.read_json(converted / manifest.VERIFY_REPORT_FILENAME) or {}
    return {
        "pulled": cache.read_receipt(entry.id) is not None,
        "converted": (converted / "zoo_manifest.json").exists(),
        "verified": bool(report.get("ok")),
    }
