#!/usr/bin/env python
"""Encoding throughput (items/s) and peak memory on CPU, per family, for tiny and small models.

Each case runs in its own process (so its peak RSS is its own) and encodes synthetic items
through the same functions `zoo bench` uses: TAPAS tables (TorchRetriever.tables), SPLADE
documents (encode_document), FLMR passages and image queries. Weights are random: the speed
of a forward pass does not depend on them.

    python scripts/bench_encode.py                      # every family, tiny and small
    python scripts/bench_encode.py --families splade --sizes small --items 64 --json

Sizes: tiny = the test factories' shapes (hidden 32, 2 layers); small = the BERT "small"
miniature (4 layers, hidden 512, 8 heads; TAPAS small retriever, 512-token tables), a
256-wide 4-layer DistilBERT for SPLADE (256 tokens), and for FLMR a 4x512 text encoder with a
6-layer 384-wide ViT/32 at 224 px (512-token passages, 32-token queries).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
FAMILIES = ("tapas", "splade", "flmr")
SIZES = ("tiny", "small")
SIDE_BY_SIDE = ("tables+questions (torch)", "tables+questions (TF reference)")
SMALL_BERT = {"hidden_size": 512, "num_hidden_layers": 4, "num_attention_heads": 8, "intermediate_size": 2048}
TINY_BERT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37}


def _words(vocab: list[str], n: int, rng: random.Random) -> str:
    return " ".join(rng.choice(vocab) for _ in range(n))


def _context(batch_size: int):
    from zoo.benchmarks.runner import BenchContext, BenchOptions

    return BenchContext(BenchOptions(batch_size=batch_size, device="cpu"), Path(tempfile.mkdtemp()), "bench")


def _tapas(size: str, folder: Path, batch_size: int, items: int):
    """A TF retriever checkpoint of the size, converted by zoo; the tables both backends encode."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import make_tapas_checkpoint as make

    import zoo
    from zoo.benchmarks.nq_tables import Table

    dims: dict[str, Any] = SMALL_BERT if size == "small" else TINY_BERT
    spec = make.CheckpointSpec(
        **dims,
        vocab_size=1000,
        max_position_embeddings=512 if size == "small" else 64,
        down_projection_dim=256 if size == "small" else 8,
        initializer_range=0.02,
    )
    make.write_checkpoint(spec, folder / "ckpt")
    converted = zoo.convert(folder / "ckpt", format="tapas-retriever", out=folder / "converted")
    words = [w for w in make.vocab(spec)[6:] if not w.startswith("##")]
    rng = random.Random(0)
    rows, cols = (48, 5) if size == "small" else (3, 3)  # small: about 512 tokens per table
    tables = [
        Table(
            f"t{i}",
            _words(words, 4, rng),
            tuple(_words(words, 1, rng) for _ in range(cols)),
            tuple(tuple(_words(words, 2, rng) for _ in range(cols)) for _ in range(rows)),
        )
        for i in range(items)
    ]
    questions = [_words(words, 8, rng) for _ in range(items)]
    return converted, folder / "ckpt", tables, questions


def tapas_case(size: str, items: int, batch_size: int, folder: Path):
    """zoo's torch TapasDualEncoder (what `zoo bench` runs by default): the tables, then the questions."""
    from zoo.benchmarks.tapas import TorchRetriever

    converted, _, tables, questions = _tapas(size, folder, batch_size, items)
    retriever = TorchRetriever(converted, _context(batch_size))
    return lambda: (retriever.tables(tables), retriever.questions(questions))


def tapas_tf_case(size: str, items: int, batch_size: int, folder: Path):
    """The TF reference on the same checkpoint and token ids (`zoo bench --backend tf`)."""
    from converters.tapas_checkpoint import locate
    from zoo.benchmarks.tapas import TFRetriever

    _, checkpoint, tables, questions = _tapas(size, folder, batch_size, items)
    retriever = TFRetriever(locate(checkpoint), 128, batch_size)
    return lambda: (retriever.tables(tables), retriever.questions(questions))


def splade_case(size: str, items: int, batch_size: int, folder: Path):
    sys.path.insert(0, str(ROOT / "tests"))
    import splade_factory
    from transformers import DistilBertConfig, DistilBertForMaskedLM

    from zoo.benchmarks.splade import _encode
    from zoo.families.splade import load_sparse_encoder

    repo = splade_factory.write_repo(folder / "repo")
    vocab = list(splade_factory.vocabulary())
    if size == "small":
        DistilBertForMaskedLM(
            DistilBertConfig(
                vocab_size=len(vocab),
                dim=256,
                n_layers=4,
                n_heads=4,
                hidden_dim=1024,
                max_position_embeddings=512,
                pad_token_id=0,
            )
        ).save_pretrained(repo)
        (repo / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 256, "do_lower_case": False}))
    model = load_sparse_encoder(repo, device="cpu")
    rng = random.Random(0)
    docs = [_words(splade_factory.WORDS, 200 if size == "small" else 20, rng) for _ in range(items)]
    return lambda: _encode(model, docs, "document", batch_size)


def _flmr(size: str, folder: Path):
    from zoo.models.flmr import (
        FLMRConfig,
        FLMRContextEncoderTokenizer,
        FLMRModelForRetrieval,
        FLMRQueryEncoderTokenizer,
    )

    golden = ROOT / "tests" / "data" / "golden" / "flmr" / "preflmr" / "hf"
    config = json.loads((golden / "config.json").read_text())
    if size == "small":
        config["text_config"].update(SMALL_BERT, max_position_embeddings=512)
        config["vision_config"].update(
            hidden_size=384,
            num_hidden_layers=6,
            num_attention_heads=6,
            intermediate_size=1536,
            image_size=224,
            patch_size=32,
        )
        config.update(dim=128, mapping_network_prefix_length=32, transformer_mapping_cross_attention_length=32)
    (folder / "config.json").write_text(json.dumps(config))
    doc_maxlen = 512 if size == "small" else 24
    query_tok = FLMRQueryEncoderTokenizer.from_pretrained(golden / "query_tokenizer")
    context_tok = FLMRContextEncoderTokenizer.from_pretrained(golden / "context_tokenizer", doc_maxlen=doc_maxlen)
    model = FLMRModelForRetrieval(FLMRConfig.from_pretrained(folder), query_tok, context_tok).eval()
    words = [w for w in query_tok.get_vocab() if w.isalpha()]
    return model, words, int(config["vision_config"]["image_size"])


def flmr_passages_case(size: str, items: int, batch_size: int, folder: Path):
    from zoo.benchmarks.flmr import _documents

    model, words, _ = _flmr(size, folder)
    rng = random.Random(0)
    passages = [_words(words, 400 if size == "small" else 16, rng) for _ in range(items)]
    return lambda: _documents(model, passages, batch_size, "cpu")


def flmr_queries_case(size: str, items: int, batch_size: int, folder: Path):
    from zoo.benchmarks.flmr import _queries, image_processor
    from zoo.benchmarks.m2kr import M2KRQuery

    model, words, image_size = _flmr(size, folder)
    rng = random.Random(0)
    queries = [
        M2KRQuery(f"q{i}", "using the provided image obtain documents", _words(words, 8, rng), None, (), None)
        for i in range(items)
    ]
    processor = image_processor(folder, image_size)
    return lambda: _queries(model, queries, processor, folder, batch_size, "cpu")


CASES = {
    "tapas": [("tables+questions (torch)", tapas_case), ("tables+questions (TF reference)", tapas_tf_case)],
    "splade": [("documents", splade_case)],
    "flmr": [("passages", flmr_passages_case), ("image queries", flmr_queries_case)],
}


def measure(family: str, size: str, items: int, batch_size: int) -> list[dict]:
    """Runs in the child process: build the model, then time encoding `items` items (first batch included)."""
    import torch

    torch.manual_seed(0)
    out = []
    for label, case in CASES[family]:
        with tempfile.TemporaryDirectory() as tmp:
            encode = case(size, items, batch_size, Path(tmp))
            start = time.perf_counter()
            encode()
            seconds = time.perf_counter() - start
        out.append(
            {
                "family": family,
                "size": size,
                "items": label,
                "count": items,
                "batch_size": batch_size,
                "seconds": round(seconds, 3),
                "items_per_s": round(items / seconds, 2),
                "threads": torch.get_num_threads(),
            }
        )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return [{**row, "peak_rss_mb": round(peak_mb, 1)} for row in out]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    parser.add_argument("--sizes", nargs="+", choices=SIZES, default=list(SIZES))
    parser.add_argument("--items", type=int, default=0, help="items per case (default: 256 tiny, 32 small)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("FAMILY", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        family, size = args.child
        print(json.dumps(measure(family, size, args.items or (32 if size == "small" else 256), args.batch_size)))
        return 0
    rows = []
    for family in args.families:
        for size in args.sizes:
            child = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    family,
                    size,
                    "--items",
                    str(args.items),
                    "--batch-size",
                    str(args.batch_size),
                ],
                capture_output=True,
                text=True,
                check=False,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            if child.returncode != 0:
                print(child.stderr, file=sys.stderr)
                return child.returncode
            rows += json.loads(child.stdout.strip().splitlines()[-1])
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'family':7} {'size':6} {'items':32} {'count':>5} {'items/s':>9} {'peak RSS MB':>12}")
    for r in rows:
        print(
            f"{r['family']:7} {r['size']:6} {r['items']:32} {r['count']:5} {r['items_per_s']:9.2f} "
            f"{r['peak_rss_mb']:12.1f}"
        )
    for size in args.sizes:
        speed = {r["items"]: r["items_per_s"] for r in rows if r["family"] == "tapas" and r["size"] == size}
        if all(k in speed for k in SIDE_BY_SIDE):
            ratio = speed[SIDE_BY_SIDE[0]] / speed[SIDE_BY_SIDE[1]]
            print(f"tapas {size}: torch / TF reference = {ratio:.2f}x (same checkpoint, same token ids)")
    print(f"(CPU, {rows[0]['threads']} threads, batch size {args.batch_size}; peak RSS is the whole process's)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
