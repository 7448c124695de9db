"""Helpers for the bench tests: data paths, registry entries with chosen numbers, peer recomputation."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import hub_registry_entry

DATA = Path(__file__).resolve().parent / "data" / "bench"


def registry_entry(model_id: str, family: str, task: str, metrics: list[dict]) -> dict:
    """A user-registry model entry (ZOO_REGISTRY) whose numbers a test chooses."""
    return {**hub_registry_entry(model_id, f"test/{model_id}"), "family": family, "task": task, "metrics": metrics}


def metric(benchmark: str, name: str, value: float, set_: str = "published", scale: str = "percent") -> dict:
    return {"benchmark": benchmark, "metric": name, "value": value, "set": set_, "provenance": "test", "scale": scale}


def write_registry(path: Path, entries: list[dict]) -> Path:
    path.write_text(json.dumps({"schema_version": 1, "models": entries}))
    return path


def peer(files: dict[str, str], measures: list[str], qrels_key: str = "qrels") -> dict[str, float]:
    """ir-measures on the run and qrels files a bench section wrote."""
    import ir_measures

    parsed = [ir_measures.parse_measure(m) for m in measures]
    qrels = list(ir_measures.read_trec_qrels(files[qrels_key]))
    run = list(ir_measures.read_trec_run(files["run"]))
    return {str(m): v for m, v in ir_measures.calc_aggregate(parsed, qrels, run).items()}


def run_lists(path: str) -> dict[str, list[str]]:
    """Doc ids per query in rank order, from a TREC run file."""
    out: dict[str, list[str]] = {}
    for line in Path(path).read_text().splitlines():
        qid, _, doc, _, _, _ = line.split()
        out.setdefault(qid, []).append(doc)
    return out
