"""`zoo bench` as text: metrics per benchmark, then the judgements and extra checks."""

from __future__ import annotations

from .runner import BenchResult


def _value(metric: str, value: float) -> str:
    return f"{value:.1f}" if metric.endswith("active_dims") else f"{value:.4f}"


def render(result: BenchResult) -> str:
    lines = [
        f"bench {result.model} ({result.family}) on {result.data} [{result.split}]"
        + (f", judged as {result.entry_id}" if result.entry_id else "")
    ]
    for section in result.sections:
        lines.append(f"  {section.benchmark}: {section.queries} queries, {section.documents} documents")
        lines += [f"    {metric:20} {_value(metric, value)}" for metric, value in section.metrics.items()]
    if result.judgements:
        lines += ["", f"  {'benchmark':40} {'metric':18} {'measured':>9} {'reference':>9}  verdict"]
        lines += [
            f"  {j.benchmark:40} {j.metric:18} {j.measured:9.4g} {j.reference:9.4g}  {j.verdict}: {j.reason}"
            for j in result.judgements
        ]
    for check in result.checks:
        lines.append(
            f"  {check.name}: {'PASS' if check.ok else 'FAIL'}  value={check.value}  "
            f"tolerance={check.tolerance}  {check.detail}"
        )
    lines += [f"  note: {n}" for n in result.notes]
    if result.complete:
        lines.append("OK" if result.ok else "FAILED")
    return "\n".join(lines)
