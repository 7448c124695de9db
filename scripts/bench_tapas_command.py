#!/usr/bin/env python
"""`zoo bench` as users type it, with the default torch backend and with `--backend tf`, side by side.

Builds one SMALL-shaped TAPAS retriever (4 layers, hidden 512; random weights, converted by
zoo) and an NQ-tables directory of long tables (about 490 tokens each) with one question per
table, then times, in the same run, each in its own process measured by /usr/bin/time:

    python -m zoo bench CONVERTED --data NQ --split test --work W --batch-size B --json
    python -m zoo bench CONVERTED --data NQ --split test --work W --batch-size B --backend tf --json

Each starts with an empty work directory, so it encodes the whole corpus. Wall time covers the
whole command (imports, tokenizing, encoding, search, metrics). The metrics of both runs are
printed too: they must agree (same checkpoint, same token ids).

    python scripts/bench_tapas_command.py [--tables N] [--batch-size B] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from timed import timed  # noqa: E402

BACKENDS = {"torch (default)": [], "TF reference (--backend tf)": ["--backend", "tf"]}


def _write_nq(folder: Path, tables, questions) -> Path:
    """tables.jsonl (the corpus) and test.jsonl (question i's gold table is table i)."""
    folder.mkdir()
    with open(folder / "tables.jsonl", "w") as fh:
        for t in tables:
            row = {"table_id": t.table_id, "document_title": t.title, "columns": t.columns, "rows": t.rows}
            fh.write(json.dumps(row) + "\n")
    with open(folder / "test.jsonl", "w") as fh:
        for i, (t, q) in enumerate(zip(tables, questions, strict=True)):
            fh.write(json.dumps({"id": f"q{i}", "question": q, "table_ids": [t.table_id]}) + "\n")
    return folder


def _timed(command: list[str]) -> tuple[float, int, dict]:
    """(wall seconds, peak RSS bytes, the command's JSON output)."""
    run = timed(command)
    try:
        return run.seconds, run.peak_rss_bytes, json.loads(run.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"{' '.join(command)} printed no JSON (exit {run.returncode}):\n{run.stderr}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", type=int, default=64, help="tables in the corpus (one question each)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--json", action="store_true", help="print the report as JSON only")
    args = parser.parse_args(argv)
    from bench_encode import _tapas

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        converted, _, tables, questions = _tapas("small", folder, args.batch_size, args.tables)
        data = _write_nq(folder / "nq", tables, questions)
        rows: list[dict[str, Any]] = []
        for label, extra in BACKENDS.items():
            seconds, peak, output = _timed(
                [sys.executable, "-m", "zoo", "bench", str(converted), "--data", str(data), "--split", "test"]
                + ["--work", str(folder / f"work-{len(rows)}"), "--batch-size", str(args.batch_size), *extra, "--json"]
            )
            rows.append(
                {
                    "backend": label,
                    "seconds": seconds,
                    "peak_rss_bytes": peak,
                    "metrics": [s["metrics"] for s in output["sections"]],
                }
            )
    report = {
        "machine": f"{os.cpu_count()} CPUs",
        "tables": args.tables,
        "batch_size": args.batch_size,
        "runs": rows,
        "torch_speedup": round(rows[1]["seconds"] / rows[0]["seconds"], 2),
    }
    print(json.dumps(report, indent=2))
    if not args.json:
        print(
            f"zoo bench, {args.tables} long tables: torch {rows[0]['seconds']:.1f} s, TF {rows[1]['seconds']:.1f} s: "
            f"torch is {report['torch_speedup']}x as fast (target >= 1.0)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
