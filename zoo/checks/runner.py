"""Run the verify checks for a converted directory or a registry model, and record the result.

`files` and `weights` are the same for every family; the family's checks module
(zoo.families: Family.checks) provides `encodings`, `golden` and `registry_golden`. This
module decides which checks apply and writes zoo_verify.json beside the model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .. import cache, manifest
from ..errors import InputError
from ..families import Family, family
from ..registry import Entry
from .files import files
from .report import Check, Report
from .weights import weights

# check name -> how to run it on a directory not yet sealed (family, model dir, draft manifest)
CONVERSION_CHECKS: Mapping[str, Callable[[Family, Path, Mapping[str, Any]], Check]] = {
    "weights": lambda fam, model_dir, draft: weights(model_dir, draft),
    "encodings": lambda fam, model_dir, draft: fam.checks_module().encodings(model_dir, draft),
}


def conversion_checks(fam: Family, model_dir: Path, draft: Mapping[str, Any]) -> list[Check]:
    """The checks a family runs before a converted directory is renamed into place."""
    return [CONVERSION_CHECKS[name](fam, model_dir, draft) for name in fam.conversion_checks]


def verify_dir(model_dir: Path, *, golden: Path | None = None, entry: Entry | None = None) -> Report:
    """All applicable checks on a zoo model directory; the report is also written beside it."""
    model_dir = Path(model_dir)
    data = manifest.read(model_dir)
    module = family(data["family"]).checks_module()
    receipt = cache.read_receipt(entry.id) if entry else None
    checks = [files(model_dir, data, receipt)]
    if data.get("format"):
        checks.append(weights(model_dir, data))
    checks.append(module.encodings(model_dir, data))
    if golden is not None:
        if not Path(golden).is_dir():
            raise InputError(f"--golden {golden}: not a directory")
        checks.append(module.golden(model_dir, Path(golden)))
    if entry is not None and entry.golden:
        checks.append(module.registry_golden(model_dir, entry.golden))
    report = Report(target=str(model_dir), checks=tuple(checks))
    cache.atomic_write_json(model_dir / manifest.VERIFY_REPORT_FILENAME, report.to_dict())
    return report
