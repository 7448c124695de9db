"""Turn a raw artifact into a verified HF model directory, atomically.

The converter writes model files into a temp directory beside the target; zoo then runs the
family's conversion checks (the weights replay, and the encodings check where an independent
reference reads the same source), writes the model card and manifest, and only then renames the
directory into place. A failed check or an interrupted run leaves nothing that looks finished.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from converters.sharing import sharing

from . import cache, card, constants, manifest, provenance, remote_code, sources
from .checks import runner
from .checks.weights import SOURCE_DIGESTS
from .errors import ConversionError, InputError, OutputError
from .families import Family, family, find_format
from .registry import Entry

log = logging.getLogger(__name__)

ORIGINAL_CARD = "README_original.md"


def convert_entry(
    entry: Entry, out: Path | None = None, *, force: bool = False, progress: bool = False, accept_mismatch: bool = False
) -> Path:
    """Pull a registry model if needed, then convert it (or adopt a modern Hub repo) into `out` or the cache.

    Everything runs under the model's conversion lock, and the raw files are taken with the
    receipt that describes them (one read): a URL source's files sit in a content-addressed
    directory that a concurrent `zoo pull --force` never changes (a pull removes superseded
    versions only while no conversion holds this lock). A Hub snapshot is linked under the pull
    lock too, since huggingface_hub re-creates snapshot links in place on a forced download.
    """
    target = out if out is not None else cache.paths(entry.id).converted_dir
    if out is not None:
        cache.check_output_dir(out)  # an unwritable --out fails before anything is downloaded
    with cache.locked(entry.id + cache.CONVERT_LOCK_SUFFIX):
        raw, receipt = sources.obtain(entry, progress=progress)
        if entry.converter is None:
            with cache.locked(entry.id):
                return adopt(entry, raw, target, force=force)
        if not force and manifest.exists(target):
            return target
        origin = {"url": receipt.get("url") or entry.source.url, "sha256": receipt.get("sha256")}
        # the cache's own directory may be replaced (a stale or older conversion); a user's out may not
        return convert_local(
            raw,
            entry.converter,
            target,
            entry=entry,
            origin=origin,
            force=force or out is None,
            progress=progress,
            accept_mismatch=accept_mismatch,
        )


def resolve(entry: Entry, *, progress: bool = False) -> Path:
    """The directory to pass to from_pretrained: converted if present, else pulled and converted now."""
    converted = cache.paths(entry.id).converted_dir
    if manifest.exists(converted):
        return converted
    return convert_entry(entry, progress=progress)


def convert_local(
    src: Path,
    fmt: str,
    out: Path,
    *,
    options: Mapping[str, Any] | None = None,
    entry: Entry | None = None,
    origin: dict[str, Any] | None = None,
    force: bool = False,
    progress: bool = False,
    accept_mismatch: bool = False,
) -> Path:
    """Convert `src` (zip, folder, checkpoint prefix or .ckpt) with converter `fmt` into `out`.

    `origin` records where a registry model's raw artifact came from (URL and pulled sha256).
    `accept_mismatch` keeps a conversion that fails a check, saying so in the manifest and card.
    """
    from converters import load_format

    fam, spec = find_format(fmt)
    module = load_format(fmt)
    options = dict(options or {})
    unknown = sorted(set(options) - set(module.OPTIONS))
    if unknown:
        raise InputError(
            f"format {fmt} takes no option(s) {', '.join(unknown)} (it takes: {', '.join(module.OPTIONS) or 'none'})"
        )
    src = Path(src).expanduser()
    if not src.exists() and not Path(f"{src}.index").is_file():
        raise InputError(f"--from {src}: no such file or directory")
    out = Path(out).expanduser().resolve()
    tmp = _prepare_target(out, force)
    try:
        # the source is opened (a zip extracted) once for the converter and every check; the family's
        # reference starts on it as soon as the converter knows the config, and is waited for before it closes
        with sharing(), runner.EarlyReference(fam, src) as early:
            return _convert_into(
                module, fam, fmt, spec.task, src, tmp, out, options, entry, origin, progress, accept_mismatch, early
            )
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _convert_into(
    module: Any,
    fam: Family,
    fmt: str,
    task: str,
    src: Path,
    tmp: Path,
    out: Path,
    options: dict[str, Any],
    entry: Entry | None,
    origin: dict[str, Any] | None,
    progress: bool,
    accept_mismatch: bool,
    early: runner.EarlyReference,
) -> Path:
    """Convert into `tmp`, check, describe, then rename into `out` (the caller removes `tmp` on failure)."""
    result = module.convert(src, tmp, options, progress, on_config=early.start)
    remote_code.install(tmp, fam, task)
    source, portable_options = provenance.make_portable(
        {**result.source, **({"origin": origin} if origin else {})}, result.options
    )
    notes = list(result.notes)
    draft = manifest.describe(
        family=fam.name,
        format=fmt,
        source=source,
        model_id=entry.id if entry else None,
        options=portable_options,
        mapping=[m.to_dict() for m in result.plan.mapped],
        skipped=list(result.plan.skipped),
        notes=notes,
    )
    checks = runner.conversion_checks(fam, tmp, draft, early)
    digests = {k: v for c in checks for k, v in c.data.items() if k == SOURCE_DIGESTS}
    if digests:  # the source tensors' hashes travel with the model: `weights` runs without the source
        draft = {**draft, **digests}
        checks = [replace(c, data={k: v for k, v in c.data.items() if k != SOURCE_DIGESTS}) for c in checks]
    failed = [c for c in checks if not c.ok]
    if failed:
        summary = "; ".join(f"{c.name}: {c.value} {c.detail}".strip() for c in failed)
        if not accept_mismatch:
            raise ConversionError(
                f"conversion produced a model that fails verification: {summary} "
                "(--accept-mismatch keeps it anyway, recorded in the manifest and card)"
            )
        names = ", ".join(c.name for c in failed)
        notes.append(f"ACCEPTED MISMATCH (--accept-mismatch): the conversion did not pass {names}")
        draft = {**draft, "notes": notes, "accepted_mismatch": [c.name for c in failed]}
    check_dicts = [c.to_dict() for c in checks]
    local = [src if src.is_dir() else None, *(Path(v) for k, v in result.options.items() if k == "config" and v)]
    card.write(
        tmp,
        card.CardFacts(
            family=fam,
            task=task,
            title=entry.id if entry else _title(src),
            entry=entry,
            source=source,
            checks=check_dicts,
            notes=notes,
            license=card.source_license(local),
            has_tokenizer=(tmp / "vocab.txt").is_file() or bool(fam.remote_code and fam.remote_code.tokenizers),
        ),
    )
    manifest.seal(tmp, draft, check_dicts, written=result.written)
    cache.replace_dir(tmp, out)
    return out


def _title(src: Path) -> str:
    """A card title for a local artifact: its name without archive or checkpoint suffixes."""
    name = src.name
    for suffix in (".zip", ".ckpt", ".index"):
        name = name.removesuffix(suffix)
    return name or "converted model"


def _prepare_target(out: Path, force: bool) -> Path:
    """Check `out` may be written and make the temp directory beside it; OutputError if it cannot be.

    Never replace a directory zoo did not write unless asked: the rename would delete it.
    """
    if out.exists() and not out.is_dir():
        raise OutputError(f"output path {out} exists and is not a directory")
    if not force and out.is_dir():
        if manifest.exists(out):
            raise InputError(f"{out} already holds a converted model; pass --force to replace it")
        if any(out.iterdir()):
            raise InputError(f"output directory {out} exists and is not empty; pass --force to replace it")
    tmp = cache.temp_sibling(out, ".partial")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    except OSError as exc:
        raise OutputError(f"cannot write the output directory {out}: {exc.strerror or exc}") from None
    return tmp


def adopt(entry: Entry, snapshot: Path, out: Path, *, force: bool = False) -> Path:
    """For Hub repos in a modern layout: link the files, add a manifest.

    Folders holding only pytorch_model.bin get model.safetensors instead (converters.torch_bin);
    everything else is linked unchanged.
    """
    from converters.torch_bin import convert_bin_weights

    if manifest.exists(out) and not force:
        return out
    tmp = _prepare_target(out, force)
    try:
        fam = family(entry.family)
        converted = convert_bin_weights(snapshot, tmp)
        replaced = set(converted.replaced) if converted else set()
        for path in sorted(p for p in snapshot.rglob("*") if p.is_file()):
            rel = path.relative_to(snapshot)
            if rel.as_posix() in replaced or (fam.remote_code is not None and rel.suffix == ".py"):
                continue  # the authors' remote code is replaced by the family's own
            if rel.as_posix() == constants.MODEL_CARD_FILENAME:
                rel = rel.with_name(ORIGINAL_CARD)  # the authors' card stays, beside zoo's
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(path.resolve(), tmp / rel)
        remote_code.install(tmp, fam, entry.task)
        receipt = cache.read_receipt(entry.id) or {}
        source, _ = provenance.make_portable(
            {
                "format": None,
                "kind": entry.source.kind,
                "repo": entry.source.repo,
                "path": str(snapshot),
                **({"commit": receipt["commit"]} if receipt.get("commit") else {}),
            },
            {},
        )
        note = (
            converted.note() + "; other files were linked from the verified pull"
            if converted
            else "already safetensors: nothing was converted; files were linked from the verified pull"
        )
        notes = [note] + (
            [f"the authors' model card is kept as {ORIGINAL_CARD}"] if (tmp / ORIGINAL_CARD).exists() else []
        )
        draft = manifest.describe(family=entry.family, format=None, source=source, model_id=entry.id, notes=notes)
        if runner.keep_reference(fam, tmp, draft):
            notes.append("reference outputs of the family's independent reference are stored for offline verify")
        card.write(
            tmp, card.CardFacts(family=fam, task=entry.task, title=entry.id, entry=entry, source=source, notes=notes)
        )
        manifest.seal(tmp, draft)
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
