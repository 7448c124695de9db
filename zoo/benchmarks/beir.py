"""BEIR-format datasets: corpus.jsonl, queries.jsonl and qrels/<split>.tsv in one directory.

corpus.jsonl: {"_id", "title"?, "text"}; queries.jsonl: {"_id", "text"}; qrels/<split>.tsv:
tab-separated query-id, corpus-id, score, with a header line. A document's text is
"title text" when it has a title (BEIR's convention), else its text. Empty documents and
queries are left out, as sentence-transformers' NanoBEIR loader does.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ..errors import FormatError
from .jsonl import read_jsonl, require


@dataclass(frozen=True)
class BeirSet:
    name: str
    doc_ids: list[str]
    doc_texts: list[str]
    query_ids: list[str]
    query_texts: list[str]
    qrels: dict[str, dict[str, int]]  # query id -> doc id -> grade


def is_beir_dir(path: Path) -> bool:
    return (path / "corpus.jsonl").is_file() and (path / "queries.jsonl").is_file()


def find_sets(path: Path) -> list[Path]:
    """`path` itself when it is a BEIR directory, else its BEIR subdirectories (sorted)."""
    if is_beir_dir(path):
        return [path]
    found = sorted(p for p in path.iterdir() if p.is_dir() and is_beir_dir(p)) if path.is_dir() else []
    if not found:
        raise FormatError(f"{path}: no BEIR dataset (a folder with corpus.jsonl, queries.jsonl and qrels/)")
    return found


def load(path: Path, split: str) -> BeirSet:
    corpus = path / "corpus.jsonl"
    doc_ids, doc_texts = [], []
    for i, row in enumerate(read_jsonl(corpus), start=1):
        text = str(require(row, "text", f"{corpus}:{i}"))
        title = str(row.get("title") or "")
        if text or title:
            doc_ids.append(str(require(row, "_id", f"{corpus}:{i}")))
            doc_texts.append(f"{title} {text}".strip() if title else text)
    queries = path / "queries.jsonl"
    query_rows = [
        (str(require(r, "_id", f"{queries}:{i}")), str(require(r, "text", f"{queries}:{i}")))
        for i, r in enumerate(read_jsonl(queries), start=1)
    ]
    query_rows = [(q, t) for q, t in query_rows if t]
    if len(set(doc_ids)) != len(doc_ids):
        raise FormatError(f"{corpus}: duplicate _id values")
    return BeirSet(
        path.name,
        doc_ids,
        doc_texts,
        [q for q, _ in query_rows],
        [t for _, t in query_rows],
        read_qrels(path / "qrels" / f"{split}.tsv"),
    )


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    if not path.is_file():
        available = sorted(p.stem for p in path.parent.glob("*.tsv"))
        raise FormatError(f"{path}: no qrels for this split (available: {', '.join(available) or 'none'})")
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8", newline="") as fh:
        for number, row in enumerate(csv.reader(fh, delimiter="\t"), start=1):
            if not row or (number == 1 and not _is_int(row[-1])):
                continue  # blank line or the header
            if len(row) != 3 or not _is_int(row[2]):
                raise FormatError(f"{path}:{number}: expected query-id, corpus-id, integer score")
            qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    return qrels


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True
