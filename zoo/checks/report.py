"""Check results as values: what was measured, against what tolerance, and the verdict."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Check:
    name: str  # files | weights | encodings | golden | benchmark
    ok: bool
    value: float | str | None = None  # e.g. max abs diff, or "12/12 files"
    tolerance: float | str | None = None
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)  # extra measurements (cosine, per-output diffs)
    ran: bool = True  # False: the check could not run here (no reference, inputs not recorded); detail says why

    @property
    def verdict(self) -> str:
        return "SKIP" if not self.ran else "PASS" if self.ok else "FAIL"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}


@dataclass(frozen=True)
class Report:
    target: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """All checks that ran passed, and at least one ran; a skipped check is reported, not passed."""
        return any(c.ran for c in self.checks) and all(c.ok for c in self.checks if c.ran)

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "ok": self.ok, "checks": [c.to_dict() for c in self.checks]}
