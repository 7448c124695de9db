"""FLMR / PreFLMR late-interaction multimodal retrievers: HF repos and legacy Lightning checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

from .contract import CardInfo, Family, Format, RemoteCode


def _recognize(path: Path) -> bool:
    """A hub-layout folder: config.json with model_type "flmr"."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("model_type") == "flmr"


FAMILY = Family(
    name="flmr",
    description="FLMR / PreFLMR late-interaction retrievers (text + CLIP vision) on transformers 5",
    tasks=("late-interaction",),
    formats=(Format("flmr-legacy", "converters.flmr_legacy", "late-interaction"),),
    loader="zoo.models.flmr:FLMRModelForRetrieval.from_pretrained",
    checks="zoo.checks.flmr",
    bench="zoo.benchmarks.flmr",
    card=CardInfo(
        library_name="transformers",
        pipeline_tags={"late-interaction": "visual-document-retrieval"},
        tags=("flmr", "preflmr", "late-interaction", "multimodal-retrieval"),
    ),
    recognize=_recognize,
    input_errors=("zoo.models.flmr.configuration_flmr:FLMRInputError",),
    model_package="zoo.models.flmr",
    conversion_checks=("weights", "encodings"),  # legacy checkpoints: vs the official hub model when it is here
    remote_code=RemoteCode(
        auto_map={
            "late-interaction": {
                "AutoConfig": "configuration_flmr.FLMRConfig",
                "AutoModel": "modeling_flmr.FLMRModelForRetrieval",
            }
        },
        tokenizers={
            "query_tokenizer": "tokenization_flmr.FLMRQueryEncoderTokenizer",
            "context_tokenizer": "tokenization_flmr.FLMRContextEncoderTokenizer",
        },
    ),
)
