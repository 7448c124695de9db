"""The parity gate: accept a conversion that is faithful, whatever rounding does; refuse a wrong one.

A fixed float32 tolerance cannot do both: float32 rounding in a deep, wide model with large
weights moves outputs by far more than 1e-5 (a faithful 384 x 12 model at weight std 0.3 differs
by 1.8e-3 from the TF reference), while a real mistake can be smaller. So the probe runs in
float64 on both sides (the reference and the model under test), where rounding is 2^-29 of
float32's, and the gate is set from the rounding this very model shows:

    d32 = max |model(float32) - model(float64)|       how far float32 rounding moves this output
    tol = FLOOR * scale + MARGIN * 2^-29 * d32        what float64 rounding could explain, with margin
    pass  iff  max |model(float64) - reference(float64)| <= tol

Two faithful implementations differ in float64 by about their float32 difference times 2^-29;
MARGIN (512) leaves room for different operation orders on the two sides. A mistake (erf instead
of tanh GELU, a transposed kernel, swapped towers, a wrong position mode) changes outputs by its
own size, which float64 does not shrink, so it stays far above `tol`. The float32 difference to
the reference is reported as information. docs/parity.md has the evidence table.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .report import Check
from .similarity import max_abs_diff, min_row_cosine

ROUNDING_RATIO = 2.0**-29  # float64 machine epsilon / float32 machine epsilon
MARGIN = 512.0
FLOOR = 1e-9  # relative to the output's scale: two float64 runs agreeing this well agree
MASKED = 9999.0  # |values| this large are TF's -10000 mask: exact on both sides, not a scale


def scale(values: np.ndarray) -> float:
    """The size of an output, ignoring masked entries (-10000)."""
    finite = np.abs(values[np.abs(values) < MASKED])
    return max(1.0, float(finite.max())) if finite.size else 1.0


def gate(
    name: str,
    ours64: Mapping[str, np.ndarray],
    ours32: Mapping[str, np.ndarray],
    reference: Mapping[str, np.ndarray],
    detail: str,
) -> Check:
    """The model in float64 (and float32) vs a float64 reference, output by output."""
    problems: list[str] = []
    per_output: dict[str, dict[str, float]] = {}
    for key, want in reference.items():
        got64, got32 = np.asarray(ours64[key]), np.asarray(ours32[key])
        if got64.shape != want.shape:
            problems.append(f"{key}: shape {got64.shape} != {want.shape}")
            continue
        if np.issubdtype(want.dtype, np.integer):
            if not np.array_equal(got64, want):
                problems.append(f"{key}: differs")
            continue
        diff64, rounding = max_abs_diff(got64, want), max_abs_diff(got32, got64)
        tolerance = FLOOR * scale(np.asarray(want, dtype=np.float64)) + MARGIN * ROUNDING_RATIO * rounding
        per_output[key] = {
            "float64_diff": diff64,
            "tolerance": tolerance,
            "float32_rounding": rounding,
            "float32_diff": max_abs_diff(got32, want),
            "cosine": min_row_cosine(got64, want),
        }
        if diff64 > tolerance:
            problems.append(f"{key}: float64 |diff| {diff64:.3g} > {tolerance:.3g}")
    worst = max(per_output, key=lambda k: per_output[k]["float64_diff"] / per_output[k]["tolerance"], default=None)
    value = per_output[worst]["float64_diff"] if worst else 0.0
    tolerance = per_output[worst]["tolerance"] if worst else FLOOR
    float32 = max((v["float32_diff"] for v in per_output.values()), default=0.0)
    text = (
        f"{detail}; float64 max |diff| {value:.3g} (tolerance {tolerance:.3g}, from float32 rounding); "
        f"float32 max |diff| {float32:.3g} (information)"
    )
    if problems:
        text += "; " + "; ".join(problems)
    return Check(
        name=name,
        ok=not problems,
        value=value,
        tolerance=tolerance,
        detail=text,
        data={
            "outputs": per_output,
            "float32_max_abs_diff": float32,
            "cosine": {k: v["cosine"] for k, v in per_output.items()},
        },
    )
