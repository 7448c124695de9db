"""Word pieces exactly as the original TAPAS pipeline made them.

The original (google-research/tapas `utils/tf_example_utils.TapasTokenizer`) wraps the BERT
tokenizer of tf-models-official (`official.nlp.bert.tokenization`, forked from google-research/bert):

- a text that `text_utils.format_text` reduces to nothing (empty, whitespace, only punctuation or
  underscores such as "-", or exactly "n/a" / "?" in any case) is the single piece `[EMPTY]`;
  the literal text "EMPTY" is lower-cased first, so it is the word "empty";
- otherwise BERT's basic tokenizer (drop NUL, U+FFFD and Cc/Cf controls, map Zs and \\t\\n\\r to spaces,
  isolate CJK ideographs, split on whitespace, lower-case, strip Mn accents after NFD, split off
  punctuation), and each resulting token goes through the full tokenizer again (basic tokenizer
  once more, then greedy longest-match WordPiece; a word over 200 characters or with no match is
  `[UNK]`).

transformers' BasicTokenizer differs in small ways (NFC first, every C* category as control,
never_split for special tokens), so these rules are written out here rather than borrowed.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import overload

from .configuration_tapas import TapasInputError

CLS, SEP, EMPTY, UNK, PAD, MASK = "[CLS]", "[SEP]", "[EMPTY]", "[UNK]", "[PAD]", "[MASK]"
EMPTY_TEXT = "EMPTY"  # tapas constants.EMPTY_TEXT: what format_text returns for an empty cell
PAD_ID = 0  # the original pads every feature with 0, whatever the vocabulary says
MAX_WORD_CHARS = 200  # WordpieceTokenizer.max_input_chars_per_word
_NON_WORD = re.compile(r"[^\w\d]+")
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # Cc but \t \n \r (which are whitespace)
_ASCII_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
TOKENIZE_CACHE_SIZE = 1 << 16  # cells repeat a lot across a table corpus
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


def normalize_for_match(text: str) -> str:
    """Lower-case and collapse Python whitespace: what the original stores as a question's text."""
    return " ".join(text.lower().split())


def format_text(text: str) -> str:
    """text_utils.format_text: lower-cased words only, or EMPTY_TEXT when nothing is left."""
    text = text.lower().strip()
    if text in ("n/a", "?"):
        text = EMPTY_TEXT
    text = _NON_WORD.sub(" ", text).replace("_", " ")
    text = " ".join(text.split()).strip()
    return text or EMPTY_TEXT


def is_empty_text(text: str) -> bool:
    """True where the original writes one `[EMPTY]` piece instead of tokenizing the text."""
    return format_text(text) == EMPTY_TEXT


def _is_whitespace(char: str) -> bool:
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def _is_control(char: str) -> bool:
    if char in "\t\n\r":
        return False
    return unicodedata.category(char) in ("Cc", "Cf")


def _is_punctuation(char: str) -> bool:
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True  # all non-alphanumeric ASCII counts as punctuation
    return unicodedata.category(char).startswith("P")


def _is_cjk(char: str) -> bool:
    cp = ord(char)
    return any(low <= cp <= high for low, high in _CJK_RANGES)


def _clean(text: str) -> str:
    out = []
    for char in text:
        if char in ("\x00", "\ufffd") or _is_control(char):
            continue
        out.append(" " if _is_whitespace(char) else char)
    return "".join(out)


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def _split_on_punctuation(text: str) -> list[str]:
    words: list[list[str]] = []
    start_new_word = True
    for char in text:
        if _is_punctuation(char):
            words.append([char])
            start_new_word = True
        else:
            if start_new_word:
                words.append([])
            start_new_word = False
            words[-1].append(char)
    return ["".join(w) for w in words]


def basic_tokenize(text: str) -> list[str]:
    """BERT's BasicTokenizer(do_lower_case=True), as tf-models-official wrote it."""
    if text.isascii():  # the same steps, shortened: no CJK, no accents, controls and punctuation by regex
        return _ASCII_PUNCTUATION.sub(r" \1 ", _ASCII_CONTROL.sub("", text).lower()).split()
    return basic_tokenize_unicode(text)


def basic_tokenize_unicode(text: str) -> list[str]:
    """basic_tokenize for any text, step by step as the original."""
    text = "".join(f" {c} " if _is_cjk(c) else c for c in _clean(text))
    pieces: list[str] = []
    for token in text.strip().split():
        pieces.extend(_split_on_punctuation(_strip_accents(token.lower())))
    return " ".join(pieces).split()


def load_vocab(path: str | Path) -> dict[str, int]:
    """One token per line, stripped, numbered from 0; a repeated token keeps its last line (as BERT's load_vocab)."""
    with open(path, encoding="utf-8", newline="") as handle:
        lines = handle.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line opens no new one
    return {line.strip(): index for index, line in enumerate(lines)}


class TapasWordPieceTokenizer:
    """The original's TapasTokenizer: `[EMPTY]` rule, basic tokenizer, then the full BERT tokenizer per token."""

    cls_token, sep_token, empty_token, unk_token, pad_token, mask_token = CLS, SEP, EMPTY, UNK, PAD, MASK
    pad_token_id = PAD_ID

    def __init__(self, vocab: dict[str, int]) -> None:
        missing = [t for t in (CLS, SEP, EMPTY, UNK) if t not in vocab]
        if missing:
            raise TapasInputError(f"the vocabulary lacks {', '.join(missing)}: it is not a TAPAS vocab.txt")
        self.vocab = vocab
        self.ids_to_tokens = {index: token for token, index in vocab.items()}
        self.cls_token_id, self.sep_token_id = vocab[CLS], vocab[SEP]
        self.empty_token_id, self.unk_token_id = vocab[EMPTY], vocab[UNK]
        self._pieces = functools.lru_cache(maxsize=TOKENIZE_CACHE_SIZE)(self._tokenize)

    @classmethod
    def from_file(cls, path: str | Path) -> TapasWordPieceTokenizer:
        return cls(load_vocab(path))

    def wordpiece(self, word: str) -> list[str]:
        """Greedy longest-match-first pieces of one basic token; `[UNK]` for the whole word if any part fails."""
        if len(word) > MAX_WORD_CHARS:
            return [UNK]
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            while start < end:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    break
                end -= 1
            else:
                return [UNK]
            pieces.append(piece)
            start = end
        return pieces

    def tokenize(self, text: str) -> list[str]:
        """Word pieces of one cell, title or (normalized) question."""
        return list(self._pieces(text))

    def _tokenize(self, text: str) -> tuple[str, ...]:
        if is_empty_text(text):
            return (EMPTY,)
        return tuple(
            piece
            for token in basic_tokenize(text)
            for again in basic_tokenize(token)  # FullTokenizer.tokenize runs the basic tokenizer again
            for piece in self.wordpiece(again)
        )

    @overload
    def convert_tokens_to_ids(self, tokens: str) -> int: ...  # type: ignore[overload-overlap]  # a str is one token

    @overload
    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]: ...

    def convert_tokens_to_ids(self, tokens: str | Iterable[str]) -> int | list[int]:
        """Vocabulary ids; a piece the vocabulary lacks is an error, as in BERT's convert_by_vocab."""
        if isinstance(tokens, str):
            return self._id(tokens)
        return [self._id(t) for t in tokens]

    def _id(self, token: str) -> int:
        try:
            return self.vocab[token]
        except KeyError:
            raise TapasInputError(f"word piece {token!r} is not in the vocabulary") from None

    @overload
    def convert_ids_to_tokens(self, ids: int) -> str: ...

    @overload
    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]: ...

    def convert_ids_to_tokens(self, ids: int | Iterable[int]) -> str | list[str]:
        if isinstance(ids, int):
            return self.ids_to_tokens.get(ids, UNK)
        return [self.ids_to_tokens.get(int(i), UNK) for i in ids]

    @staticmethod
    def convert_tokens_to_string(tokens: Sequence[str]) -> str:
        """Pieces back to words: `##` continuations are glued to the piece before."""
        return " ".join(tokens).replace(" ##", "").strip()
