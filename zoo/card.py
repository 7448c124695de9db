"""The model card (README.md) written beside a converted model: metadata up top, provenance below."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import constants
from ._version import __version__
from .families import Family
from .registry import Entry


def _yaml_scalar(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON scalar is a valid YAML flow scalar


def write(
    directory: Path,
    entry: Entry | None,
    family: Family,
    source: dict[str, Any],
    checks: list[dict[str, Any]],
    notes: list[str],
) -> None:
    (directory / constants.MODEL_CARD_FILENAME).write_text(render(entry, family, source, checks, notes))


def render(
    entry: Entry | None, family: Family, source: dict[str, Any], checks: list[dict[str, Any]], notes: list[str]
) -> str:
    front: list[str] = ["---", f"library_name: {family.card.library_name}", "tags:"]
    tags = ["zoo", family.name] + ([entry.task] if entry else [])
    front += [f"- {_yaml_scalar(t)}" for t in tags]
    if entry:
        front.append(f"license: {_yaml_scalar(entry.license)}")
        front.append(f"base_model: {_yaml_scalar(entry.source.repo or entry.source.url)}")
        if entry.metrics:
            front.append("metrics:")
            for m in entry.metrics:
                front.append(f"- benchmark: {_yaml_scalar(m.benchmark)}")
                front += [
                    f"  metric: {_yaml_scalar(m.metric)}",
                    f"  value: {m.value}",
                    f"  set: {_yaml_scalar(m.set)}",
                    f"  provenance: {_yaml_scalar(m.provenance)}",
                ]
    front.append("---")

    title = entry.id if entry else str(source.get("path", "converted model"))
    body = [f"# {title}", ""]
    if entry:
        body += [
            f"{entry.family} {entry.task}, size {entry.size}. Paper: {entry.paper.title}"
            + (f" (arXiv {entry.paper.arxiv})" if entry.paper.arxiv else "")
            + ".",
            "",
        ]
        if entry.notes:
            body += [entry.notes, ""]
    body += ["## Provenance", ""]
    origin = source.get("origin") or {}
    body += [f"- source: {origin.get('url') or origin.get('repo') or source.get('path')}"]
    if origin.get("url") or origin.get("repo"):
        body.append(f"- local copy: `{source.get('path')}`")
    for label, digest in (("source sha256", origin.get("sha256")), ("checkpoint sha256", source.get("sha256"))):
        if digest:
            body.append(f"- {label}: `{digest}`")
    for name, digest in sorted((source.get("files") or {}).items()):
        body.append(f"- source file `{name}` sha256 `{digest}`")
    body.append(f"- converted by zoo {__version__} (format `{source.get('format', 'none')}`)")
    body += [f"- note: {n}" for n in notes]
    body += ["", "## Verification at conversion time", ""]
    if checks:
        body += ["| check | verdict | value | tolerance |", "|---|---|---|---|"]
        body += [f"| {c['name']} | {c['verdict']} | {c.get('value')} | {c.get('tolerance')} |" for c in checks]
    else:
        body.append("No checks ran at conversion time; run `zoo verify` on this directory.")
    return "\n".join(front + [""] + body) + "\n"
