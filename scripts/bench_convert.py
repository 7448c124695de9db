#!/usr/bin/env python
"""Benchmark `zoo convert` as users run it (conversion and its checks) next to a plain copy.

Builds a TAPAS dual encoder of the large released shape (24 layers, hidden 1024, vocab 30522,
D=256: ~674M parameters, ~2.7 GB, random values with std 0.02), then in the same run, each in
its own process measured by /usr/bin/time:
  1. the baseline: a process that imports what `zoo convert` imports (torch, transformers,
     TensorFlow, zoo) and exits: its peak RSS is the post-import baseline;
  2. `cp -r` of the checkpoint folder: the plain copy of the same bytes;
  3. `python -m zoo convert --from CKPT --format tapas-retriever --out OUT`: conversion, the
     weights replay and the float64 encodings check against the TF reference.
Steps 2 and 3 alternate `--repeat` times (default 3), each after `sync`, into fresh folders; the
medians are reported with every sample (the page cache and the VM's memory reclaim make single
runs noisy). Prints (peak RSS of 3 - peak RSS of 1) / checkpoint size (target <= 1.0) and wall
time of 3 / wall time of 2 (target <= 5). `--small` uses a quick shape.

    python scripts/bench_convert.py [--small] [--layers N] [--repeat N] [--workdir DIR] [--keep] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
from timed import timed  # noqa: E402

LARGE = {
    "num_hidden_layers": 24,
    "hidden_size": 1024,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
    "vocab_size": 30522,
    "max_position_embeddings": 512,
    "down_projection_dim": 256,
}
SMALL = {**LARGE, "num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 4, "intermediate_size": 1024}
TARGETS = {"peak_rss_ratio": 1.0, "wall_ratio": 5.0}
IMPORTS = "import torch, transformers, tensorflow, zoo.cli, converters.tapas_retriever, zoo.reference.tapas_tf"


def _build(fields: dict, folder: Path) -> Path:
    sys.path.insert(0, str(REPO / "scripts"))
    import make_tapas_checkpoint as mk

    return mk.write_checkpoint(mk.CheckpointSpec(kind="retriever", initializer_range=0.02, **fields), folder)


def _timed(command: list[str]) -> tuple[float, int]:
    """(wall seconds, peak RSS bytes) of one command that must succeed."""
    run = timed(command)
    if run.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{run.stdout}\n{run.stderr}")
    return run.seconds, run.peak_rss_bytes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="quick shape (4 x 256) instead of the large one")
    parser.add_argument("--layers", type=int, help="override num_hidden_layers")
    parser.add_argument("--repeat", type=int, default=3, help="copy/convert pairs to take medians over")
    parser.add_argument("--workdir", type=Path, help="where to build (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the checkpoint and outputs")
    parser.add_argument("--json", action="store_true", help="print the report as JSON only")
    args = parser.parse_args(argv)
    fields = dict(SMALL if args.small else LARGE)
    if args.layers:
        fields["num_hidden_layers"] = args.layers
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="zoo-bench-", dir=args.workdir))
    try:
        src = work / "checkpoint"
        start = time.perf_counter()
        prefix = _build(fields, src)
        build_s = time.perf_counter() - start
        size = sum(p.stat().st_size for p in src.glob(prefix.name + ".*"))
        os.sync()
        base_s, base_rss = _timed([sys.executable, "-c", IMPORTS])
        copies, converts, rss = [], [], []
        for i in range(args.repeat):
            os.sync()
            copies.append(_timed(["cp", "-r", str(src), str(work / f"copy{i}")])[0])
            shutil.rmtree(work / f"copy{i}")
            os.sync()
            out = work / "converted"
            shutil.rmtree(out, ignore_errors=True)
            seconds, peak = _timed(
                [sys.executable, "-m", "zoo", "convert", "--from", str(src), "--format", "tapas-retriever"]
                + ["--out", str(out), "--json"]
            )
            converts.append(seconds)
            rss.append(peak)
        copy_s, convert_s, convert_rss = (statistics.median(v) for v in (copies, converts, rss))
        checks = json.loads((work / "converted" / "zoo_manifest.json").read_text())["checks_at_conversion"]
        report: dict[str, Any] = {
            "machine": f"{os.cpu_count()} CPUs, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') >> 30} GiB",
            "shape": fields,
            "checkpoint_bytes": size,
            "build_seconds": round(build_s, 1),
            "import_seconds": round(base_s, 2),
            "baseline_peak_rss_bytes": base_rss,
            "copy_seconds": round(copy_s, 2),
            "convert_seconds": round(convert_s, 2),
            "convert_peak_rss_bytes": int(convert_rss),
            "samples": {"copy_seconds": copies, "convert_seconds": converts, "convert_peak_rss_bytes": rss},
            "peak_rss_ratio": round((convert_rss - base_rss) / size, 3),
            "wall_ratio": round(convert_s / copy_s, 2),
            "checks": {c["name"]: c["verdict"] for c in checks},
        }
        ok = all(report[k] <= v for k, v in TARGETS.items()) and set(report["checks"].values()) == {"PASS"}
        print(json.dumps(report, indent=2))
        if not args.json:
            print(
                f"zoo convert: extra peak RSS / checkpoint = {report['peak_rss_ratio']} (target <= 1.0); "
                f"wall / plain copy = {report['wall_ratio']} (target <= 5): {'OK' if ok else 'MISSED'}"
            )
        return 0 if ok else 1
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
