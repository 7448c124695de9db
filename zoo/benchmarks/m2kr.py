"""M2KR (BByrneLab/multi_task_multi_modal_knowledge_retrieval_benchmark_M2KR) laid out on disk.

The Hub repo's layout, one folder pair per dataset DS (WIT, IGLUE, KVQA, OVEN, LLaVA,
Infoseek, EVQA, OKVQA, MSMARCO, ...):
- `<DS>_data/<split>-*.parquet` (or `<split>.parquet`, `<split>.jsonl`): queries with
  question_id, instruction, question, img_path, pos_item_ids, answers (answers only where the
  dataset has them: they enable Pseudo-Recall);
- `<DS>_passages/<split>_passages-*.parquet` (or `.parquet`, `.jsonl`): passage_id, passage_content.
Images are files on disk: `img_path` is resolved against the images root (as the authors'
example joins it to --image_root_dir); a query without img_path gets the authors' stand-in, a
black 336x336 image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import FormatError
from .jsonl import read_records, require

DATA_SUFFIX, PASSAGES_SUFFIX = "_data", "_passages"


@dataclass(frozen=True)
class M2KRQuery:
    id: str
    instruction: str
    question: str
    img_path: str | None
    pos_item_ids: tuple[str, ...]
    answers: tuple[str, ...] | None  # None: the dataset has no answers (no Pseudo-Recall)

    @property
    def text(self) -> str:
        """The query string the authors' example builds: "<instruction>: <question>"."""
        instruction = self.instruction.strip()
        if not instruction.endswith(":"):
            instruction += ":"
        return f"{instruction}  {self.question} "  # " ".join([instruction, "", question, ""]) as the authors wrote it


@dataclass(frozen=True)
class M2KRSet:
    name: str
    queries: list[M2KRQuery]
    passage_ids: list[str]
    passage_texts: list[str]

    @property
    def has_answers(self) -> bool:
        return all(q.answers is not None for q in self.queries)


def find_sets(path: Path) -> list[str]:
    """Dataset names DS with both <DS>_data/ and <DS>_passages/ under `path`."""
    names = sorted(p.name[: -len(DATA_SUFFIX)] for p in path.glob(f"*{DATA_SUFFIX}") if p.is_dir())
    names = [n for n in names if (path / f"{n}{PASSAGES_SUFFIX}").is_dir()]
    if not names:
        raise FormatError(f"{path}: no M2KR dataset (folders <DS>_data/ and <DS>_passages/)")
    return names


def _files(folder: Path, stem: str) -> list[Path]:
    for pattern in (f"{stem}-*.parquet", f"{stem}.parquet", f"{stem}.jsonl"):
        if found := sorted(folder.glob(pattern)):
            return found
    available = sorted({p.name.split("-")[0].split(".")[0] for p in folder.iterdir() if p.is_file()})
    raise FormatError(
        f"{folder}: no {stem} file (.parquet shards or .jsonl); found: {', '.join(available) or 'nothing'}"
    )


def _rows(folder: Path, stem: str) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{path}:{i}", row) for path in _files(folder, stem) for i, row in enumerate(read_records(path), start=1)]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def load(path: Path, name: str, split: str) -> M2KRSet:
    queries = []
    for where, row in _rows(path / f"{name}{DATA_SUFFIX}", split):
        answers = row.get("answers")
        img = row.get("img_path")
        pos = require(row, "pos_item_ids", where)
        queries.append(
            M2KRQuery(
                id=str(require(row, "question_id", where)),
                instruction=str(require(row, "instruction", where)),
                question=str(require(row, "question", where)),
                img_path=None if _missing(img) else str(img),
                pos_item_ids=tuple(str(p) for p in ([pos] if isinstance(pos, str) else pos or ())),
                answers=None if answers is None or _missing(answers) else tuple(map(str, answers)),
            )
        )
    passage_ids, passage_texts = [], []
    for where, row in _rows(path / f"{name}{PASSAGES_SUFFIX}", f"{split}{PASSAGES_SUFFIX}"):
        passage_ids.append(str(require(row, "passage_id", where)))
        passage_texts.append(str(require(row, "passage_content", where)))
    if not queries or not passage_ids:
        raise FormatError(f"{path}: {name} {split} has {len(queries)} queries and {len(passage_ids)} passages")
    return M2KRSet(name, queries, passage_ids, passage_texts)
