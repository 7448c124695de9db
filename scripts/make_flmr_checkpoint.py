#!/usr/bin/env python
"""Write a tiny plain-FLMR model in the hub layout, its legacy Lightning .ckpt and a CLIP vision dir.

    python scripts/make_flmr_checkpoint.py OUT_DIR [--seed N] [--malicious]

OUT_DIR/hf (hub layout), OUT_DIR/legacy.ckpt (no vision tower) and OUT_DIR/clip_vision (for
`zoo convert --from OUT_DIR/legacy.ckpt --format flmr-legacy --config OUT_DIR/hf --vision
OUT_DIR/clip_vision`). --malicious also writes OUT_DIR/malicious.ckpt, whose unpickling would
create OUT_DIR/PWNED. The logic lives in tests/flmr_factory.py, shared with the tests.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from flmr_factory import make_flmr, make_malicious_ckpt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--malicious", action="store_true", help="also write malicious.ckpt (runs code if unpickled)")
    args = parser.parse_args(argv)
    tiny = make_flmr(args.out, seed=args.seed)
    print(f"hub layout: {tiny.hf}\nlegacy:     {tiny.legacy}\nvision:     {tiny.vision}")
    if args.malicious:
        print(f"malicious:  {make_malicious_ckpt(args.out / 'malicious.ckpt', args.out / 'PWNED')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
