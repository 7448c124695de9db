#!/usr/bin/env python
"""Evidence for zoo's TAPAS parity gate (zoo/checks/gate.py): faithful conversions of every shape at
every weight scale pass; unfaithful ones are refused.

For each shape x weight std: a TF checkpoint is generated (scripts/make_tapas_checkpoint.py),
converted with `zoo.convert`, and the TF reference runs once on the probe (float64). The faithful
conversion and copies of it with one mistake each are then checked against that probe:

    erf-gelu          config hidden_act "gelu" (erf) where TF TAPAS uses the tanh form
    swapped-towers    the question and table towers exchanged
    no-projection     the down projections dropped (config down_projection_dim 0)
    transposed-proj   the projections stored transposed (non-square: [H, D])
    wrong-reset       per-cell position reset switched on for a retriever
    transposed-kernel one square kernel (layer 0 query) transposed

    python scripts/parity_evidence.py [--shapes tiny small base large] [--stds 0.02 0.3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

SHAPES: dict[str, dict[str, Any]] = {  # the BERT miniatures TAPAS released, plus the width/depth the issue saw
    "tiny": {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 512},
    "small": {"hidden_size": 512, "num_hidden_layers": 4, "num_attention_heads": 8, "intermediate_size": 2048},
    "384x12": {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6, "intermediate_size": 1536},
    "base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
    "large": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096},
}
PROJECTION = 8


def _copy(src: Path, dst: Path) -> Path:
    """A copy that shares the unchanged weight bytes (hard links); mutations replace files, never edit them."""
    shutil.copytree(src, dst, copy_function=os.link)
    return dst


def _config(model_dir: Path, **changes: Any) -> None:
    path = model_dir / "config.json"
    data = json.loads(path.read_text())
    path.unlink()
    path.write_text(json.dumps({**data, **changes}))


def _tensors(model_dir: Path, edit: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Rewrite the weights (single file or shards) with `edit` applied; the new files replace the links."""
    import numpy as np

    from zoo.safetensors_io import INDEX_NAME, TensorReader, TensorSpec, weight_files, write_safetensors

    with TensorReader(model_dir) as reader:
        tensors = edit({name: reader.get(name) for name in reader.names()})
    for name in [*weight_files(model_dir), INDEX_NAME]:
        (model_dir / name).unlink(missing_ok=True)
    specs = [TensorSpec(k, tuple(v.shape), np.dtype(v.dtype)) for k, v in sorted(tensors.items())]
    write_safetensors(model_dir, specs, lambda spec: tensors[spec.name])


def _swap_towers(t: dict[str, Any]) -> dict[str, Any]:
    def swap(name: str) -> str:
        if name.startswith("bert_1."):
            return "bert." + name[len("bert_1.") :]
        return "bert_1." + name[len("bert.") :] if name.startswith("bert.") else name

    return {swap(k): v for k, v in t.items()}


def _drop_projections(model_dir: Path) -> None:
    _config(model_dir, down_projection_dim=0)
    _tensors(model_dir, lambda t: {k: v for k, v in t.items() if "projection" not in k})


MUTATIONS: dict[str, Callable[[Path], None]] = {
    "erf-gelu": lambda d: _config(d, hidden_act="gelu"),
    "swapped-towers": lambda d: _tensors(d, _swap_towers),
    "no-projection": _drop_projections,
    "transposed-proj": lambda d: _tensors(
        d, lambda t: {k: v.T.copy() if "projection" in k else v for k, v in t.items()}
    ),
    "wrong-reset": lambda d: _config(d, reset_position_index_per_cell=True),
    "transposed-kernel": lambda d: _tensors(
        d,
        lambda t: {
            k: v.T.copy() if k == "bert.encoder.layer.0.attention.self.query.weight" else v for k, v in t.items()
        },
    ),
}


def evidence(shape: str, std: float, workdir: Path, variants: list[str]) -> list[dict[str, Any]]:
    """One row per variant: the gate's numbers and verdict on this shape and weight scale."""
    import make_tapas_checkpoint as make

    import zoo
    from zoo.checks import tapas

    spec = make.CheckpointSpec(
        **SHAPES[shape],
        vocab_size=1000,
        max_position_embeddings=64,
        initializer_range=std,
        down_projection_dim=PROJECTION,
        seed=7,
    )
    source = make.write_checkpoint(spec, workdir / "ckpt")
    faithful = zoo.convert(source, format="tapas-retriever", out=workdir / "faithful")
    manifest = zoo.read_manifest(faithful)
    start = time.perf_counter()
    probe = tapas.reference_probe(faithful, manifest)
    assert not isinstance(probe, str), probe
    rows = []
    for variant in variants:
        model_dir = faithful
        if variant != "faithful":
            model_dir = _copy(faithful, workdir / variant)
            MUTATIONS[variant](model_dir)
        check = tapas.check_probe(model_dir, probe, "encodings")
        rows.append(
            {
                "shape": shape,
                "std": std,
                "variant": variant,
                "verdict": check.verdict,
                "float64_diff": check.value,
                "tolerance": check.tolerance,
                "float32_diff": check.data.get("float32_max_abs_diff"),
                "detail": check.detail,
            }
        )
    rows[0]["seconds"] = round(time.perf_counter() - start, 1)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=["tiny", "small", "384x12", "base"])
    parser.add_argument("--stds", nargs="+", type=float, default=[0.02, 0.3])
    parser.add_argument("--variants", nargs="+", choices=["faithful", *MUTATIONS], default=["faithful", *MUTATIONS])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    for shape in args.shapes:
        for std in args.stds:
            with tempfile.TemporaryDirectory(prefix="zoo-parity-") as tmp:
                rows += evidence(shape, std, Path(tmp), args.variants)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print("| shape | weight std | variant | float32 max diff | float64 max diff | gate tolerance | verdict |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        f32 = "-" if r["float32_diff"] is None else f"{r['float32_diff']:.2g}"
        f64 = r["float64_diff"] if isinstance(r["float64_diff"], str) else f"{r['float64_diff']:.2g}"
        tol = "-" if r["tolerance"] is None else f"{r['tolerance']:.2g}"
        why = " (output shapes differ)" if ": shape (" in r["detail"] else ""
        print(f"| {r['shape']} | {r['std']} | {r['variant']} | {f32} | {f64} | {tol} | {r['verdict']}{why} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
