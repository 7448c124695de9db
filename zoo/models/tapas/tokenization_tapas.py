"""Strings and tables -> the id tensors TapasDualEncoder and TapasReader take, as the original made them.

Written from google-research/tapas (commit 569a3c3): the retriever's tables follow
`retrieval/tf_example_utils.ToRetrievalTensorflowExample.convert` after `pretrain_utils.check_table_id_fn`
and `add_numeric_values_fn`, the settings DENSE_TABLE_RETRIEVER.md uses (use_document_title,
max_column_id = max_row_id = max_seq_length, cell_trim_length -1, column names kept); word pieces
are in wordpiece_tapas, numbers and dates in number_annotation_tapas.

- Table input: `[CLS] title [SEP]` then the header row and the data rows, row by row; no final `[SEP]`.
  An empty title is `[EMPTY]`. segment_ids are 0 up to that `[SEP]` and 1 after; column_ids are
  1-based, row_ids 0 for the header; prev_label_ids and numeric_relations are 0 (the retriever
  passes no question). Empty cells (also whitespace, "-", "?", "n/a") are one `[EMPTY]` piece.
- Truncation: the largest number of tokens per cell that fits (the header counts; a word's trailing
  `##` pieces come along, so a cell can exceed that number); only when one token per cell does not
  fit, the last column goes (when there are at least as many columns as data rows) or else the last
  row, and the fit is tried again. Columns and rows start capped at max_length - 1.
- column_ranks / inv_column_ranks rank each numeric column's values over the whole table, cut rows
  included, and are written on the cells that made it into the sequence.
- Question input: `[CLS] question [SEP]` of the lower-cased, whitespace-collapsed question, cut to
  max_length from the end (a long question loses its final `[SEP]`); an empty question is
  `[CLS] [EMPTY] [SEP]`.
- A table without data rows (header only) or without columns produced no example in the original,
  and a title too long to leave room for one token per cell raised "Cannot fit table into
  sequence": both are a TapasInputError here (exit code 2 on the command line).
- Reader input (`reader_inputs`) follows the original classifier converter that NQ reader examples
  came from: `[CLS] question [SEP] title [SEP] table` (no title: `[CLS] question [SEP] table`), rows
  dropped from the end to fit (drop_rows_to_fit), too many columns is an error, and numeric_relations
  compare the question's numbers and dates with the cells (EQ 1, LT 2, GT 4, OR-ed). No example of the
  original reader pipeline was available to compare with; max_column_id and max_row_id are taken to
  be max_length, as for the retriever.

Remaining differences from the original:
- Features are padded to the longest sequence of the batch, not to max_length (the original padded
  every feature to max_seq_length); the ids and masks up to that point are the same. Example: a
  21-token table batched alone is 21 wide here, 512 wide (491 zeros) in the original's tf.Example.
- Cells are texts: a pandas cell that is None/NaN is the empty text, anything else str(value)
  (2 -> "2", 2.5 -> "2.5"); the original's cells were strings to begin with.
- Date and number parsing uses this Python's strptime, float() and Unicode tables; on a Python whose
  Unicode version differs from the one that wrote an example (3.11), a rare character can be read
  differently (e.g. a digit added in a later Unicode release).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any

import torch

from .configuration_tapas import TapasInputError
from .modeling_tapas import TOKEN_TYPES
from .number_annotation_tapas import column_ranks, consolidate_column, numeric_relations, numeric_values
from .wordpiece_tapas import CLS, PAD_ID, SEP, TapasWordPieceTokenizer, normalize_for_match

VOCAB_NAME = "vocab.txt"
NUM_TOKEN_TYPES = len(TOKEN_TYPES)
FEATURES = ("input_ids", *TOKEN_TYPES)


@dataclass(frozen=True)
class Table:
    """A table as texts: header cells and equally long data rows."""

    header: list[str]
    rows: list[list[str]]


def _cell_text(value: Any) -> str:
    """A cell as the original's string: missing (None, NaN, pandas NA) is empty, anything else str()."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "ignore")
    if isinstance(value, float) and math.isnan(value):
        return ""
    try:
        missing = bool(value != value)  # NaN-like (numpy floats, NaT)
    except (TypeError, ValueError):
        missing = True  # pandas.NA refuses bool()
    return "" if missing else str(value)


def as_table(table: Any) -> Table:
    """A pandas DataFrame (anything with .columns and .itertuples(), .rows or .values), a mapping with
    "header" (or "columns") and "rows", or a list of rows whose first row is the header.

    Pandas needs no import: a DataFrame is read through those attributes (the package stays free of it).
    """
    if hasattr(table, "columns") and not isinstance(table, Mapping):
        header = list(table.columns)
        if hasattr(table, "itertuples"):
            rows = [list(r) for r in table.itertuples(index=False, name=None)]
        elif hasattr(table, "rows"):  # e.g. zoo.benchmarks.nq_tables.Table
            rows = [list(r) for r in table.rows]
        else:
            rows = [list(r) for r in table.values]
    elif isinstance(table, Mapping):
        header = list(table.get("header", table.get("columns", ())))
        rows = [list(r) for r in table.get("rows", ())]
    elif isinstance(table, Sequence) and not isinstance(table, (str, bytes)):
        all_rows = [list(r) for r in table]
        header, rows = (all_rows[0], all_rows[1:]) if all_rows else ([], [])
    else:
        raise TapasInputError(f"cannot read a table from {type(table).__name__}: pass a DataFrame or a list of rows")
    if not header:
        raise TapasInputError("the table has no columns (the original pipeline writes no example for it)")
    if not rows:
        raise TapasInputError(
            "the table has no data rows, only a header (the original pipeline writes no example for it)"
        )
    for index, row in enumerate(rows):
        if len(row) != len(header):
            raise TapasInputError(f"row {index} has {len(row)} cells for {len(header)} columns (a ragged table)")
    return Table([_cell_text(c) for c in header], [[_cell_text(c) for c in row] for row in rows])


def _word_begins(pieces: list[str]) -> list[int]:
    """For each piece, the index of the piece its word starts at (inner `##` pieces point back)."""
    begins = []
    for index in range(len(pieces)):
        begin = index
        while begin >= 0 and pieces[begin].startswith("##"):
            begin -= 1
        begins.append(begin)
    return begins


class _Layout:
    """A tokenized table (row 0 the header) and the token cost of a region of it, kept incrementally.

    cost(n) is the original's _get_table_cost: the pieces of the region whose word starts before
    piece n of its cell. A histogram of word starts over the region gives it for every n at once.
    """

    def __init__(self, cells: list[list[list[str]]], num_columns: int, num_rows: int) -> None:
        self.cells = cells
        self.begins = [[_word_begins(cell) for cell in row] for row in cells]
        self.max_tokens = max((len(cell) for row in cells for cell in row), default=0)  # over the whole table
        self.num_columns, self.num_rows = num_columns, num_rows
        self.histogram = [0] * (self.max_tokens + 1)  # index: word start + 1 (a start of -1 is possible)
        for row in range(num_rows + 1):
            for column in range(num_columns):
                self._count(row, column, 1)

    def _count(self, row: int, column: int, sign: int) -> None:
        for begin in self.begins[row][column]:
            self.histogram[begin + 1] += sign

    def drop_last_column(self) -> None:
        self.num_columns -= 1
        for row in range(self.num_rows + 1):
            self._count(row, self.num_columns, -1)

    def drop_last_row(self) -> None:
        for column in range(self.num_columns):
            self._count(self.num_rows, column, -1)
        self.num_rows -= 1

    def max_num_tokens(self, budget: int) -> int | None:
        """The original's _get_max_num_tokens: tokens per cell that fit `budget`; None if not even one."""
        cumulative = list(accumulate(self.histogram))  # cumulative[n] = cost(n) for n <= max_tokens
        last = self.max_tokens
        # the first n whose n + 1 tokens per cell do not fit; all fit: every token of the region
        fitting = next((n for n in range(last + 1) if cumulative[min(n + 1, last)] > budget), last)
        return None if fitting == 0 < last else fitting

    def tokens(self, num_tokens: int):
        """(piece, column id, row id) of the region, row by row, pieces whose word starts before num_tokens."""
        for row in range(self.num_rows + 1):
            for column in range(self.num_columns):
                for piece, begin in zip(self.cells[row][column], self.begins[row][column], strict=True):
                    if begin < num_tokens:
                        yield piece, column + 1, row


class TapasTextEncoder:
    """Question, table and reader inputs with the original pipeline's ids; batches padded with 0."""

    def __init__(self, tokenizer: TapasWordPieceTokenizer, max_length: int = 512) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length

    @classmethod
    def from_pretrained(cls, directory: str | Path, max_length: int = 512) -> TapasTextEncoder:
        """Load the vocabulary a converted model directory carries (vocab.txt)."""
        vocab = Path(directory) / VOCAB_NAME
        if not vocab.is_file():
            raise TapasInputError(f"{vocab} not found: the converted model has no tokenizer files")
        return cls(TapasWordPieceTokenizer.from_file(vocab), max_length)

    # --- single examples (lists, unpadded) -----------------------------------------------

    def encode_question(self, question: str, max_length: int | None = None) -> list[int]:
        """`[CLS] question [SEP]` ids, cut to max_length (default: the encoder's)."""
        limit = self.max_length if max_length is None else max_length
        pieces = [CLS, *self.tokenizer.tokenize(normalize_for_match(question)), SEP]
        return self.tokenizer.convert_tokens_to_ids(pieces)[:limit]

    def encode_table(self, table: Any, title: str | None) -> dict[str, list[int]]:
        """Retriever table features (input_ids and the seven TOKEN_TYPES), unpadded."""
        parsed = as_table(table)
        title_pieces = self.tokenizer.tokenize(_cell_text(title))
        layout = self._layout(parsed, num_columns=min(len(parsed.header), self.max_length - 1))
        budget = self.max_length - (len(title_pieces) + 2)
        while (num_tokens := layout.max_num_tokens(budget)) is None:
            if layout.num_columns >= layout.num_rows:
                layout.drop_last_column()
            else:
                layout.drop_last_row()
            if layout.num_columns == 0 or layout.num_rows == 0:
                raise TapasInputError(
                    f"Cannot fit table into sequence: the title takes {len(title_pieces) + 2} of "
                    f"{self.max_length} tokens and leaves no room for one token per cell"
                )
        return self._features(title_pieces, parsed, layout, num_tokens, relations={})

    def encode_reader(self, question: str, table: Any, title: str | None) -> dict[str, list[int]]:
        """Reader features: question (and title) before the table, rows dropped from the end to fit."""
        parsed = as_table(table)
        question = normalize_for_match(question)
        text_pieces = self.tokenizer.tokenize(question)
        title = _cell_text(title)
        if title:
            text_pieces += [SEP, *self.tokenizer.tokenize(title)]
        if len(parsed.header) >= self.max_length:
            raise TapasInputError(f"Too many columns: {len(parsed.header)} for max_length {self.max_length}")
        layout = self._layout(parsed, num_columns=len(parsed.header))
        budget = self.max_length - (len(text_pieces) + 2)
        while (num_tokens := layout.max_num_tokens(budget)) is None:
            if layout.num_rows == 0:
                raise TapasInputError(
                    f"Sequence too long: the question and title take {len(text_pieces) + 2} of "
                    f"{self.max_length} tokens and leave no room for the header"
                )
            layout.drop_last_row()
        columns = [consolidate_column([row[c] for row in parsed.rows]) for c in range(len(parsed.header))]
        relations = numeric_relations(numeric_values(question), columns)
        return self._features(text_pieces, parsed, layout, num_tokens, relations, columns)

    def _layout(self, table: Table, num_columns: int) -> _Layout:
        cells = [[self.tokenizer.tokenize(t) for t in row] for row in (table.header, *table.rows)]
        return _Layout(cells, num_columns=num_columns, num_rows=min(len(table.rows), self.max_length - 1))

    def _features(
        self,
        text_pieces: list[str],
        table: Table,
        layout: _Layout,
        num_tokens: int,
        relations: dict[tuple[int, int], int],
        columns: list | None = None,
    ) -> dict[str, list[int]]:
        if columns is None:
            columns = [consolidate_column([row[c] for row in table.rows]) for c in range(len(table.header))]
        ranks = [column_ranks(column) for column in columns]
        pieces = [CLS, *text_pieces, SEP]
        out: dict[str, list[int]] = {name: [0] * len(pieces) for name in TOKEN_TYPES}
        for piece, column_id, row_id in layout.tokens(num_tokens):
            pieces.append(piece)
            rank, inverse = ranks[column_id - 1].get(row_id - 1, (0, 0))
            values = {
                "segment_ids": 1,
                "column_ids": column_id,
                "row_ids": row_id,
                "prev_label_ids": 0,
                "column_ranks": rank,
                "inv_column_ranks": inverse,
                "numeric_relations": relations.get((column_id - 1, row_id - 1), 0),
            }
            for name in TOKEN_TYPES:
                out[name].append(values[name])
        if len(pieces) > self.max_length:  # only a table without any piece can get here
            raise TapasInputError(f"Cannot fit table into sequence of {self.max_length} tokens")
        return {"input_ids": self.tokenizer.convert_tokens_to_ids(pieces), **out}

    # --- batches (tensors) ---------------------------------------------------------------

    def questions(self, questions: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
        """`[CLS] q [SEP]` per question, cut to max_length (the [SEP] may be cut, as in the original)."""
        rows = [self.encode_question(q, max_length) for q in questions]
        width = max((len(r) for r in rows), default=0)
        input_ids = torch.full((len(rows), width), PAD_ID, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, ids in enumerate(rows):
            input_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask[i, : len(ids)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def tables(self, tables: Sequence, titles: Sequence[str | None]) -> dict[str, torch.Tensor]:
        """Retriever table inputs: `[CLS] title [SEP] table`, token_type_ids [B, L, 7] in TOKEN_TYPES order."""
        if len(tables) != len(titles):
            raise TapasInputError(f"{len(tables)} tables but {len(titles)} titles")
        return self._batch([self.encode_table(t, title) for t, title in zip(tables, titles, strict=True)])

    def reader_inputs(
        self, questions: Sequence[str], tables: Sequence, titles: Sequence[str | None]
    ) -> dict[str, torch.Tensor]:
        """Reader inputs: `[CLS] question [SEP] title [SEP] table` (no title: one [SEP] fewer)."""
        if not len(questions) == len(tables) == len(titles):
            raise TapasInputError(f"{len(questions)} questions, {len(tables)} tables and {len(titles)} titles")
        encoded = [self.encode_reader(q, t, title) for q, t, title in zip(questions, tables, titles, strict=True)]
        return self._batch(encoded)

    def decode(self, ids: Sequence[int]) -> str:
        """Word pieces back to text (`##` continuations joined)."""
        return self.tokenizer.convert_tokens_to_string(self.tokenizer.convert_ids_to_tokens(list(ids)))

    @staticmethod
    def _batch(encoded: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max((len(e["input_ids"]) for e in encoded), default=0)
        input_ids = torch.full((len(encoded), width), PAD_ID, dtype=torch.long)
        attention_mask = torch.zeros((len(encoded), width), dtype=torch.long)
        token_type_ids = torch.zeros((len(encoded), width, NUM_TOKEN_TYPES), dtype=torch.long)
        for i, e in enumerate(encoded):
            n = len(e["input_ids"])
            input_ids[i, :n] = torch.tensor(e["input_ids"], dtype=torch.long)
            attention_mask[i, :n] = 1
            token_type_ids[i, :n] = torch.tensor([e[name] for name in TOKEN_TYPES], dtype=torch.long).T
        return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
