"""TF1 TAPAS NQ reader (task NQ_RETRIEVAL) -> zoo.models.tapas.TapasReader.

One tower `bert/` plus the heads: `output_weights [H]` / `output_bias []` (per-token cell
logit), `output_weights_cls [2, H]` / `output_bias_cls [2]` (relevance on the pooled output),
`loss/span_output_weights [2H]` / `loss/span_output_bias []` (span head). Whether the reader
reset positions per cell is read from the `.meta` graph; without one the caller must say.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from converters import ConfigReady, ConversionResult
from converters.rules import Plan, Rule, plan
from converters.tapas_checkpoint import (
    SKIP,
    TapasSource,
    open_checkpoint,
    read_bert_config,
    resolve_reset,
    tower_rules,
)
from converters.tapas_write import write_model
from zoo.errors import FormatError
from zoo.models.tapas import TapasReader, TapasReaderConfig

FORMAT = "tapas-reader"
FAMILY = "tapas"
OPTIONS = ("reset_position_index_per_cell", "temperature")  # what `zoo convert` accepts for this format
RETRIEVER_MARKS = ("bert_1/", "table_projection", "text_projection")  # a second tower or projections

RULES: tuple[Rule, ...] = (
    *tower_rules("bert"),
    Rule(r"output_weights", "output_weights"),
    Rule(r"output_bias", "output_bias"),
    Rule(r"output_weights_cls", "output_weights_cls"),
    Rule(r"output_bias_cls", "output_bias_cls"),
    Rule(r"loss/span_output_(weights|bias)", r"span_output_\1"),
)
__all__ = ["FAMILY", "FORMAT", "OPTIONS", "RULES", "SKIP", "convert", "open_source", "plan_for"]


def open_source(src: Path, options: Mapping[str, Any], *, hash_files: bool = False) -> TapasSource:
    source = open_checkpoint(src, hash_files=hash_files)
    retriever = [n for n in source.names() if n.startswith(RETRIEVER_MARKS)]
    if retriever:
        source.close()
        raise FormatError(f"{src}: holds a TAPAS dual encoder ({retriever[0]}); convert it with format tapas-retriever")
    return source


def plan_for(reader, options: Mapping[str, Any]) -> Plan:
    return plan(reader.names(), RULES, SKIP)


def convert(
    src: Path, out: Path, options: Mapping[str, Any], progress: bool, on_config: ConfigReady | None = None
) -> ConversionResult:
    """Write config.json, model.safetensors and tokenizer files for a TF NQ reader into `out`."""
    with open_source(src, options, hash_files=True) as source:
        from_graph = source.files.meta is not None
        reset = resolve_reset(source.files, options, default=None)
        temperature = float(options.get("temperature", 1.0))
        the_plan = plan_for(source, options)
        config = TapasReaderConfig(
            **read_bert_config(source.files.config),
            reset_position_index_per_cell=reset,
            temperature=temperature,
            architectures=[TapasReader.__name__],
        )
        resolved = {"reset_position_index_per_cell": reset, "temperature": temperature}
        announced = config.to_dict()  # what the ConversionResult reports too
        if on_config is not None:
            on_config(announced, resolved)
        identity, written = write_model(source, the_plan, TapasReader, config, out, progress, FORMAT)
        notes = (
            []
            if from_graph
            else [f"reset_position_index_per_cell={reset} was given by the caller (the source has no .meta graph)."]
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
