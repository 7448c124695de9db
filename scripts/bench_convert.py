#!/usr/bin/env python
"""Benchmark the TAPAS retriever conversion: peak memory and throughput on a large-shaped checkpoint.

Builds a dual encoder of the large released shape (24 layers, hidden 1024, vocab 30522, D=256:
~674M parameters, ~2.7 GB, random values; TF holds it once while its Saver writes
tensor by tensor), then in the same run:
  1. copies the checkpoint's files (a plain file copy of the same bytes) for a throughput baseline;
  2. converts it in a fresh subprocess, which resets its peak-RSS counter after the imports, so
     the figure is the conversion's own peak above that baseline.
Prints peak RSS / checkpoint size (target <= 0.5) and conversion throughput / copy throughput
(target >= 0.4). `--small` uses a quick shape.

    python scripts/bench_convert.py [--small] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
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

# Runs in the child: imports first, then reset the peak-RSS counter, then convert.
_CHILD = r"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
import tensorflow  # the converter reads TF checkpoints; its import is baseline, not conversion
from converters import load_format
module = load_format("tapas-retriever")

def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

baseline = status("VmRSS")
try:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    reset = True
except OSError:
    reset = False
start = time.perf_counter()
module.convert(Path(sys.argv[1]), Path(sys.argv[2]), {}, False)
seconds = time.perf_counter() - start
print(json.dumps({"baseline": baseline, "peak": status("VmHWM"), "seconds": seconds, "hwm_reset": reset}))
"""


def _build(spec_fields: dict, folder: Path) -> Path:
    sys.path.insert(0, str(REPO / "scripts"))
    import make_tapas_checkpoint as mk

    spec = mk.CheckpointSpec(kind="retriever", initializer_range=0.02, **spec_fields)
    return mk.write_checkpoint(spec, folder)


def _copy_seconds(files: list[Path], dest: Path) -> float:
    dest.mkdir()
    start = time.perf_counter()
    for path in files:
        shutil.copyfile(path, dest / path.name)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="quick shape (4 x 256) instead of the large one")
    parser.add_argument("--layers", type=int, help="override num_hidden_layers")
    parser.add_argument("--workdir", type=Path, help="where to build (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the checkpoint and outputs")
    args = parser.parse_args(argv)
    fields = dict(SMALL if args.small else LARGE)
    if args.layers:
        fields["num_hidden_layers"] = args.layers

    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="zoo-bench-", dir=args.workdir))
    try:
        src = work / "checkpoint"
        t0 = time.perf_counter()
        prefix = _build(fields, src)
        build_s = time.perf_counter() - t0
        data_files = sorted(src.glob(prefix.name + ".*"))
        size = sum(p.stat().st_size for p in data_files)

        os.sync()  # each timed phase starts without a write-back backlog from the previous one
        copy_s = _copy_seconds(data_files, work / "copy")
        os.sync()
        out = work / "converted"
        out.mkdir()
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(src), str(out), str(REPO)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if proc.returncode:
            print(proc.stderr, file=sys.stderr)
            return 1
        child = json.loads(proc.stdout.strip().splitlines()[-1])
        peak_over = child["peak"] - child["baseline"]
        report = {
            "shape": fields,
            "checkpoint_bytes": size,
            "build_seconds": round(build_s, 1),
            "copy_seconds": round(copy_s, 2),
            "convert_seconds": round(child["seconds"], 2),
            "copy_MBps": round(size / copy_s / 1e6, 1),
            "convert_MBps": round(size / child["seconds"] / 1e6, 1),
            "throughput_ratio": round(copy_s / child["seconds"], 3),
            "peak_rss_over_baseline_bytes": peak_over,
            "peak_rss_ratio": round(peak_over / size, 3),
            "baseline_rss_bytes": child["baseline"],
            "peak_counter_reset_after_imports": child["hwm_reset"],
        }
        print(json.dumps(report, indent=2))
        ok = report["peak_rss_ratio"] <= 0.5 and report["throughput_ratio"] >= 0.4
        print(
            f"peak RSS / checkpoint size = {report['peak_rss_ratio']} (target <= 0.5); "
            f"conversion / copy throughput = {report['throughput_ratio']} (target >= 0.4): "
            f"{'OK' if ok else 'MISSED'}"
        )
        return 0 if ok else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")


if __name__ == "__main__":
    sys.exit(main())
