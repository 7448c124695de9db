"""FLMR query / context tokenizers on transformers 5's BertTokenizer, reproducing the authors' ids.

The hub folders (`query_tokenizer/`, `context_tokenizer/`) hold vocab.txt, tokenizer_config.json
and special_tokens_map.json written by transformers 4's slow BertTokenizer; extra special tokens
(FLMR's `<BOV>` ... `<EOK>`) live only in `added_tokens_decoder`. transformers 5 renamed the
vocabulary argument (`vocab_file=` became `vocab=`, and a wrong name silently yields a 5-token
default vocabulary), so the folder's three files are read here (locally or through
transformers' hub cache) and every id is checked to round-trip.

Usage: ``FLMRQueryEncoderTokenizer.from_pretrained(model_dir / "query_tokenizer")``,
``FLMRQueryEncoderTokenizer.from_pretrained(model_dir, subfolder="query_tokenizer")``, or through
``AutoTokenizer.from_pretrained(model_dir, subfolder="query_tokenizer", trust_remote_code=True)``.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from transformers import AddedToken, BatchEncoding, BertTokenizer
from transformers.utils import cached_file

from .configuration_flmr import FLMRInputError

VOCAB_NAME = "vocab.txt"
TOKENIZER_CONFIG_NAME = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_NAME = "special_tokens_map.json"
_SPECIAL_KEYS = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
_BERT_OPTIONS = ("do_lower_case", "strip_accents", "tokenize_chinese_chars")

Q_MARKER = "[unused0]"  # the authors' [Q]
D_MARKER = "[unused1]"  # the authors' [D]


def _content(token: Any) -> str:
    return token["content"] if isinstance(token, dict) else str(token)


def _read_json(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FLMRInputError(f"{path}: not valid JSON ({exc})") from None


# Keywords transformers' loaders pass along that locate files; anything else they add is theirs.
_HUB_KWARGS = ("cache_dir", "revision", "token", "local_files_only", "force_download")


class _FLMRTokenizerBase(BertTokenizer):
    """Shared loading and saving of a hub tokenizer folder."""

    _maxlen_key = ""
    _marker = ""

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls,
        path: str | os.PathLike[str],
        *args: Any,
        subfolder: str | None = None,
        **overrides: Any,
    ):
        """Build from a hub tokenizer folder (vocab.txt + tokenizer_config.json + special_tokens_map.json)."""
        hub = {k: overrides.pop(k) for k in _HUB_KWARGS if k in overrides}
        for key in ("trust_remote_code", "_from_auto", "_from_pipeline", "_commit_hash", "use_fast"):
            overrides.pop(key, None)
        where = f"{path}/{subfolder}" if subfolder else str(path)

        def fetch(name: str) -> str | None:
            return cached_file(
                path, name, subfolder=subfolder or "", _raise_exceptions_for_missing_entries=False, **hub
            )

        vocab_file = fetch(VOCAB_NAME)
        if vocab_file is None:
            raise FLMRInputError(f"{where}: no {VOCAB_NAME}; expected a hub tokenizer folder")
        with open(vocab_file, encoding="utf-8") as fh:
            lines = [line.rstrip("\n") for line in fh]
        vocab = OrderedDict((token, i) for i, token in enumerate(lines))
        config = _read_json(fetch(TOKENIZER_CONFIG_NAME))
        special_map = _read_json(fetch(SPECIAL_TOKENS_MAP_NAME))
        if config.get("never_split"):
            raise FLMRInputError(f"{where}: never_split is not supported")
        kwargs: dict[str, Any] = {k: config[k] for k in _BERT_OPTIONS if k in config}
        for key in _SPECIAL_KEYS:
            if key in config or key in special_map:
                kwargs[key] = _content(config.get(key, special_map.get(key)))
        if cls._maxlen_key in config:
            kwargs[cls._maxlen_key] = int(config[cls._maxlen_key])
        if "attend_to_mask_tokens" in config and cls is FLMRQueryEncoderTokenizer:
            kwargs["attend_to_mask_tokens"] = bool(config["attend_to_mask_tokens"])
        kwargs.update(overrides)
        tok = cls(vocab=vocab, **kwargs)
        tok._add_hub_tokens(where, vocab, config, special_map)
        tok._hub_files = (config, special_map, lines)
        return tok

    def _add_hub_tokens(
        self, folder: str, vocab: dict[str, int], config: dict[str, Any], special_map: dict[str, Any]
    ) -> None:
        """Append added tokens at their recorded ids, then prove every id round-trips."""
        decoder = {int(i): tok for i, tok in (config.get("added_tokens_decoder") or {}).items()}
        for index in sorted(decoder):
            entry = decoder[index]
            content = _content(entry)
            if index < len(vocab):
                if vocab.get(content) != index:
                    raise FLMRInputError(
                        f"{folder}: added token {content!r} has id {index} but vocab.txt says {vocab.get(content)}"
                    )
                continue
            opts = entry if isinstance(entry, dict) else {}
            self.add_tokens(
                [
                    AddedToken(
                        content,
                        single_word=opts.get("single_word", False),
                        lstrip=opts.get("lstrip", False),
                        rstrip=opts.get("rstrip", False),
                        normalized=opts.get("normalized", False),
                        special=opts.get("special", True),
                    )
                ],
                special_tokens=opts.get("special", True),
            )
            if self.convert_tokens_to_ids(content) != index:
                raise FLMRInputError(
                    f"{folder}: added token {content!r} landed on id "
                    f"{self.convert_tokens_to_ids(content)}, expected {index}"
                )
        extra = config.get("additional_special_tokens") or special_map.get("additional_special_tokens") or []
        missing = [_content(t) for t in extra if _content(t) not in self.get_vocab()]
        if missing:
            raise FLMRInputError(f"{folder}: additional special tokens {missing} have no recorded id")
        got = self.get_vocab()
        wrong = [t for t, i in vocab.items() if got.get(t) != i]
        if wrong:
            raise FLMRInputError(f"{folder}: vocabulary ids do not round-trip (e.g. {wrong[:5]})")
        if self.convert_tokens_to_ids(self._marker) != vocab.get(self._marker):
            raise FLMRInputError(f"{folder}: marker token {self._marker} missing from vocab.txt")

    def save_pretrained(self, directory: str | Path, *args: Any, **kwargs: Any) -> tuple[str, ...]:  # type: ignore[override]
        """Write the hub folder layout (vocab.txt, tokenizer_config.json, special_tokens_map.json)."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        if not hasattr(self, "_hub_files"):
            raise FLMRInputError("only a tokenizer loaded with from_pretrained(folder) can be saved in the hub layout")
        config, special_map, vocab = self._hub_files
        (folder / VOCAB_NAME).write_text("".join(t + "\n" for t in vocab), encoding="utf-8")
        (folder / TOKENIZER_CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        (folder / SPECIAL_TOKENS_MAP_NAME).write_text(json.dumps(special_map, indent=2, sort_keys=True) + "\n")
        return tuple(str(folder / n) for n in (VOCAB_NAME, TOKENIZER_CONFIG_NAME, SPECIAL_TOKENS_MAP_NAME))


class FLMRQueryEncoderTokenizer(_FLMRTokenizerBase):
    """Queries: ". " prefix, [Q] at position 1, padded to query_maxlen, pad ids replaced by [MASK]."""

    _maxlen_key = "query_maxlen"
    _marker = Q_MARKER

    def __init__(self, *args: Any, query_maxlen: int = 32, attend_to_mask_tokens: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.query_maxlen = query_maxlen
        self.attend_to_mask_tokens = attend_to_mask_tokens
        self.Q_marker_token, self.Q_marker_token_id = "[Q]", self.convert_tokens_to_ids(Q_MARKER)

    def __call__(
        self,
        text: str | list[str],
        padding: str | bool = "max_length",
        truncation: bool | str = True,
        max_length: int | None = None,
        return_tensors: str | None = "pt",
        **kwargs: Any,
    ) -> dict[str, torch.Tensor]:
        texts = [text] if isinstance(text, str) else list(text)
        encoding = super().__call__(
            [". " + t for t in texts],
            padding=padding,
            truncation=truncation,
            max_length=max_length or self.query_maxlen,
            return_tensors=return_tensors,
            **kwargs,
        )
        ids, mask = encoding["input_ids"], encoding["attention_mask"]
        ids[:, 1] = self.Q_marker_token_id
        ids[ids == self.pad_token_id] = self.mask_token_id
        if self.attend_to_mask_tokens:
            mask[ids == self.mask_token_id] = 1
        return {"input_ids": ids, "attention_mask": mask}


class FLMRContextEncoderTokenizer(_FLMRTokenizerBase):
    """Documents: ". " prefix, [D] at position 1, padded / truncated to doc_maxlen."""

    _maxlen_key = "doc_maxlen"
    _marker = D_MARKER

    def __init__(self, *args: Any, doc_maxlen: int = 512, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.doc_maxlen = doc_maxlen
        self.D_marker_token, self.D_marker_token_id = "[D]", self.convert_tokens_to_ids(D_MARKER)

    def __call__(
        self,
        text: str | list[str],
        padding: str | bool = "max_length",
        truncation: bool | str = "longest_first",
        max_length: int = 512,
        return_tensors: str | None = "pt",
        **kwargs: Any,
    ) -> BatchEncoding:
        texts = [text] if isinstance(text, str) else list(text)
        encoding = super().__call__(
            [". " + t for t in texts],
            padding=padding,
            truncation=truncation,
            max_length=min(max_length, self.doc_maxlen),
            return_tensors=return_tensors,
            **kwargs,
        )
        encoding["input_ids"][:, 1] = self.D_marker_token_id
        return encoding
