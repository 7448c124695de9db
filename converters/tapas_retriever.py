"""TF1 TAPAS dual encoder (dense table retriever) -> zoo.models.tapas.TapasDualEncoder.

`bert/` is the table tower, `bert_1/` the question tower, `table_projection` / `text_projection`
the optional [D, H] down projections (rep = pooled @ P^T, i.e. a bias-free nn.Linear with the
same [D, H] weight: no transpose). A checkpoint with only `bert/` is a single-encoder checkpoint:
the original copied it into both towers (init_from_single_encoder); `single_tower_view` does
the same as a pure aliasing pre-pass, and the result says so in its notes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from converters import ConfigReady, ConversionResult
from converters.rules import Plan, Rule, plan
from converters.tapas_checkpoint import (
    SKIP,
    AliasView,
    TapasSource,
    open_checkpoint,
    read_bert_config,
    resolve_reset,
    tower_rules,
)
from converters.tapas_write import write_model
from zoo.errors import FormatError
from zoo.models.tapas import TapasDualEncoder, TapasDualEncoderConfig

FORMAT = "tapas-retriever"
FAMILY = "tapas"
OPTIONS = (
    "reset_position_index_per_cell",
    "max_query_length",
    "single_tower",
)  # what `zoo convert` accepts for this format
TABLE_SCOPE, QUESTION_SCOPE = "bert/", "bert_1/"
DEFAULT_MAX_QUERY_LENGTH = 128
READER_MARK = "output_weights_cls"  # the reader's relevance head: this is not a dual encoder

RULES: tuple[Rule, ...] = (
    *tower_rules("bert|bert_1"),
    Rule(r"table_projection", "table_projection.weight"),
    Rule(r"text_projection", "text_projection.weight"),
)
__all__ = ["FAMILY", "FORMAT", "OPTIONS", "RULES", "SKIP", "convert", "open_source", "plan_for", "single_tower_view"]


def single_tower_view(reader) -> AliasView:
    """init_from_single_encoder: every bert_1/X reads bert/X (the table tower feeds both towers)."""
    return AliasView(
        reader,
        {QUESTION_SCOPE + name[len(TABLE_SCOPE) :]: name for name in reader.names() if name.startswith(TABLE_SCOPE)},
    )


def _is_single_tower(names: list[str]) -> bool:
    return any(n.startswith(TABLE_SCOPE) for n in names) and not any(n.startswith(QUESTION_SCOPE) for n in names)


def open_source(src: Path, options: Mapping[str, Any], *, hash_files: bool = False) -> TapasSource:
    """Open the checkpoint; alias a single tower into both, as options (or the names) say.

    `hash_files` (a conversion) hashes the source files meanwhile, for the identity record."""
    source = open_checkpoint(src, hash_files=hash_files)
    try:
        if READER_MARK in source.names():
            raise FormatError(f"{src}: holds a TAPAS reader ({READER_MARK}); convert it with format tapas-reader")
        single = _is_single_tower(source.names())
        given = options.get("single_tower")
        if given is not None and bool(given) != single:
            raise FormatError(
                f"{src}: single_tower={bool(given)} was asked for, but the checkpoint "
                f"{'holds only bert/' if single else 'holds both towers'}"
            )
        if single:
            source.reader = single_tower_view(source.reader)
        return source
    except BaseException:
        source.close()
        raise


def plan_for(reader, options: Mapping[str, Any]) -> Plan:
    return plan(reader.names(), RULES, SKIP)


def _config(source: TapasSource, reset: bool, max_query_length: int) -> TapasDualEncoderConfig:
    names = set(source.names())
    dim = source.shape("table_projection")[0] if "table_projection" in names else 0
    return TapasDualEncoderConfig(
        **read_bert_config(source.files.config),
        down_projection_dim=dim,
        max_query_length=max_query_length,
        reset_position_index_per_cell=reset,
        architectures=[TapasDualEncoder.__name__],
    )


def convert(
    src: Path, out: Path, options: Mapping[str, Any], progress: bool, on_config: ConfigReady | None = None
) -> ConversionResult:
    """Write config.json, model.safetensors and tokenizer files for a TF dual encoder into `out`."""
    with open_source(src, options, hash_files=True) as source:
        single = isinstance(source.reader, AliasView)
        # The original retriever never reset positions; a .meta graph, if present, is still believed.
        reset = resolve_reset(source.files, options, default=False)
        max_query_length = int(options.get("max_query_length", DEFAULT_MAX_QUERY_LENGTH))
        the_plan = plan_for(source, options)
        config = _config(source, reset, max_query_length)
        resolved = {
            "single_tower": single,
            "reset_position_index_per_cell": reset,
            "max_query_length": max_query_length,
        }
        announced = config.to_dict()  # what the ConversionResult reports too
        if on_config is not None:
            on_config(announced, resolved)
        identity, written = write_model(source, the_plan, TapasDualEncoder, config, out, progress, FORMAT)
        notes = []
        if single:
            notes.append(
                "The checkpoint holds a single encoder (bert/ only); it was copied into both the "
                "question and the table tower, as the original init_from_single_encoder did."
            )
        if source.files.vocab is None:
            notes.append("The source has no vocab.txt; no tokenizer files were written.")
        return ConversionResult(
            plan=the_plan,
            config=announced,
            source=identity,
            written=written,
            options=resolved,
            notes=tuple(notes),
        )
