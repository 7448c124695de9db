"""The demo: pull, convert, verify and use a TAPAS retriever, all on this machine.

A bundled tiny zip in exactly the layout of the GCS release (random weights, 2 layers) stands
in for `tapas_nq_retriever_tiny`. A local GCS-like server serves it under the real object path,
and ZOO_MIRRORS points zoo at that server, so the registry entry, its real URL path and every
integrity check run exactly as they would against storage.googleapis.com. The first pull pins
the zip's sha256 (trust on first use) in the demo's own cache, never in ~/.cache/zoo.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from gcs_server import GCSServer  # noqa: E402

MODEL = "tapas_nq_retriever_tiny"
BUNDLED_ZIP = HERE / "demo_data" / f"{MODEL}.zip"
OBJECT = f"tapas_models/2021_04_27/{MODEL}.zip"


def run(step: str, *args: str, env: dict[str, str]) -> None:
    print(f"\n$ zoo {' '.join(args)}", flush=True)
    result = subprocess.run([sys.executable, "-m", "zoo", *args], env=env)
    if result.returncode != 0:
        raise SystemExit(f"demo: `{step}` failed with exit code {result.returncode}")


def use(env: dict[str, str]) -> None:
    """Load the converted model through the Python API and rank two tables for two questions."""
    os.environ.update(env)
    import pandas as pd
    import torch
    from transformers.utils import logging as hf_logging

    import zoo
    from zoo.models.tapas import TapasTextEncoder

    hf_logging.disable_progress_bar()

    path = zoo.resolve(MODEL)
    model = zoo.load(MODEL).eval()
    text = TapasTextEncoder.from_pretrained(path)
    tables = [
        pd.DataFrame({"city": ["paris", "berlin"], "year": ["1999", "2001"]}),
        pd.DataFrame({"team": ["the reds", "the blues"], "wins": ["3", "7"]}),
    ]
    questions = ["which city was in 1999", "how many wins for the reds"]
    with torch.no_grad():
        q = model.embed_questions(questions, text)
        t = model.embed_tables(tables, ["cities", "teams"], text)
    print(f"\n$ python: zoo.load({MODEL!r}) -> {type(model).__name__}; question x table scores (random tiny weights):")
    for question, row in zip(questions, (q @ t.T).tolist(), strict=False):
        print(f"  {question!r:32} " + "  ".join(f"{s:+.4f}" for s in row))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path("demo_home"), help="ZOO_HOME for the demo (recreated)")
    args = parser.parse_args(argv)
    home = args.home.resolve()
    shutil.rmtree(home, ignore_errors=True)
    with tempfile.TemporaryDirectory() as bucket_root:
        target = Path(bucket_root) / OBJECT
        target.parent.mkdir(parents=True)
        shutil.copyfile(BUNDLED_ZIP, target)
        with GCSServer(Path(bucket_root)) as server:
            env = {**os.environ, "ZOO_HOME": str(home), "ZOO_MIRRORS": server.base_url, "ZOO_REGISTRY": ""}
            print(f"demo: serving {OBJECT} from a GCS-like server at {server.base_url} (ZOO_HOME={home})")
            run("info", "info", MODEL, env=env)
            run("pull", "pull", MODEL, env=env)
            run("convert", "convert", MODEL, env=env)
            run("verify", "verify", MODEL, env=env)
            run("path", "path", MODEL, env=env)
            use(env)
    print("\ndemo: pulled, converted and verified OK")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
