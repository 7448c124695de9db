"""zoo.benchmarks.metrics against a real peer: ir-measures (pytrec_eval / trec_eval) on random runs."""

from __future__ import annotations

import random

import pytest

from zoo.benchmarks import metrics
from zoo.errors import InputError

ir_measures = pytest.importorskip("ir_measures")

PEER = {"ndcg": "nDCG", "mrr": "RR", "map": "AP", "accuracy": "Success", "recall": "R", "precision": "P"}
MEASURES = [f"{n}@{k}" for n in PEER for k in (1, 3, 5, 10, 100)]


def _peer(measure: str):
    name, k = measure.split("@")
    return ir_measures.parse_measure(f"{PEER[name]}@{k}")


def _random_case(seed: int, ties: bool) -> tuple[dict, dict]:
    rng = random.Random(seed)
    docs = [f"d{i}" for i in range(rng.randint(5, 150))]
    qrels, run = {}, {}
    for q in range(rng.randint(1, 25)):
        qid = f"q{q}"
        judged = rng.sample(docs, rng.randint(1, min(len(docs), 12)))
        qrels[qid] = {d: rng.choice([0, 1, 1, 2, 3]) for d in judged}
        if rng.random() < 0.1:
            continue  # a judged query the system returned nothing for
        retrieved = rng.sample(docs, rng.randint(1, len(docs)))
        run[qid] = {d: (rng.randint(0, 3) if ties else rng.random()) for d in retrieved}
    return qrels, run


def _ours(qrels: dict, run: dict) -> dict[str, float]:
    rankings = {q: metrics.rank(scores) for q, scores in run.items()}
    return metrics.evaluate(rankings, qrels, MEASURES)


def _qrels(qrels: dict) -> list:
    return [ir_measures.Qrel(q, d, g) for q, grades in qrels.items() for d, g in grades.items()]


def _run(run: dict) -> list:
    return [ir_measures.ScoredDoc(q, d, s) for q, scores in run.items() for d, s in scores.items()]


@pytest.mark.parametrize("seed", range(30))
def test_identical_to_ir_measures(seed: int) -> None:
    qrels, run = _random_case(seed, ties=False)
    peer = ir_measures.calc_aggregate([_peer(m) for m in MEASURES], _qrels(qrels), _run(run))
    ours = _ours(qrels, run)
    for m in MEASURES:
        assert ours[m] == pytest.approx(peer[_peer(m)], abs=1e-12), m


@pytest.mark.parametrize("seed", range(10))
def test_ties_follow_trec_eval(seed: int) -> None:
    """With tied scores the order is trec_eval's (doc id descending): pytrec_eval agrees exactly.

    pytrec_eval has no RR@k, so reciprocal rank is compared without a cutoff (RR vs mrr@1000).
    """
    qrels, run = _random_case(100 + seed, ties=True)
    names = [m for m in MEASURES if not m.startswith("mrr")]
    peer = ir_measures.pytrec_eval.calc_aggregate(
        [_peer(m) for m in names] + [ir_measures.RR], _qrels(qrels), _run(run)
    )
    rankings = {q: metrics.rank(scores) for q, scores in run.items()}
    ours = metrics.evaluate(rankings, qrels, names + ["mrr@1000"])
    for m in names:
        assert ours[m] == pytest.approx(peer[_peer(m)], abs=1e-12), m
    assert ours["mrr@1000"] == pytest.approx(peer[ir_measures.RR], abs=1e-12)


def test_pseudo_recall_is_success_over_answer_grades() -> None:
    passages = {"p1": "Paris is the capital.", "p2": "Beijing, China", "p3": "nothing"}
    grades = metrics.pseudo_relevant(passages, [" PARIS ", "rome"])
    assert grades == {"p1": 1}
    ranking = ["p3", "p2", "p1"]
    assert metrics.success(ranking, grades, 2) == 0.0
    assert metrics.success(ranking, grades, 3) == 1.0


def test_bad_measure_names_are_input_errors() -> None:
    with pytest.raises(InputError):
        metrics.Measure.parse("ndcg")
    with pytest.raises(InputError):
        metrics.Measure.parse("foo@3")
    with pytest.raises(InputError):
        metrics.evaluate({}, {}, ["ndcg@10"])
