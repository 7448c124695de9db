"""Run one command under /usr/bin/time: its wall time and peak RSS, as the benchmark scripts report them."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from zoo.cli import PROCESS_ENVIRONMENT  # noqa: E402


@dataclass(frozen=True)
class Timed:
    seconds: float
    peak_rss_bytes: int
    returncode: int
    stdout: str
    stderr: str


def timed(command: list[str]) -> Timed:
    """The command in its own process (zoo importable, TensorFlow's C++ logging quiet), in the
    environment the `zoo` process gives itself, so a bare import baseline loads what `zoo` loads."""
    env = {**PROCESS_ENVIRONMENT, **os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "%e %M", "-o", report.name, *command],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        seconds, kilobytes = report.read().split()[-2:]
    return Timed(float(seconds), int(kilobytes) * 1024, proc.returncode, proc.stdout, proc.stderr)
