"""`zoo bench` for SPLADE on tiny BEIR-format sets: the numbers of sentence-transformers' own evaluator
(what the model card's NanoBEIR numbers came from) and of ir-measures, plus the NanoBEIR means."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bench_support import DATA, peer

pytest.importorskip("sentence_transformers")

BEIR = DATA / "beir"
PEER = {"accuracy": "Success", "precision": "P", "recall": "R", "mrr": "RR", "ndcg": "nDCG", "map": "AP"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    from splade_factory import write_repo

    return write_repo(tmp_path_factory.mktemp("splade") / "repo")


@pytest.fixture(scope="module")
def result(repo: Path, tmp_path_factory):
    from zoo.benchmarks import BenchOptions, run

    return run(str(repo), BEIR, BenchOptions(work=tmp_path_factory.mktemp("work"), chunk_size=2, batch_size=3))


def test_sections_and_means(result) -> None:
    names = [s.benchmark for s in result.sections]
    assert names == ["NanoBEIR MSMARCO", "NanoBEIR NFCorpus", "NanoBEIR NQ", "NanoBEIR (msmarco, nfcorpus, nq mean)"]
    parts, mean = result.sections[:3], result.sections[3]
    for metric, value in mean.metrics.items():
        assert value == pytest.approx(np.mean([p.metrics[metric] for p in parts]))
    assert result.sections[0].queries == 3 and result.sections[0].documents == 5  # empty query and doc left out


@pytest.mark.parametrize("index", range(3))
def test_equal_to_sentence_transformers_evaluator(repo: Path, result, index: int) -> None:
    from sentence_transformers.sparse_encoder.evaluation import (
        SparseInformationRetrievalEvaluator,
    )

    from zoo.benchmarks import beir
    from zoo.families.splade import load_sparse_encoder

    section = result.sections[index]
    folder = sorted(p for p in BEIR.iterdir() if p.is_dir())[index]
    data = beir.load(folder, "test")
    evaluator = SparseInformationRetrievalEvaluator(
        queries=dict(zip(data.query_ids, data.query_texts, strict=False)),
        corpus=dict(zip(data.doc_ids, data.doc_texts, strict=False)),
        relevant_docs={q: {d for d, g in grades.items() if g >= 1} for q, grades in data.qrels.items()},
        name="x",
        show_progress_bar=False,
    )
    theirs = evaluator(load_sparse_encoder(repo))
    graded = any(
        g > 1 for grades in data.qrels.values() for g in grades.values() if sum(v >= 1 for v in grades.values()) > 1
    )
    for metric, value in section.metrics.items():
        if metric == "ndcg@10" and graded:
            continue  # sentence-transformers' nDCG is binary; ours uses the grades, like trec_eval
        key = f"x_{metric}" if metric.endswith("active_dims") else f"x_dot_{metric}"
        assert value == pytest.approx(theirs[key], rel=1e-6, abs=1e-9), metric  # theirs: float32 dims


@pytest.mark.parametrize("index", range(3))
def test_identical_to_ir_measures(result, index: int) -> None:
    section = result.sections[index]
    rates = {m: v for m, v in section.metrics.items() if not m.endswith("active_dims")}
    names = [f"{PEER[m.split('@')[0]]}@{m.split('@')[1]}" for m in rates]
    got = peer(section.files, names)
    for (metric, value), name in zip(rates.items(), names, strict=False):
        assert value == pytest.approx(got[name], abs=1e-12), metric
