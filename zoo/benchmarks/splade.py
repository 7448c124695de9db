"""SPLADE sparse encoders on BEIR-format data: the NanoBEIR metrics of the model card.

As sentence-transformers' SparseNanoBEIREvaluator measured them: queries through
`encode_query`, documents through `encode_document` (the model's max_seq_length), dot-product
scores over the whole corpus, cutoffs accuracy@1/3/5/10, precision@ and recall@1/3/5/10,
mrr@10, ndcg@10, map@100, and the mean number of non-zero dimensions of query and corpus
vectors. The 13-dataset mean (and the msmarco/nfcorpus/nq mean) is the plain mean of the
per-dataset numbers, reported when all its datasets are in the data.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import beir
from .metrics import evaluate
from .runner import BenchContext, Outcome, Section
from .store import Arrays

MEASURES = [
    *(f"accuracy@{k}" for k in (1, 3, 5, 10)),
    *(f"precision@{k}" for k in (1, 3, 5, 10)),
    *(f"recall@{k}" for k in (1, 3, 5, 10)),
    "mrr@10",
    "ndcg@10",
    "map@100",
]
TOP_K = 100
NANOBEIR = (
    "MSMARCO",
    "NFCorpus",
    "NQ",
    "ClimateFEVER",
    "DBPedia",
    "FEVER",
    "FiQA2018",
    "HotpotQA",
    "QuoraRetrieval",
    "SCIDOCS",
    "ArguAna",
    "SciFact",
    "Touche2020",
)
ALIASES = {"fiqa": "FiQA2018", "quora": "QuoraRetrieval", "webistouche2020": "Touche2020", "dbpediaentity": "DBPedia"}
MEANS = {"NanoBEIR (13-dataset mean)": NANOBEIR, "NanoBEIR (msmarco, nfcorpus, nq mean)": ("MSMARCO", "NFCorpus", "NQ")}


def nanobeir_name(folder: str) -> str | None:
    """NanoBEIR dataset name of a folder (NanoMSMARCO, msmarco, nano_fiqa, ...), or None."""
    key = re.sub(r"[^a-z0-9]", "", folder.lower()).removeprefix("nano")
    names = {n.lower(): n for n in NANOBEIR}
    return names.get(key) or ALIASES.get(key)


def _sparse(embeddings) -> Arrays:
    """A batch of sentence-transformers sparse vectors (torch COO) as CSR arrays."""
    csr = embeddings.coalesce().to_sparse_csr().cpu()
    return {
        "indptr": csr.crow_indices().numpy().astype(np.int64),
        "indices": csr.col_indices().numpy().astype(np.int32),
        "values": csr.values().float().numpy(),
        "shape": np.array(csr.shape, dtype=np.int64),
    }


def _encode(model, texts: Sequence[str], kind: str, batch_size: int) -> Arrays:
    encode = model.encode_query if kind == "query" else model.encode_document
    return _sparse(encode(list(texts), batch_size=batch_size, convert_to_sparse_tensor=True, show_progress_bar=False))


def _encode_documents(model: Any, batch_size: int, texts: Sequence[str]) -> Arrays:
    return _encode(model, texts, "document", batch_size)


@dataclass(frozen=True)
class DocumentEncoder:
    """`encode_document` of the SparseEncoder as a recipe (runner.CorpusEncoder): Ray workers build it."""

    path: Path
    batch_size: int

    def load(self, device: Any) -> Callable[[Sequence[str]], Arrays]:
        return functools.partial(_encode_documents, _load(self.path, device), self.batch_size)


def _load(path: Path, device: Any) -> Any:
    from zoo.families.splade import load_sparse_encoder

    return load_sparse_encoder(path, device=str(device))


def run(path: Path, data: Path, context: BenchContext) -> Outcome:
    model = _load(path, context.device)
    sections, batch = [], context.options.batch_size
    encoder = DocumentEncoder(path, batch)
    sets = []
    for folder in beir.find_sets(data):
        dataset = beir.load(folder, context.options.split)
        store = context.store(folder.name, len(dataset.doc_ids), dataset.doc_ids, dataset.doc_texts)
        sets.append((folder, dataset, store))
    jobs = [(store, dataset.doc_texts) for _, dataset, store in sets]
    context.fill_all(jobs, encoder, functools.partial(_encode_documents, model, batch))  # every corpus, then search
    for folder, dataset, store in sets:
        name = nanobeir_name(folder.name)
        queries = _encode(model, dataset.query_texts, "query", batch)
        rankings = context.search(store, "sparse", queries, dataset.query_ids, dataset.doc_ids, TOP_K)
        asked = set(dataset.query_ids)
        qrels = {q: grades for q, grades in dataset.qrels.items() if q in asked}
        metrics = evaluate(rankings, qrels, MEASURES)
        metrics["query_active_dims"] = float(np.diff(queries["indptr"]).mean())
        metrics["corpus_active_dims"] = float(np.concatenate([np.diff(a["indptr"]) for _, a in store]).mean())
        sections.append(
            Section(
                f"NanoBEIR {name}" if name else f"BEIR {folder.name}",
                metrics,
                len(qrels),
                len(dataset.doc_ids),
                {"run": str(context.run_file(store)), "qrels": str(context.write_qrels(store, qrels))},
            )
        )
    return Outcome(sections + _means(sections))


def _means(sections: Sequence[Section]) -> list[Section]:
    by_name = {s.benchmark.removeprefix("NanoBEIR "): s for s in sections if s.benchmark.startswith("NanoBEIR ")}
    out = []
    for label, members in MEANS.items():
        if all(m in by_name for m in members):
            parts = [by_name[m] for m in members]
            metrics = {k: float(np.mean([p.metrics[k] for p in parts])) for k in parts[0].metrics}
            out.append(Section(label, metrics, sum(p.queries for p in parts), sum(p.documents for p in parts)))
    return out
