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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Report:
    target: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "ok": self.ok, "checks": [c.to_dict() for c in self.checks]}
