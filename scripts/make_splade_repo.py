"""Write a tiny SPLADE repo (sentence-transformers v5 layout by default) for tests and demos.

    python scripts/make_splade_repo.py OUT [--layout v5|v6] [--weights safetensors|bin] [--seed 0]
    python scripts/make_splade_repo.py OUT --golden tests/data/splade_tiny_golden.json

Serve it with scripts/hub_server.py (OUT must then be ROOT/<org>/<name>). `--golden FILE` also
recomputes FILE's similarities with the plain-transformers reference and writes them back: that
is how the stored values were made (once; the tests never recompute them).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from splade_factory import LAYOUTS, WEIGHTS, reference_similarities, write_repo


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="directory to create")
    parser.add_argument("--layout", choices=LAYOUTS, default="v5")
    parser.add_argument(
        "--weights", choices=WEIGHTS, default="safetensors", help="bin: pytorch_model.bin only, like older Hub repos"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--golden", type=Path, help="JSON with query/documents: fill in its similarities")
    args = parser.parse_args(argv)
    repo = write_repo(args.out, layout=args.layout, weights=args.weights, seed=args.seed)
    print(f"wrote {repo}")
    if args.golden:
        data = json.loads(args.golden.read_text())
        data["similarities"] = reference_similarities(repo, data["query"], data["documents"])
        args.golden.write_text(json.dumps(data, indent=2) + "\n")
        print(f"similarities {data['similarities']} -> {args.golden}")


if __name__ == "__main__":
    main()
