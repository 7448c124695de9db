"""Turn a raw artifact into a verified HF model directory, atomically.

The converter writes model files into a temp directory beside the target; zoo then replays
the weights check (and the encodings check where an independent reference exists), writes
the model card and manifest, and only then renames the directory into place. A failed check
or an interrupted run leaves nothing that looks finished.
"""
from __future__ import annotations

import logging
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import cache, card, manifest
from .errors import ConversionError, InputError
from .registry import Entry
from .verify import runner

log = logging.getLogger(__name__)


def convert_local(
    src: Path,
    fmt: str,
    out: Path,
    *,
    options: dict[str, Any] | None = None,
    entry: Entry | None = None,
    origin: dict[str, Any] | None = None,
    force: bool = False,
    progress: bool = False,
) -> Path:
    """Convert `src` (zip, folder, checkpoint prefix or .ckpt) with converter `fmt` into `out`.

    `origin` records where a registry model's raw artifact came from (URL and pulled sha256).
    """
    from converters import load_format

    module = load_format(fmt)
    out = Path(out).expanduser().resolve()
    if not force and (out / "zoo_manifest.json").exists():
        raise InputError(f"{out} already holds a converted model; pass --force to replace it")
    _check_target(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.temp_sibling(out, ".partial")
    tmp.mkdir()
    try:
        result = module.convert(Path(src), tmp, dict(options or {}), progress)
        if origin:
            result = replace(result, source={**result.source, "origin": origin})
        draft = manifest.describe(
            family=module.FAMILY, format=fmt, source=result.source, model_id=entry.id if entry else None,
            options=result.options, mapping=[m.to_dict() for m in result.plan.mapped],
            skipped=list(result.plan.skipped), notes=list(result.notes),
        )
        checks = runner.conversion_checks(module.FAMILY, tmp, draft)
        failed = [c for c in checks if not c.ok]
        if failed:
            raise ConversionError(
                "conversion produced a model that fails verification: "
                + "; ".join(f"{c.name}: {c.value} {c.detail}".strip() for c in failed)
            )
        check_dicts = [c.to_dict() for c in checks]
        (tmp / "README.md").write_text(card.render(entry, module.FAMILY, result.source, check_dicts, list(result.notes)))
        manifest.seal(tmp, draft, check_dicts)
        cache.replace_dir(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _check_target(out: Path, force: bool) -> None:
    """Never replace a directory we did not write unless asked: the rename would delete it."""
    if force or not out.exists():
        return
    if not out.is_dir():
        raise InputError(f"output path {out} exists and is not a directory")
    if any(out.iterdir()) and not (out / "zoo_manifest.json").exists():
        raise InputError(f"output directory {out} exists and is not empty; pass --force to replace it")


def adopt(entry: Entry, snapshot: Path, out: Path, *, force: bool = False) -> Path:
    """For Hub repos in a modern layout: link the files, add a manifest.

    Folders holding only pytorch_model.bin get model.safetensors instead (converters.torch_bin);
    everything else is linked unchanged.
    """
    from converters.torch_bin import convert_bin_weights

    if (out / "zoo_manifest.json").exists() and not force:
        return out
    _check_target(out, force)
    tmp = cache.temp_sibling(out, ".partial")
    tmp.mkdir(parents=True)
    try:
        converted = convert_bin_weights(snapshot, tmp)
        replaced = set(converted.replaced) if converted else set()
        for path in sorted(p for p in snapshot.rglob("*") if p.is_file()):
            rel = path.relative_to(snapshot)
            if rel.as_posix() in replaced:
                continue
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(path.resolve(), tmp / rel)
        source = {"format": None, "kind": entry.source.kind, "repo": entry.source.repo, "path": str(snapshot)}
        receipt = cache.read_receipt(entry.id) or {}
        if receipt.get("commit"):
            source["commit"] = receipt["commit"]
        note = (converted.note() + "; other files were linked from the verified pull" if converted else
                "already safetensors: nothing was converted; files were linked from the verified pull")
        manifest.seal(tmp, manifest.describe(family=entry.family, format=None, source=source, model_id=entry.id,
                                             notes=[note]))
        cache.replace_dir(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("%s: %s", entry.id, note)
    return out


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
