"""TAPAS dense table retrievers on NQ-tables: global recall@k, as the original evaluation computed it.

tapas/scripts/eval_table_retriever_utils.py: tables made unique by table id, questions
merged by id (embeddings averaged, gold ids united), exact inner-product search over all
tables (`InnerProductNearestNeighbors`, 100 neighbours), and "precision_at_k" (the paper's
recall@k) = the fraction of questions with a gold table among the first k, k in 1/5/10/15/50/100.

Two encoders: the converted torch model (`--backend zoo`) and the independent TF reference
running on the original TF checkpoint (`--backend tf`); they get the same token ids from
zoo.models.tapas.tokenization_tapas, so their rankings can be compared directly. When the retriever zip
shipped `tables.tsv` (the authors' table embeddings), a sample of tables found in the data
is re-encoded and compared with it.
"""

from __future__ import annotations

import ast
import csv
import itertools
import json
import sys
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .. import constants, manifest, provenance
from ..checks import replay
from ..checks.report import Check
from ..errors import FormatError
from . import nq_tables
from .metrics import evaluate
from .nq_tables import NQTables, Table
from .runner import BenchContext, Outcome, Section
from .store import Arrays

BENCHMARK = "NQ-tables"
CUTOFFS = (1, 5, 10, 15, 50, 100)  # the original's precision_at_k list
TABLES_TSV = "tables.tsv"
TABLES_TSV_MIN_COSINE = 0.999  # the authors' embeddings came from other hardware and preprocessing code
DEFAULT_MAX_QUERY_LENGTH = 128


class TableRetriever(Protocol):
    text: Any  # the TapasTextEncoder both encoders share

    def questions(self, texts: Sequence[str]) -> np.ndarray: ...

    def tables(self, tables: Sequence[Table]) -> np.ndarray: ...


def _batches(items: Sequence, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


class TorchRetriever:
    """The converted TapasDualEncoder, on `context`'s device and batch size (or the ones given)."""

    def __init__(
        self, path: Path, context: BenchContext | None = None, *, device: Any = "cpu", batch_size: int = 32
    ) -> None:
        from zoo.models.tapas import TapasDualEncoder, TapasTextEncoder

        if context is not None:
            device, batch_size = context.device, context.options.batch_size
        model = TapasDualEncoder.from_pretrained(str(path))
        self.model = model.to(device).eval()
        self.text = TapasTextEncoder.from_pretrained(
            path, max_length=min(512, self.model.config.max_position_embeddings)
        )
        self.device, self.batch_size = device, batch_size

    def questions(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        out = []
        with torch.no_grad():
            for batch in _batches(list(texts), self.batch_size):
                ids = self.text.questions(batch, max_length=self.model.config.max_query_length)
                out.append(
                    self.model.encode_questions(*(ids[k].to(self.device) for k in ("input_ids", "attention_mask")))
                )
        return torch.cat(out).float().cpu().numpy()

    def tables(self, tables: Sequence[Table]) -> np.ndarray:
        import torch

        out = []
        with torch.no_grad():
            for batch in _batches(list(tables), self.batch_size):
                ids = self.text.tables([t.frame() for t in batch], [t.title for t in batch])
                out.append(
                    self.model.encode_tables(
                        *(ids[k].to(self.device) for k in ("input_ids", "attention_mask", "token_type_ids"))
                    )
                )
        return torch.cat(out).float().cpu().numpy()


class TFRetriever:
    """zoo.reference.tapas_tf on the original checkpoint, fed the same token ids."""

    def __init__(self, checkpoint, max_query_length: int, batch_size: int) -> None:
        from zoo.models.tapas import TapasTextEncoder
        from zoo.reference.tapas_tf import TapasTFReference

        if checkpoint.vocab is None:
            raise FormatError(f"{checkpoint.prefix.parent}: no vocab.txt beside the TF checkpoint")
        config = json.loads(checkpoint.config.read_text())
        self.reference = TapasTFReference(
            checkpoint.prefix, checkpoint.config, reset_position_index_per_cell=False, keep_weights=True
        )
        self.text = TapasTextEncoder.from_pretrained(
            checkpoint.vocab.parent, max_length=min(512, int(config["max_position_embeddings"]))
        )
        self.max_query_length, self.batch_size = max_query_length, batch_size

    def _run(self, questions: dict, tables: dict) -> dict[str, np.ndarray]:
        return self.reference.dual_encoder(
            questions["input_ids"].numpy(),
            questions["attention_mask"].numpy(),
            tables["input_ids"].numpy(),
            tables["attention_mask"].numpy(),
            tables["token_type_ids"].numpy(),
            max_query_length=self.max_query_length,
        )

    def _stub(self) -> tuple[dict, dict]:
        """A one-token question and table: dual_encoder runs both towers, one of them on this."""
        import torch

        cls = self.text.tokenizer.cls_token_id
        ids, mask = torch.tensor([[cls]]), torch.tensor([[1]])
        return {"input_ids": ids, "attention_mask": mask}, {
            "input_ids": ids,
            "attention_mask": mask,
            "token_type_ids": torch.zeros((1, 1, 7), dtype=torch.long),
        }

    def questions(self, texts: Sequence[str]) -> np.ndarray:
        _, table = self._stub()
        return np.concatenate(
            [
                self._run(self.text.questions(b, max_length=self.max_query_length), table)["query_rep"]
                for b in _batches(list(texts), self.batch_size)
            ]
        )

    def tables(self, tables: Sequence[Table]) -> np.ndarray:
        question, _ = self._stub()
        return np.concatenate(
            [
                self._run(question, self.text.tables([t.frame() for t in b], [t.title for t in b]))["table_rep"]
                for b in _batches(list(tables), self.batch_size)
            ]
        )


@dataclass(frozen=True)
class TableEncoder:
    """The converted model's table tower as a recipe (runner.CorpusEncoder): Ray workers build it."""

    path: Path
    batch_size: int

    def load(self, device: Any) -> Callable[[Sequence[Table]], Arrays]:
        return _table_arrays(TorchRetriever(self.path, device=device, batch_size=self.batch_size))


def _table_arrays(retriever: TableRetriever) -> Callable[[Sequence[Table]], Arrays]:
    return lambda tables: {"embeddings": retriever.tables(tables)}


def _source_path(path: Path) -> Path | None:
    """The original TF checkpoint: the model dir itself, or the source a converted dir was made from (if here)."""
    if (path / constants.MANIFEST_FILENAME).is_file():
        data = manifest.read(path)
        if data.get("format") != "tapas-retriever":
            raise FormatError(f"{path}: converted with {data.get('format')!r}, not a TAPAS retriever")
        return replay.source_path(data)
    return path


def run(path: Path, data: Path, context: BenchContext) -> Outcome:
    dataset = nq_tables.load(data, context.options.split)
    located = None
    if context.options.backend == "tf":
        from converters.tapas_checkpoint import resolve

        source = _source_path(path)
        if source is None:
            record = manifest.read(path).get("source")
            raise FormatError(
                f"{path}: --backend tf needs the TF checkpoint it was converted from, which is not on this "
                f"machine ({provenance.describe(record)})"
            )
        located = resolve(source)
        config = json.loads((path / "config.json").read_text()) if (path / "config.json").is_file() else {}
        retriever: TableRetriever = TFRetriever(
            located.files, int(config.get("max_query_length", DEFAULT_MAX_QUERY_LENGTH)), context.options.batch_size
        )
    elif not (path / "config.json").is_file():
        raise FormatError(
            f"{path}: a TF checkpoint, not a converted model: pass --backend tf, or run zoo convert first"
        )
    else:
        retriever = TorchRetriever(path, context)
    encoder = None if located is not None else TableEncoder(path, context.options.batch_size)
    try:
        return _evaluate(dataset, retriever, encoder, path, context)
    finally:
        if located is not None:
            located.close()


def encodable(tables: Sequence[Table], text: Any) -> tuple[list[Table], list[Table]]:
    """(kept, rejected): the original pipeline writes no example for a table it cannot encode
    (no data rows, a ragged table, a title that cannot fit), so such a table is never retrievable."""
    from zoo.models.tapas import TapasInputError

    kept, rejected = [], []
    for table in tables:
        try:
            text.encode_table(table, table.title)  # the rows as given: a ragged table is refused, not padded
        except TapasInputError:
            rejected.append(table)
        else:
            kept.append(table)
    return kept, rejected


def _evaluate(
    dataset: NQTables, retriever: TableRetriever, encoder: TableEncoder | None, path: Path, context: BenchContext
) -> Outcome:
    tables, rejected = encodable(dataset.tables, retriever.text)
    notes = (
        [
            f"{len(rejected)} table(s) the original pipeline writes no example for were left out of the index "
            f"(e.g. {rejected[0].table_id})"
        ]
        if rejected
        else []
    )
    identity = [(t.table_id, t.title, t.columns, t.rows) for t in tables]
    store = context.store("nq_tables", len(tables), identity)
    context.fill(store, tables, encoder, _table_arrays(retriever))
    texts = [text for q in dataset.questions for text in q.texts]
    encoded = retriever.questions(texts)
    bounds = np.cumsum([0] + [len(q.texts) for q in dataset.questions])
    queries = np.stack([encoded[a:b].mean(axis=0) for a, b in itertools.pairwise(bounds)])
    query_ids = [q.id for q in dataset.questions]
    rankings = context.search(store, "dense", queries, query_ids, [t.table_id for t in tables], max(CUTOFFS))
    qrels = {q.id: dict.fromkeys(q.table_ids, 1) for q in dataset.questions}
    scores = evaluate(rankings, qrels, [f"accuracy@{k}" for k in CUTOFFS])
    section = Section(
        BENCHMARK,
        {f"recall@{k}": scores[f"accuracy@{k}"] for k in CUTOFFS},
        len(query_ids),
        len(tables),
        {"run": str(context.run_file(store)), "qrels": str(context.write_qrels(store, qrels))},
    )
    tsv = context.options.tables_tsv or _find_tables_tsv(path, context.work)
    if tsv is None:
        notes.append("no tables.tsv shipped with this checkpoint: table embeddings not compared")
        return Outcome([section], notes=notes)
    check = reproduce_tables_tsv(Path(tsv), tables, retriever, context.options.tables_sample)
    return Outcome([section], checks=[check], notes=notes)


# --- tables.tsv ---------------------------------------------------------------------------------


def _find_tables_tsv(path: Path, work: Path) -> Path | None:
    """tables.tsv in the model dir, or in the checkpoint folder or zip it was converted from."""
    source = _source_path(path)
    for folder in (path, source):
        if folder is not None and folder.is_dir() and (found := sorted(folder.rglob(TABLES_TSV))):
            return found[0]
    if source is not None and source.is_file() and zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            members = [m for m in archive.namelist() if m.rsplit("/", 1)[-1] == TABLES_TSV]
            if members:
                target = work / TABLES_TSV
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(members[0]) as src, open(target, "wb") as dst:
                    dst.write(src.read())
                return target
    return None


def reproduce_tables_tsv(tsv: Path, tables: Sequence[Table], retriever: TableRetriever, sample: int) -> Check:
    """Re-encode the first `sample` tables of tables.tsv that the data holds; compare the vectors."""
    by_id = {t.table_id: t for t in tables}
    wanted: dict[str, np.ndarray] = {}
    csv.field_size_limit(sys.maxsize)
    with open(tsv, encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            if "table_id" not in row or "table_rep" not in row:
                raise FormatError(f"{tsv}: expected columns table_id and table_rep")
            if row["table_id"] in by_id and row["table_id"] not in wanted:
                wanted[row["table_id"]] = np.asarray(ast.literal_eval(row["table_rep"]), dtype=np.float64)
                if len(wanted) >= sample:
                    break
    if not wanted:
        return Check(
            "tables.tsv",
            ok=False,
            value="no shared tables",
            tolerance=TABLES_TSV_MIN_COSINE,
            detail=f"none of the tables in {tsv} is in the benchmark data",
        )
    want = np.stack(list(wanted.values()))
    got = retriever.tables([by_id[t] for t in wanted]).astype(np.float64)
    if got.shape != want.shape:
        return Check(
            "tables.tsv", ok=False, value=f"shape {got.shape} vs {want.shape}", tolerance=TABLES_TSV_MIN_COSINE
        )
    cosine = (got * want).sum(1) / np.maximum(np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1), 1e-30)
    max_abs = float(np.abs(got - want).max())
    return Check(
        "tables.tsv",
        ok=bool(cosine.min() >= TABLES_TSV_MIN_COSINE),
        value=round(float(cosine.min()), 6),
        tolerance=TABLES_TSV_MIN_COSINE,
        detail=f"{len(wanted)} tables re-encoded vs {tsv.name}: min cosine, max abs diff {max_abs:.2e}",
        data={"tables": len(wanted), "max_abs_diff": max_abs, "mean_cosine": float(cosine.mean())},
    )
