"""Retrieval metrics with trec_eval's conventions, so `ir-measures` / `pytrec_eval` agree exactly.

Conventions (each one is trec_eval's, and each is what the published numbers measured on
their data; where the original evaluator differs the difference is named):

- A ranking orders documents by score, highest first; equal scores go to the larger doc id
  first (trec_eval compares doc ids in descending order on ties). The original evaluators
  broke ties arbitrarily (argpartition, torch.topk), which real float scores never exercise.
- A judged document is relevant when its grade is >= 1. nDCG uses the grade as gain and
  log2(rank + 1) as discount, the ideal ranking coming from all judged grades.
- AP@k divides by the number of relevant documents R. sentence-transformers' map@k divides
  by min(k, R); the two agree whenever R <= k, which holds for every NanoBEIR query at k = 100.
- The mean runs over the queries that have judgments; a query with no retrieved documents
  scores 0 (as ir-measures fills missing queries). sentence-transformers skips queries without a
  relevant document; NanoBEIR has none such.

`success` is the metric every family calls by another name: accuracy@k (sentence-transformers),
global recall@k (TAPAS: a gold table among the top k), Recall@K (M2KR: a positive passage among
the top K) and Pseudo-Recall@K (an answer string inside one of the top K passages).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..errors import InputError

Qrels = Mapping[str, Mapping[str, int]]  # query id -> doc id -> grade
Ranking = Sequence[str]  # doc ids, best first


def rank(scores: Mapping[str, float]) -> list[str]:
    """Doc ids by score descending, ties by doc id descending (trec_eval's order)."""
    return [doc for doc, _ in sorted(scores.items(), key=lambda item: (item[1], item[0]), reverse=True)]


# --- per query ----------------------------------------------------------------------


def _relevant(grades: Mapping[str, int]) -> set[str]:
    return {doc for doc, grade in grades.items() if grade >= 1}


def success(ranking: Ranking, grades: Mapping[str, int], k: int) -> float:
    relevant = _relevant(grades)
    return float(any(doc in relevant for doc in ranking[:k]))


def precision(ranking: Ranking, grades: Mapping[str, int], k: int) -> float:
    relevant = _relevant(grades)
    return sum(doc in relevant for doc in ranking[:k]) / k


def recall(ranking: Ranking, grades: Mapping[str, int], k: int) -> float:
    relevant = _relevant(grades)
    if not relevant:
        return 0.0
    return sum(doc in relevant for doc in ranking[:k]) / len(relevant)


def reciprocal_rank(ranking: Ranking, grades: Mapping[str, int], k: int) -> float:
    relevant = _relevant(grades)
    for position, doc in enumerate(ranking[:k], start=1):
        if doc in relevant:
            return 1.0 / position
    return 0.0


def average_precision(ranking: Ranking, grades: Mapping[str, int], k: int) -> float:
    relevant = _relevant(grades)
    if not relevant:
        return 0.0
    hits, total = 0, 0.0
    for position, doc in enumerate(ranking[:k], start=1):
        if doc in relevant:
            hits += 1
            total += hits / position
    return total / len(relevant)


def ndcg(ranking: Ranking, grades: Mapping[str, int], k: int) -> float:
    def dcg(gains: Iterable[float]) -> float:
        return sum(gain / math.log2(position + 1) for position, gain in enumerate(gains, start=1))

    ideal = dcg(sorted((max(g, 0) for g in grades.values()), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    return dcg(max(grades.get(doc, 0), 0) for doc in ranking[:k]) / ideal


PerQuery = Callable[[Ranking, Mapping[str, int], int], float]

MEASURES: dict[str, PerQuery] = {
    "accuracy": success,
    "recall": recall,
    "precision": precision,
    "mrr": reciprocal_rank,
    "map": average_precision,
    "ndcg": ndcg,
}


@dataclass(frozen=True)
class Measure:
    """A metric name with its cutoff, as written in reports: `ndcg@10`."""

    name: str
    k: int

    @classmethod
    def parse(cls, text: str) -> Measure:
        match = re.fullmatch(r"([a-z_]+)@(\d+)", text)
        if not match or match.group(1) not in MEASURES or int(match.group(2)) < 1:
            raise InputError(f"unknown measure {text!r}; use NAME@K with NAME in {sorted(MEASURES)}")
        return cls(match.group(1), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.name}@{self.k}"

    def __call__(self, ranking: Ranking, grades: Mapping[str, int]) -> float:
        return MEASURES[self.name](ranking, grades, self.k)


# --- aggregate ----------------------------------------------------------------------


def evaluate(rankings: Mapping[str, Ranking], qrels: Qrels, measures: Sequence[str]) -> dict[str, float]:
    """Mean of each measure over the judged queries (a query missing from `rankings` scores 0)."""
    parsed = [Measure.parse(m) for m in measures]
    queries = [q for q, grades in qrels.items() if grades]
    if not queries:
        raise InputError("no judged queries to evaluate")
    return {str(m): sum(m(rankings.get(q, ()), qrels[q]) for q in queries) / len(queries) for m in parsed}


NOTHING_RELEVANT = "zoo:nothing-relevant"  # a doc id no corpus uses


def judged(grades: Mapping[str, int]) -> dict[str, int]:
    """Grades that keep a query in the mean even when nothing is relevant to it.

    M2KR averages over every query; a query without positives (or, for Pseudo-Recall, without
    an answer in any retrieved passage) scores 0. A placeholder non-relevant judgment keeps it
    judged, here and in any trec_eval-compatible tool reading the written qrels.
    """
    return dict(grades) if grades else {NOTHING_RELEVANT: 0}


def pseudo_relevant(passages: Mapping[str, str], answers: Sequence[str]) -> dict[str, int]:
    """Grades for M2KR's Pseudo-Recall: a passage counts when an answer occurs in it.

    As the authors' evaluation does: each answer stripped and lower-cased, searched as a
    substring of the lower-cased passage text. Pass the retrieved passages only (the metric
    looks at the top K), not the whole corpus.
    """
    needles = [a.strip().lower() for a in answers]
    return {doc: 1 for doc, text in passages.items() if any(n in text.lower() for n in needles)}
