"""TAPAS dense table retriever and NQ reader (google-research/tapas) on transformers 5."""

from .configuration_tapas import TapasDualEncoderConfig, TapasInputError, TapasReaderConfig
from .modeling_tapas import (
    TOKEN_TYPES,
    ReaderAnswer,
    TapasDualEncoder,
    TapasReader,
    TapasReaderOutput,
    cell_positions,
    load_pretrained,
    model_class,
    span_indexes,
)
from .tokenization_tapas import TapasTextEncoder

__all__ = [
    "TOKEN_TYPES",
    "ReaderAnswer",
    "TapasDualEncoder",
    "TapasDualEncoderConfig",
    "TapasInputError",
    "TapasReader",
    "TapasReaderConfig",
    "TapasReaderOutput",
    "TapasTextEncoder",
    "cell_positions",
    "load_pretrained",
    "model_class",
    "span_indexes",
]
