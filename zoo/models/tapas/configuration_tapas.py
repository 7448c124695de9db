"""Configurations of the TAPAS dense table retriever (dual encoder) and NQ reader.

Both extend transformers' TapasConfig; `type_vocab_sizes` holds the checkpoint's list of seven
token-type table sizes (bert_config.json's `type_vocab_size`).
"""

from __future__ import annotations

from transformers import TapasConfig


class TapasInputError(ValueError):
    """Input that a TAPAS model or its text helpers cannot take (a caller's mistake, not a bug)."""

    exit_code = 2  # what a command line should exit with: bad input


class TapasDualEncoderConfig(TapasConfig):
    """TapasConfig plus the retriever fields; absolute positions, tanh GELU by default."""

    model_type = "zoo_tapas_dual_encoder"

    hidden_act: str = "gelu_new"  # TF TAPAS "gelu" is the tanh approximation
    reset_position_index_per_cell: bool = False  # the retriever used absolute positions
    tie_word_embeddings: bool = False
    down_projection_dim: int = 0  # 0: the representation is the pooled output
    max_query_length: int = 128  # questions are cut to this many tokens, as in the original


class TapasReaderConfig(TapasConfig):
    """TapasConfig plus the NQ reader fields; reset_position_index_per_cell comes from the checkpoint."""

    model_type = "zoo_tapas_reader"

    hidden_act: str = "gelu_new"
    tie_word_embeddings: bool = False
    max_span_length: int = 10  # spans (start, start + k) for k < max_span_length
