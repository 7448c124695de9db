#!/usr/bin/env bash
# Create .venv (if missing) and install zoo with every extra. torch is pinned first: a plain
# `torch` requirement would pull GBs of CUDA wheels, while 2.13.0 resolves to the CPU build here.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q ".[tf,splade,test,bench,lint,ray]"
