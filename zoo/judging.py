"""Judge measured benchmark numbers against the registry, including FLMR's documented drift.

Policy (issue: "the documented drift, as data and as a check"):
- The reference is the number of the checkpoint that was actually released: the
  "converted" set for PreFLMR, else the single published/paper number. A measurement must
  lie within the run-to-run tolerance of it (0.3 points on a percent scale).
- Where a paper number also exists, the measurement's distance from it must stay within
  the documented |paper - converted| delta plus the same tolerance.
- Outside either band is FAIL. Inside is OK, labelled "documented drift" when the paper
  number differs from the released one (the measurement reproduces the drift the authors
  documented rather than the paper).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from .errors import InputError
from .registry import Entry, Metric

RUN_TO_RUN_POINTS = 0.3
TOLERANCE_BY_SCALE = {"percent": RUN_TO_RUN_POINTS, "fraction": RUN_TO_RUN_POINTS / 100}
COUNT_RELATIVE_TOLERANCE = 0.15  # "about 41 active dims": an approximate published count

Cell = tuple[str, str]  # (benchmark, metric)


@dataclass(frozen=True)
class DriftRow:
    benchmark: str
    metric: str
    paper: float | None
    converted: float | None

    @property
    def delta(self) -> float | None:
        if self.paper is None or self.converted is None:
            return None
        return round(self.converted - self.paper, 6)


@dataclass(frozen=True)
class Judgement:
    benchmark: str
    metric: str
    measured: float
    reference: float
    reference_set: str
    tolerance: float
    paper: float | None
    documented_delta: float | None
    verdict: str  # "OK" | "OK (documented drift)" | "FAIL"
    reason: str

    @property
    def ok(self) -> bool:
        return self.verdict != "FAIL"

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "ok": self.ok}


def drift_table(entry: Entry) -> list[DriftRow]:
    """Paper vs converted number per benchmark cell, in registry order (cells with either set)."""
    cells: dict[Cell, dict[str, float]] = {}
    for m in entry.metrics:
        if m.set in ("paper", "converted"):
            cells.setdefault((m.benchmark, m.metric), {})[m.set] = m.value
    return [DriftRow(b, k, v.get("paper"), v.get("converted")) for (b, k), v in cells.items()]


def _reference(metrics: list[Metric]) -> Metric:
    by_set = {m.set: m for m in metrics}
    return by_set.get("converted") or by_set.get("published") or by_set["paper"]


def _tolerance(metric: Metric) -> float:
    if metric.scale == "count":
        return abs(metric.value) * COUNT_RELATIVE_TOLERANCE
    return TOLERANCE_BY_SCALE[metric.scale]


def judge_one(entry: Entry, benchmark: str, metric: str, measured: float) -> Judgement:
    candidates = [m for m in entry.metrics if (m.benchmark, m.metric) == (benchmark, metric)]
    if not candidates:
        raise InputError(f"{entry.id} has no registry number for {benchmark} {metric}")
    ref = _reference(candidates)
    tol = _tolerance(ref)
    paper = next((m.value for m in candidates if m.set == "paper"), None)
    delta = None if paper is None or ref.set == "paper" else abs(ref.value - paper)
    off_ref = abs(measured - ref.value)
    problems = []
    if off_ref > tol + 1e-9:
        problems.append(f"{off_ref:.2f} from the {ref.set} number {ref.value} (tolerance {tol:g})")
    if delta is not None and paper is not None:
        off_paper = abs(measured - paper)
        if off_paper > delta + tol + 1e-9:
            problems.append(f"{off_paper:.2f} from the paper number {paper} (documented drift {delta:.2f} + {tol:g})")
    if problems:
        verdict, reason = "FAIL", "; ".join(problems)
    elif delta:
        verdict = "OK (documented drift)"
        reason = f"within {tol:g} of the {ref.set} number; paper {paper} differs by the documented {delta:.2f}"
    else:
        verdict, reason = "OK", f"within {tol:g} of the {ref.set} number"
    return Judgement(benchmark, metric, measured, ref.value, ref.set, tol, paper, delta, verdict, reason)


def judge(entry: Entry, measured: Mapping[Cell, float]) -> list[Judgement]:
    """Judge every measured cell; cells the registry does not know are an error, not a pass."""
    return [judge_one(entry, b, m, v) for (b, m), v in measured.items()]
