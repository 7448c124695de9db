"""Name mappings as data: ordered rule tables that send each source tensor to one target.

A converter declares RULES (regex -> target template + named transform) and SKIP (regexes of
source variables that are not weights, e.g. optimizer slots). `plan` applies them once; any
source name that matches nothing, or two names that land on one target, is a MappingError.
The returned plan is what verify's `weights` check replays.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from zoo.errors import MappingError


def _transposed(a: np.ndarray) -> np.ndarray:
    """a.T made contiguous; for a writable matrix through torch's blocked, threaded copy (~4x numpy's).

    torch is imported here, not with the module: zoo.conversion imports the rule tables, and
    `zoo list` must not pay for torch (zoo.families.contract)."""
    if a.ndim == 2 and a.flags.writeable:
        import torch

        return torch.from_numpy(a).t().contiguous().numpy()
    return np.ascontiguousarray(a.T)


TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": lambda a: a,
    "transpose": _transposed,
}


@dataclass(frozen=True)
class Rule:
    pattern: str  # full-match regex over the source name
    target: str  # re.sub template, e.g. r"bert.encoder.layer.\1.attention.self.query.weight"
    transform: str = "identity"

    def __post_init__(self) -> None:
        if self.transform not in TRANSFORMS:
            raise ValueError(f"unknown transform {self.transform!r} in rule {self.pattern!r}")


@dataclass(frozen=True)
class Mapped:
    source: str
    target: str
    transform: str

    def apply(self, array: np.ndarray) -> np.ndarray:
        return TRANSFORMS[self.transform](array)

    def to_dict(self) -> dict[str, str]:
        return {"source": self.source, "target": self.target, "transform": self.transform}


@dataclass(frozen=True)
class Plan:
    mapped: tuple[Mapped, ...]
    skipped: tuple[str, ...]

    def by_target(self) -> dict[str, Mapped]:
        return {m.target: m for m in self.mapped}


def plan(names: Iterable[str], rules: Sequence[Rule], skip: Sequence[str] = ()) -> Plan:
    """Match every source name against SKIP, then the first matching RULE (order = priority)."""
    compiled = [(re.compile(r.pattern), r) for r in rules]
    skip_re = [re.compile(s) for s in skip]
    mapped: list[Mapped] = []
    skipped: list[str] = []
    unmatched: list[str] = []
    for name in sorted(names):
        if any(s.fullmatch(name) for s in skip_re):
            skipped.append(name)
            continue
        for regex, rule in compiled:
            m = regex.fullmatch(name)
            if m:
                mapped.append(Mapped(name, m.expand(rule.target), rule.transform))
                break
        else:
            unmatched.append(name)
    if unmatched:
        raise MappingError(f"{len(unmatched)} source tensor(s) match no rule: {_few(unmatched)}")
    seen: dict[str, str] = {}
    for row in mapped:
        if row.target in seen:
            raise MappingError(f"source tensors {seen[row.target]!r} and {row.source!r} both map to {row.target!r}")
        seen[row.target] = row.source
    return Plan(tuple(mapped), tuple(skipped))


def check_shapes(
    the_plan: Plan,
    source_shapes: Mapping[str, tuple[int, ...]],
    expected: Mapping[str, tuple[int, ...]],
) -> None:
    """Every expected target is produced once, nothing extra is produced, shapes agree."""
    produced = the_plan.by_target()
    missing = sorted(set(expected) - set(produced))
    unused = sorted(set(produced) - set(expected))
    problems: list[str] = []
    if missing:
        problems.append(f"missing from the checkpoint: {_few(missing)}")
    if unused:
        problems.append("not used by the model: " + _few([f"{produced[t].source} (-> {t})" for t in unused]))
    for target, m in produced.items():
        if target not in expected:
            continue
        shape = tuple(source_shapes[m.source])
        if m.transform == "transpose":
            shape = shape[::-1]
        if shape != tuple(expected[target]):
            problems.append(
                f"shape mismatch: {m.source} {tuple(source_shapes[m.source])} -> {target} "
                f"expects {tuple(expected[target])}"
            )
    if problems:
        raise MappingError("; ".join(problems))


def _few(items: Sequence[str], n: int = 8) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" ... (+{len(items) - n} more)" if len(items) > n else "")
