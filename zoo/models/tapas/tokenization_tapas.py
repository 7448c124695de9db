"""Strings and pandas tables -> the id tensors TapasDualEncoder and TapasReader take.

Built on transformers' TapasTokenizer, a port of the original tf_example_utils (same word
pieces, `[EMPTY]` for empty cells, 1-based column ids, header row 0, per-cell token trimming,
column ranks). Where it differs from the original pipeline, the original is followed or the
difference is stated here:

- Questions for the retriever are `[CLS] q [SEP]` cut to max_query_length with all seven
  token types zero, as the original model_fn did; TapasTokenizer would add an empty table.
- A table for the retriever is `[CLS] title [SEP] table`: the title takes the question's
  place. Numeric relations are then computed against numbers in the title, and the
  numeric annotation (dates, numbers) is transformers' re-implementation of the original
  number_annotation_utils; these two features can differ from the original on tables whose
  numbers the two parsers read differently.
- A reader input is `[CLS] question [SEP] title [SEP] table` (the original's
  use_document_title layout), or `[CLS] question [SEP] table` without a title.
- Rows that do not fit max_length are dropped from the end (the original's drop_rows_to_fit).
- transformers 5's TapasTokenizer drops empty cells (its tokenize("") returns nothing) where
  the original emits `[EMPTY]`; blank cells and headers are passed as "n/a", which both
  tokenizers turn into `[EMPTY]`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import TapasTokenizer

from .configuration_tapas import TapasInputError

VOCAB_NAME = "vocab.txt"
NUM_TOKEN_TYPES = 7
EMPTY_CELL = "n/a"  # a text both tokenizers map to [EMPTY]


class TapasTextEncoder:
    """Pads and batches TapasTokenizer output; one tokenizer for questions, tables and readers."""

    def __init__(self, tokenizer: TapasTokenizer, max_length: int = 512) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length

    @classmethod
    def from_pretrained(cls, directory: str | Path, max_length: int = 512) -> TapasTextEncoder:
        """Load the vocabulary a converted model directory carries (vocab.txt)."""
        vocab = Path(directory) / VOCAB_NAME
        if not vocab.is_file():
            raise TapasInputError(f"{vocab} not found: the converted model has no tokenizer files")
        # TapasTokenizer still takes `vocab_file=`; a wrong keyword would silently give all-[UNK].
        return cls(TapasTokenizer(vocab_file=str(vocab), model_max_length=max_length), max_length)

    def questions(self, questions: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
        """`[CLS] q [SEP]`, cut to max_length (the [SEP] may be cut, as in the original)."""
        tok = self.tokenizer
        rows = [
            ([tok.cls_token_id] + tok.convert_tokens_to_ids(tok.tokenize(q)) + [tok.sep_token_id])[:max_length]
            for q in questions
        ]
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, ids in enumerate(rows):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            attention_mask[i, : len(ids)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def tables(self, tables: Sequence, titles: Sequence[str]) -> dict[str, torch.Tensor]:
        """Retriever table inputs: `[CLS] title [SEP] table`, token_type_ids [B, L, 7]."""
        if len(tables) != len(titles):
            raise TapasInputError(f"{len(tables)} tables but {len(titles)} titles")
        return self._batch([self._encode(table, title) for table, title in zip(tables, titles, strict=False)])

    def reader_inputs(
        self, questions: Sequence[str], tables: Sequence, titles: Sequence[str | None]
    ) -> dict[str, torch.Tensor]:
        """Reader inputs: `[CLS] question [SEP] title [SEP] table` (no title: one [SEP] fewer)."""
        sep = self.tokenizer.sep_token
        texts = [q if not title else f"{q} {sep} {title}" for q, title in zip(questions, titles, strict=False)]
        return self._batch([self._encode(table, text) for table, text in zip(tables, texts, strict=False)])

    def decode(self, ids: Sequence[int]) -> str:
        """Word pieces back to text (`##` continuations joined)."""
        return self.tokenizer.convert_tokens_to_string(self.tokenizer.convert_ids_to_tokens(list(ids)))

    def _encode(self, table, text: str) -> dict[str, list]:
        frame = table.astype(str).map(_blank_to_empty)  # TapasTokenizer requires string cells
        frame.columns = [_blank_to_empty(str(c)) for c in frame.columns]
        return self.tokenizer(
            table=frame,
            queries=text,
            truncation="drop_rows_to_fit",
            max_length=self.max_length,
            padding=False,
        )

    def _batch(self, encoded: list[dict[str, list]]) -> dict[str, torch.Tensor]:
        width = max(len(e["input_ids"]) for e in encoded)
        input_ids = torch.full((len(encoded), width), self.tokenizer.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(encoded), width), dtype=torch.long)
        token_type_ids = torch.zeros((len(encoded), width, NUM_TOKEN_TYPES), dtype=torch.long)
        for i, e in enumerate(encoded):
            n = len(e["input_ids"])
            input_ids[i, :n] = torch.tensor(e["input_ids"])
            attention_mask[i, :n] = torch.tensor(e["attention_mask"])
            token_type_ids[i, :n] = torch.tensor(e["token_type_ids"]).reshape(n, NUM_TOKEN_TYPES)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


def _blank_to_empty(text: str) -> str:
    return text if text.strip() else EMPTY_CELL
