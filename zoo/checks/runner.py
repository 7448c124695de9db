"""Run the verify checks for a converted directory or a registry model, and record the result.

`files` and `weights` are the same for every family; the family's checks module
(zoo.families: Family.checks) provides `encodings`, `golden` and `registry_golden`. Where the
source is not on this machine (a pushed and downloaded copy), `encodings` cannot run and the
`reference` check compares the model with the reference outputs stored at conversion instead.
This module decides which checks apply and writes zoo_verify.json beside the model.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .. import cache, manifest
from ..errors import InputError
from ..families import Family, family
from ..registry import Entry
from . import reference
from .files import files
from .reference import Probe, run_encodings
from .report import Check, Report
from .weights import weights

log = logging.getLogger(__name__)


class EarlyReference:
    """The family's reference probe, started from the conversion's own inputs as soon as the converter
    knows the model's config (Family.source_reference), so it runs beside the weight writing instead
    of after it. Used as a context manager: leaving waits for it, since it reads the source that the
    conversion's sharing session closes afterwards.
    """

    def __init__(self, fam: Family, src: Path) -> None:
        self._fam = fam
        self._compute = fam.source_reference_fn()
        self._src = src
        self._pool: ThreadPoolExecutor | None = None
        self._future: Future[Probe | str] | None = None

    def start(self, config: Mapping[str, Any], options: Mapping[str, Any]) -> None:
        """converters.ConfigReady: called by the converter with the config and options it resolved."""
        if self._compute is None or self._future is not None:
            return
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zoo-reference")
        run = contextvars.copy_context().run  # shares the source the converter opened (converters.sharing)
        self._future = self._pool.submit(run, self._compute, self._src, dict(options), dict(config))

    def probe(self, model_dir: Path, draft: Mapping[str, Any]) -> Probe | str:
        """The early probe if one was started, else the family's reference run now on the converted directory."""
        if self._future is None:
            return self._fam.checks_module().reference_probe(model_dir, draft)
        return reference.on_source(self._future.result(), draft)

    def __enter__(self) -> EarlyReference:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def _encodings_kept(fam: Family, model_dir: Path, draft: Mapping[str, Any], early: EarlyReference) -> Check:
    """The encodings check at conversion; the reference's probe outputs are kept in the directory."""
    module = fam.checks_module()
    probe = early.probe(model_dir, draft)
    if isinstance(probe, str):
        return run_encodings(probe, lambda p: module.check_probe(model_dir, p, "encodings"))
    reference.save(model_dir, probe)
    return module.check_probe(model_dir, probe, "encodings")


# check name -> how to run it on a directory not yet sealed (family, model dir, draft manifest, early reference)
CONVERSION_CHECKS: Mapping[str, Callable[[Family, Path, Mapping[str, Any], EarlyReference], Check]] = {
    "weights": lambda fam, model_dir, draft, early: weights(model_dir, draft, record=True),
    "encodings": _encodings_kept,
}


def conversion_checks(fam: Family, model_dir: Path, draft: Mapping[str, Any], early: EarlyReference) -> list[Check]:
    """The checks a family runs before a converted directory is renamed into place.

    They run side by side: neither needs the other, and each spends its time in I/O and native
    code (TensorFlow, torch, hashing) that releases the GIL. Each runs in a copy of this context,
    so it shares the source the converter opened (converters.sharing).
    """
    names = fam.conversion_checks
    with ThreadPoolExecutor(max_workers=max(len(names), 1), thread_name_prefix="zoo-check") as pool:
        running = [
            pool.submit(contextvars.copy_context().run, CONVERSION_CHECKS[name], fam, model_dir, draft, early)
            for name in names
        ]
        return [future.result() for future in running]


def keep_reference(fam: Family, model_dir: Path, draft: Mapping[str, Any]) -> bool:
    """Store the family's reference probe in a directory that is not a conversion (an adopted Hub repo)."""
    probe = fam.checks_module().reference_probe(model_dir, draft)
    if isinstance(probe, str):
        return False
    reference.save(model_dir, probe)
    return True


def verify_dir(model_dir: Path, *, golden: Path | None = None, entry: Entry | None = None) -> Report:
    """All applicable checks on a zoo model directory; the report is also written beside it."""
    model_dir = Path(model_dir)
    data = manifest.read(model_dir)
    module = family(data["family"]).checks_module()
    receipt = cache.read_receipt(entry.id) if entry else None
    checks = [files(model_dir, data, receipt)]
    if data.get("format"):
        checks.append(weights(model_dir, data))
    encodings = module.encodings(model_dir, data)
    checks.append(encodings)
    if not encodings.ran and (model_dir / reference.REFERENCE_FILENAME).is_file():
        # the source is not here (a downloaded or moved copy): check against the outputs stored at conversion
        checks.append(reference.stored_reference(model_dir, lambda p: module.check_probe(model_dir, p, "reference")))
    if golden is not None:
        if not Path(golden).is_dir():
            raise InputError(f"--golden {golden}: not a directory")
        checks.append(module.golden(model_dir, Path(golden)))
    if entry is not None and entry.golden:
        checks.append(module.registry_golden(model_dir, entry.golden))
    report = Report(target=str(model_dir), checks=tuple(checks))
    try:
        cache.atomic_write_json(model_dir / manifest.VERIFY_REPORT_FILENAME, report.to_dict())
    except OSError as exc:  # a read-only directory is still verifiable; only the record is not kept
        log.warning("%s: the verify report was not written (%s)", model_dir, exc.strerror or exc)
    return report
