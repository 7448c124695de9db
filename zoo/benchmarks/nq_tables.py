"""NQ-tables in zoo's JSONL form (what scripts/convert_nq_tables.py writes from the released TF records).

A directory with
- `tables.jsonl`: one table per line,
  {"table_id": str, "document_title": str, "columns": [str, ...], "rows": [[str, ...], ...]};
  the retrieval corpus (the released tables/tables.tfrecord).
- `<split>.jsonl` (test, dev or train): one question per line,
  {"id": str, "question": str, "table_ids": [str, ...]} (other fields, e.g. answers, are ignored);
  `table_ids` are the gold tables (the released interaction's table id).

Duplicates are resolved as the original evaluation (tapas/scripts/eval_table_retriever_utils.py)
did: tables are made unique by table id (first position, last content, as a dict keeps them);
questions with one id are merged, their gold ids united and their embeddings averaged.
Every gold id must be in the corpus (the original raised otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import FormatError
from .jsonl import read_jsonl, require

TABLES_NAME = "tables.jsonl"


@dataclass(frozen=True)
class Table:
    table_id: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def frame(self):
        """The table as a pandas DataFrame of strings (the text encoder's input)."""
        import pandas as pd

        width = len(self.columns)
        return pd.DataFrame([list(r[:width]) + [""] * (width - len(r)) for r in self.rows], columns=list(self.columns))


@dataclass(frozen=True)
class Question:
    id: str
    texts: tuple[str, ...]  # one per occurrence in the file; their embeddings are averaged
    table_ids: tuple[str, ...]


@dataclass(frozen=True)
class NQTables:
    tables: list[Table]
    questions: list[Question]


def is_nq_tables_dir(path: Path) -> bool:
    return (path / TABLES_NAME).is_file()


def load(path: Path, split: str) -> NQTables:
    tables = _tables(path / TABLES_NAME)
    questions_file = path / f"{split}.jsonl"
    if not questions_file.is_file():
        available = sorted(p.stem for p in path.glob("*.jsonl") if p.name != TABLES_NAME)
        raise FormatError(
            f"{questions_file}: no questions for split {split!r} (available: {', '.join(available) or 'none'})"
        )
    questions = _questions(questions_file)
    known = {t.table_id for t in tables}
    for q in questions:
        if missing := [t for t in q.table_ids if t not in known]:
            raise FormatError(
                f"{questions_file}: question {q.id!r} has gold table {missing[0]!r}, which is not in {TABLES_NAME}"
            )
    return NQTables(tables, questions)


def _tables(path: Path) -> list[Table]:
    unique: dict[str, Table] = {}
    for number, row in enumerate(read_jsonl(path), start=1):
        where = f"{path}:{number}"
        columns = require(row, "columns", where)
        rows = require(row, "rows", where)
        if not isinstance(columns, list) or not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise FormatError(f"{where}: columns must be a list and rows a list of lists")
        table = Table(
            str(require(row, "table_id", where)),
            str(row.get("document_title") or ""),
            tuple(map(str, columns)),
            tuple(tuple(map(str, r)) for r in rows),
        )
        unique[table.table_id] = table
    if not unique:
        raise FormatError(f"{path}: no tables")
    return list(unique.values())


def _questions(path: Path) -> list[Question]:
    texts: dict[str, list[str]] = {}
    gold: dict[str, set[str]] = {}
    for number, row in enumerate(read_jsonl(path), start=1):
        where = f"{path}:{number}"
        qid = str(require(row, "id", where))
        table_ids = require(row, "table_ids", where)
        if not isinstance(table_ids, list) or not table_ids:
            raise FormatError(f"{where}: table_ids must be a non-empty list")
        texts.setdefault(qid, []).append(str(require(row, "question", where)))
        gold.setdefault(qid, set()).update(map(str, table_ids))
    if not texts:
        raise FormatError(f"{path}: no questions")
    return [Question(qid, tuple(texts[qid]), tuple(sorted(gold[qid]))) for qid in texts]
