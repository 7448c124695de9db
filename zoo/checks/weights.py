"""The `weights` check: replay the converter's mapping against the source and compare bit for bit.

The plan is rebuilt from the converter's rule table on the source checkpoint (not read back
from the manifest), so a converter that wrote a tensor to the wrong name, invented one, or
dropped one fails here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ZooError
from ..safetensors_io import TensorReader, read_tensor_names
from . import replay
from .report import Check

SOURCE_DIGESTS = "source_tensor_sha256"  # manifest key: target tensor -> sha256 of its transformed source


def weights(model_dir: Path, manifest: Mapping[str, Any], *, record: bool = False) -> Check:
    """The replay; with `record` (at conversion) also each transformed source tensor's sha256 for the manifest."""
    from converters import load_format

    fmt = manifest.get("format")
    if not fmt:
        return Check(
            "weights", ok=True, value="not applicable", detail="no conversion was applied (source already safetensors)"
        )
    found = replay.inputs(manifest)
    if isinstance(found, str):
        return _against_recorded(model_dir, manifest, found)
    src, options = found
    module = load_format(fmt)
    try:
        reader = module.open_source(src, options)
        plan = module.plan_for(reader, options)
    except ZooError as exc:
        return Check("weights", ok=False, value="source unreadable", detail=str(exc))
    stored = read_tensor_names(model_dir)
    targets = plan.by_target()
    problems: list[str] = []
    problems += [f"invented (no source): {t}" for t in sorted(set(stored) - set(targets))]
    problems += [f"missing from the model: {t}" for t in sorted(set(targets) - set(stored))]
    used = {m.source for m in plan.mapped} | set(plan.skipped)
    problems += [f"source tensor unused: {n}" for n in sorted(set(reader.names()) - used)]
    recorded = {(m["source"], m["target"], m["transform"]) for m in manifest.get("mapping", [])}
    replayed = {(m.source, m.target, m.transform) for m in plan.mapped}
    if recorded and recorded != replayed:
        problems.append(f"manifest mapping differs from the rule table replay ({len(recorded ^ replayed)} rows)")
    equal = 0
    digests: dict[str, str] = {}  # sha256 of each source tensor after its transform: kept in the manifest
    with TensorReader(model_dir) as converted:  # one tensor at a time on both sides
        for target, m in sorted(targets.items()):
            if target not in stored:
                continue
            got = converted.get(target)
            want = m.apply(np.asarray(reader.get(m.source)))
            if want.dtype != got.dtype:
                want = want.astype(got.dtype)
            want = np.asarray(want, order="C")  # keeps 0-d (ascontiguousarray makes it 1-d)
            if record:
                digests[target] = _sha256(want)
            if want.shape == got.shape and np.array_equal(_bits(want), _bits(got)):
                equal += 1
            else:
                diff = (
                    float(np.max(np.abs(want.astype(np.float64) - got.astype(np.float64))))
                    if want.shape == got.shape
                    else float("nan")
                )
                problems.append(
                    f"{m.source} -> {target}: not bit-exact "
                    f"(shape {got.shape} vs {want.shape}, max abs diff {diff:.3g})"
                )
    ok = not problems
    return Check(
        name="weights",
        ok=ok,
        value=f"{equal}/{len(targets)} tensors bit-exact",
        tolerance="bit-exact (float32)",
        detail="; ".join(problems[:10]),
        data={
            "problems": problems,
            "skipped_source_tensors": len(plan.skipped),
            **({SOURCE_DIGESTS: digests} if record else {}),
        },
    )


def _bits(array: np.ndarray) -> np.ndarray:
    """The array's raw bits as unsigned integers of its item size: bit-exact equality, compared a word at a
    time (8x faster than byte by byte for float32; NaN payloads and -0.0 count as different, as they are)."""
    flat = array.reshape(-1)
    return flat.view(f"u{array.itemsize}") if array.itemsize in (1, 2, 4, 8) else flat.view(np.uint8)


def _sha256(array: np.ndarray) -> str:
    """The digest recorded per tensor at conversion and checked against without the source: its raw bytes."""
    return hashlib.sha256(array.reshape(-1).view(np.uint8).data).hexdigest()


def _against_recorded(model_dir: Path, manifest: Mapping[str, Any], why: str) -> Check:
    """Without the source: every converted tensor against the sha256 its source tensor had at conversion."""
    recorded = manifest.get(SOURCE_DIGESTS)
    if not isinstance(recorded, Mapping) or not recorded:
        return Check("weights", ok=True, ran=False, value="not run", detail=f"{why}: nothing to replay")
    problems: list[str] = []
    with TensorReader(model_dir) as converted:
        names = set(converted.names())
        problems += [f"missing from the model: {t}" for t in sorted(set(recorded) - names)]
        problems += [f"invented (no source): {t}" for t in sorted(names - set(recorded))]
        for target in sorted(names & set(recorded)):
            if _sha256(converted.get(target)) != recorded[target]:
                problems.append(f"{target}: differs from its source tensor (sha256 recorded at conversion)")
    matched = len(recorded) - len(problems)
    return Check(
        name="weights",
        ok=not problems,
        value=f"{max(matched, 0)}/{len(recorded)} tensors match their source",
        tolerance="sha256 of each source tensor after its transform, recorded at conversion",
        detail=f"{why}: compared with the recorded source tensors; " + ("; ".join(problems[:10]) or "all equal"),
        data={"problems": problems},
    )
