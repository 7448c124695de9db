"""TAPAS dense table retriever (dual encoder) and reader: BERT towers written to match the TF code.

Attribute names echo the TF checkpoint (`bert` is the table tower, `bert_1` the question tower,
`output_weights_cls`, `table_projection`, ...) so converters/tapas_*.py stay rename tables; the
tower's module names are BERT's (`encoder.layer.N.attention.self.query`, ...). Three details
differ from transformers' TapasModel, each to reproduce the original TF code
(google-research/tapas, modeling.py):

- a token-type id outside its table adds a zero vector (TF looked token types up as
  one-hot x table), where nn.Embedding would raise; ids are never clamped;
- the per-cell position reset keys a token's cell as column * num_rows + row, as TF's
  ProductIndexMap does (so ids above the table size alias exactly as they did in TF);
- padding adds -10000 to the attention scores (TF), not the dtype's minimum.

For speed on CPU the towers use torch's scaled_dot_product_attention and, for float32 inference,
run their dense layers on oneDNN (the GEMM library TensorFlow uses on CPU) with the activation
fused into the GEMM (TF TAPAS "gelu" is the tanh approximation): the same arithmetic in fewer
kernels. Training, other devices and dtypes take plain nn.functional.linear.

Text-level helpers (strings and pandas tables in, id tensors out) live in tokenization_tapas.
This package imports only torch, transformers and the standard library, so its files ship
unchanged as remote code beside a converted model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from transformers import PreTrainedModel, TapasConfig
from transformers.utils import ModelOutput

from .configuration_tapas import TapasDualEncoderConfig, TapasInputError, TapasReaderConfig

if TYPE_CHECKING:
    from .tokenization_tapas import TapasTextEncoder

__all__ = [
    "TOKEN_TYPES",
    "ReaderAnswer",
    "TapasDualEncoder",
    "TapasReader",
    "TapasReaderOutput",
    "cell_positions",
    "load_pretrained",
    "model_class",
    "span_indexes",
]

# Order of the 7 token-type id channels ([B, L, 7]) and of token_type_embeddings_0..6.
TOKEN_TYPES = (
    "segment_ids",
    "column_ids",
    "row_ids",
    "prev_label_ids",
    "column_ranks",
    "inv_column_ranks",
    "numeric_relations",
)
COLUMN, ROW = 1, 2
MASK_ADDER = -10000.0  # TF's additive attention mask and its value for invalid spans


# --- encoder tower --------------------------------------------------------------------


def cell_positions(column_ids: torch.Tensor, row_ids: torch.Tensor, num_rows: int) -> torch.Tensor:
    """Position of each token counted from the first token of its cell ([B, L] -> [B, L]).

    TF keys a cell as column * num_rows + row and takes the minimum absolute position per key;
    comparing keys pairwise gives the same first position without a num_columns * num_rows
    segment table.
    """
    key = column_ids * num_rows + row_ids
    length = key.shape[-1]
    position = torch.arange(length, device=key.device)
    same_cell = key.unsqueeze(-1) == key.unsqueeze(-2)
    first = torch.where(same_cell, position, length).amin(dim=-1)
    return position - first


class TapasTFEmbeddings(nn.Module):
    """Word + 7 token-type + position embeddings with TF's out-of-range rule, reset rule and summation order."""

    def __init__(self, config: TapasConfig) -> None:
        super().__init__()
        self.config = config
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        for i, size in enumerate(config.type_vocab_sizes):
            setattr(self, f"token_type_embeddings_{i}", nn.Embedding(size, config.hidden_size))
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        embeddings = self.word_embeddings(input_ids)
        for i, size in enumerate(self.config.type_vocab_sizes):
            ids = token_type_ids[..., i]
            inside = (ids >= 0) & (ids < size)
            looked_up = getattr(self, f"token_type_embeddings_{i}")(torch.where(inside, ids, 0))
            embeddings = embeddings + torch.where(inside.unsqueeze(-1), looked_up, 0.0)
        if self.config.reset_position_index_per_cell:
            position_ids = cell_positions(
                token_type_ids[..., COLUMN], token_type_ids[..., ROW], self.config.type_vocab_sizes[ROW]
            )
        else:
            position_ids = torch.arange(embeddings.shape[1], device=embeddings.device)
        embeddings = embeddings + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(embeddings))


@dataclass(frozen=True)
class Activation:
    module: Callable[[], nn.Module]  # the activation as a torch module
    post_op: tuple[str, str]  # the same activation as a oneDNN GEMM post-op: (attr, algorithm)


# hidden_act -> the activation (TF TAPAS "gelu" is the tanh form, "gelu_new" here)
ACTIVATIONS: dict[str, Activation] = {
    "gelu_new": Activation(lambda: nn.GELU(approximate="tanh"), ("gelu", "tanh")),
    "gelu": Activation(nn.GELU, ("gelu", "none")),
    "relu": Activation(nn.ReLU, ("relu", "")),
    "tanh": Activation(nn.Tanh, ("tanh", "")),
}
_NO_POST_OP = ("none", "")
# torch's default CPU GEMM runs at about 0.6x oneDNN's on AMD EPYC (where TensorFlow uses oneDNN)
_ONEDNN = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


class TapasLinear(nn.Linear):
    """nn.Linear (same parameters) whose float32 CPU inference runs on oneDNN, an activation fused in."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str | None = None):
        super().__init__(in_features, out_features, bias=bias)
        self.activation = ACTIVATIONS[activation] if activation else None
        self.act = self.activation.module() if self.activation else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _ONEDNN and x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_grad_enabled():
            attr, algorithm = self.activation.post_op if self.activation else _NO_POST_OP
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, attr, [], algorithm)
        return self.act(super().forward(x))


class TapasSelfAttention(nn.Module):
    """Post-LN BERT attention through scaled_dot_product_attention, with TF's additive mask."""

    def __init__(self, config: TapasConfig) -> None:
        super().__init__()
        self.heads = config.num_attention_heads
        self.head_size = config.hidden_size // config.num_attention_heads
        self.query = TapasLinear(config.hidden_size, config.hidden_size)
        self.key = TapasLinear(config.hidden_size, config.hidden_size)
        self.value = TapasLinear(config.hidden_size, config.hidden_size)
        self.dropout_p = config.attention_probs_dropout_prob

    def forward(self, hidden: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        batch, length, width = hidden.shape

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, length, self.heads, self.head_size).transpose(1, 2)

        context = nn.functional.scaled_dot_product_attention(
            heads(self.query(hidden)),
            heads(self.key(hidden)),
            heads(self.value(hidden)),
            attn_mask=bias,
            dropout_p=self.dropout_p if self.training else 0.0,
        )
        return context.transpose(1, 2).reshape(batch, length, width)


class TapasSelfOutput(nn.Module):
    def __init__(self, config: TapasConfig, inner: int) -> None:
        super().__init__()
        self.dense = TapasLinear(inner, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden)) + residual)


class TapasAttention(nn.Module):
    def __init__(self, config: TapasConfig) -> None:
        super().__init__()
        self.self = TapasSelfAttention(config)  # names echo the checkpoint: attention/self/query ...
        self.output = TapasSelfOutput(config, config.hidden_size)

    def forward(self, hidden: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(hidden, bias), hidden)


class TapasIntermediate(nn.Module):
    def __init__(self, config: TapasConfig) -> None:
        super().__init__()
        if config.hidden_act not in ACTIVATIONS:
            raise TapasInputError(f"hidden_act {config.hidden_act!r} is not one of {', '.join(ACTIVATIONS)}")
        self.dense = TapasLinear(config.hidden_size, config.intermediate_size, activation=config.hidden_act)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.dense(hidden)


class TapasLayer(nn.Module):
    def __init__(self, config: TapasConfig) -> None:
        super().__init__()
        self.attention = TapasAttention(config)
        self.intermediate = TapasIntermediate(config)
        self.output = TapasSelfOutput(config, config.intermediate_size)

    def forward(self, hidden: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        attended = self.attention(hidden, bias)
        return self.output(self.intermediate(attended), attended)


class TapasEncoder(nn.Module):
    def __init__(self, config: TapasConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(TapasLayer(config) for _ in range(config.num_hidden_layers))


class TapasPooler(nn.Module):
    def __init__(self, config: TapasConfig) -> None:
        super().__init__()
        self.dense = TapasLinear(config.hidden_size, config.hidden_size, activation="tanh")

    def forward(self, sequence: torch.Tensor) -> torch.Tensor:
        return self.dense(sequence[:, 0])


@dataclass(frozen=True)
class TowerOutput:
    last_hidden_state: torch.Tensor  # [B, L, H]
    pooler_output: torch.Tensor  # [B, H]


class TapasTower(nn.Module):
    """One TF `bert/` scope: embeddings, post-LN encoder layers, tanh pooler over [CLS]."""

    def __init__(self, config: TapasConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = TapasTFEmbeddings(config)
        self.encoder = TapasEncoder(config)
        self.pooler = TapasPooler(config)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> TowerOutput:
        hidden = self.embeddings(input_ids, token_type_ids)
        bias = _attention_bias(attention_mask, hidden.dtype)
        for layer in self.encoder.layer:
            hidden = layer(hidden, bias)
        return TowerOutput(last_hidden_state=hidden, pooler_output=self.pooler(hidden))


def _tower(config: TapasConfig) -> TapasTower:
    return TapasTower(config)


def _attention_bias(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B, L] 0/1 mask -> [B, 1, 1, L] additive bias: 0 where attended, -10000 at padding (TF)."""
    return (1.0 - attention_mask[:, None, None, :].to(dtype)) * MASK_ADDER


def _run(tower: TapasTower, input_ids, attention_mask, token_type_ids) -> TowerOutput:
    if token_type_ids is None:
        token_type_ids = torch.zeros(
            (*input_ids.shape, len(tower.config.type_vocab_sizes)), dtype=torch.long, device=input_ids.device
        )
    if input_ids.shape[-1] > tower.config.max_position_embeddings:
        raise TapasInputError(
            f"sequence length {input_ids.shape[-1]} exceeds max_position_embeddings "
            f"{tower.config.max_position_embeddings}"
        )
    return tower(input_ids, attention_mask, token_type_ids)


class _TapasPreTrained(PreTrainedModel):
    base_model_prefix = "zoo_tapas"
    main_input_name = "input_ids"

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, TapasReader):
            std = self.config.initializer_range
            for weight in (module.output_weights, module.output_weights_cls, module.span_output_weights):
                weight.normal_(0.0, std)
            for bias in (module.output_bias, module.output_bias_cls, module.span_output_bias):
                bias.zero_()


# --- dual encoder ---------------------------------------------------------------------


@dataclass
class TapasDualEncoderOutput(ModelOutput):
    query_rep: torch.Tensor | None = None  # [Bq, D]
    table_rep: torch.Tensor | None = None  # [Bt, D]
    logits: torch.Tensor | None = None  # [Bq, Bt] dot products, the retrieval score


class TapasDualEncoder(_TapasPreTrained):
    """Question and table towers with optional bias-free down projections (D = 0: none)."""

    config_class = TapasDualEncoderConfig

    def __init__(self, config: TapasDualEncoderConfig) -> None:
        super().__init__(config)
        self.bert = _tower(config)  # table encoder (TF scope bert/)
        self.bert_1 = _tower(config)  # question encoder (TF scope bert_1/)
        dim = config.down_projection_dim
        self.table_projection = TapasLinear(config.hidden_size, dim, bias=False) if dim > 0 else None
        self.text_projection = TapasLinear(config.hidden_size, dim, bias=False) if dim > 0 else None
        self.post_init()

    def pool_questions(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooled question-tower output [B, H]; inputs are cut to max_query_length, types all zero."""
        cut = self.config.max_query_length
        return _run(self.bert_1, input_ids[:, :cut], attention_mask[:, :cut], None).pooler_output

    def pool_tables(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        """Pooled table-tower output [B, H]; token_type_ids is [B, L, 7] in TOKEN_TYPES order."""
        return _run(self.bert, input_ids, attention_mask, token_type_ids).pooler_output

    def encode_questions(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Question representations [B, D]: the pooled output, down-projected when D > 0."""
        return self.project_questions(self.pool_questions(input_ids, attention_mask))

    def encode_tables(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        """Table representations [B, D]: the pooled output, down-projected when D > 0."""
        return self.project_tables(self.pool_tables(input_ids, attention_mask, token_type_ids))

    def project_questions(self, pooled: torch.Tensor) -> torch.Tensor:
        return pooled if self.text_projection is None else self.text_projection(pooled)

    def project_tables(self, pooled: torch.Tensor) -> torch.Tensor:
        return pooled if self.table_projection is None else self.table_projection(pooled)

    def forward(
        self,
        question_input_ids: torch.Tensor,
        question_attention_mask: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
    ) -> TapasDualEncoderOutput:
        query_rep = self.encode_questions(question_input_ids, question_attention_mask)
        table_rep = self.encode_tables(input_ids, attention_mask, token_type_ids)
        return TapasDualEncoderOutput(query_rep=query_rep, table_rep=table_rep, logits=query_rep @ table_rep.T)

    @torch.no_grad()
    def embed_questions(self, questions: Sequence[str], text: TapasTextEncoder) -> torch.Tensor:
        """Question strings -> [B, D] representations."""
        batch = text.questions(questions, max_length=self.config.max_query_length)
        return self.encode_questions(batch["input_ids"], batch["attention_mask"])

    @torch.no_grad()
    def embed_tables(self, tables: Sequence, titles: Sequence[str], text: TapasTextEncoder) -> torch.Tensor:
        """pandas tables + titles -> [B, D] representations."""
        batch = text.tables(tables, titles)
        return self.encode_tables(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])


# --- reader ---------------------------------------------------------------------------


def span_indexes(seq_length: int, max_span_length: int, device=None) -> torch.Tensor:
    """All candidate spans [S, 2] in TF's order: offset-major, then by start (seq 20 -> 155)."""
    spans = []
    for offset in range(max_span_length):
        starts = torch.arange(max(seq_length - offset, 0), device=device)
        spans.append(torch.stack([starts, starts + offset], dim=-1))
    return torch.cat(spans, dim=0)


@dataclass
class TapasReaderOutput(ModelOutput):
    logits_cls: torch.Tensor | None = None  # [B] relevance = logit[1] - logit[0]
    span_logits: torch.Tensor | None = None  # [B, S]; -10000 for spans outside one table cell
    span_indexes: torch.Tensor | None = None  # [S, 2] (start, end) token indexes, inclusive
    token_probabilities: torch.Tensor | None = None  # [B, L] sigmoid(cell logit) * attention mask


@dataclass(frozen=True)
class ReaderAnswer:
    relevance: float  # logits_cls of the example
    start: int  # token indexes of the best span, inclusive
    end: int
    span_logit: float
    column: int  # 0-based table coordinates of the cell holding the span
    row: int  # 0-based data row (the header is row -1 and never answers)
    text: str | None = None


class TapasReader(_TapasPreTrained):
    """NQ reader: encoder + per-token cell head + relevance head + span head."""

    config_class = TapasReaderConfig

    def __init__(self, config: TapasReaderConfig) -> None:
        super().__init__(config)
        hidden = config.hidden_size
        self.bert = _tower(config)
        self.output_weights = nn.Parameter(torch.empty(hidden))
        self.output_bias = nn.Parameter(torch.empty(()))
        self.output_weights_cls = nn.Parameter(torch.empty(2, hidden))
        self.output_bias_cls = nn.Parameter(torch.empty(2))
        self.span_output_weights = nn.Parameter(torch.empty(2 * hidden))  # TF loss/span_output_weights
        self.span_output_bias = nn.Parameter(torch.empty(()))
        self.post_init()

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> TapasReaderOutput:
        encoded = _run(self.bert, input_ids, attention_mask, token_type_ids)
        sequence, pooled = encoded.last_hidden_state, encoded.pooler_output

        token_logits = torch.einsum("bsj,j->bs", sequence, self.output_weights) + self.output_bias
        token_logits = token_logits / self.config.temperature
        probabilities = torch.sigmoid(token_logits) * attention_mask.to(sequence.dtype)

        cls = pooled @ self.output_weights_cls.T + self.output_bias_cls
        spans = span_indexes(sequence.shape[1], self.config.max_span_length, sequence.device)
        pairs = torch.cat([sequence[:, spans[:, 0]], sequence[:, spans[:, 1]]], dim=-1)
        span_logits = torch.einsum("bsj,j->bs", pairs, self.span_output_weights) + self.span_output_bias
        valid = _within_one_cell(token_type_ids[..., COLUMN], spans) & _within_one_cell(token_type_ids[..., ROW], spans)
        span_logits = torch.where(valid, span_logits, torch.full_like(span_logits, MASK_ADDER))
        return TapasReaderOutput(
            logits_cls=cls[:, 1] - cls[:, 0],
            span_logits=span_logits,
            span_indexes=spans,
            token_probabilities=probabilities,
        )

    @torch.no_grad()
    def predict(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
        text: TapasTextEncoder | None = None,
    ) -> list[ReaderAnswer]:
        """Best span per example (argmax of span_logits); with `text`, also the span's words."""
        out = self(input_ids, attention_mask, token_type_ids)
        answers = []
        for b, best in enumerate(out.span_logits.argmax(dim=-1).tolist()):
            start, end = out.span_indexes[best].tolist()
            answers.append(
                ReaderAnswer(
                    relevance=float(out.logits_cls[b]),
                    start=start,
                    end=end,
                    span_logit=float(out.span_logits[b, best]),
                    column=int(token_type_ids[b, start, COLUMN]) - 1,
                    row=int(token_type_ids[b, start, ROW]) - 1,
                    text=None if text is None else text.decode(input_ids[b, start : end + 1].tolist()),
                )
            )
        return answers

    def answer(self, question: str, table, text: TapasTextEncoder, title: str | None = None) -> ReaderAnswer:
        """Question string + pandas table (+ document title) -> the best answer span."""
        batch = text.reader_inputs([question], [table], [title])
        return self.predict(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], text)[0]


def _within_one_cell(ids: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
    """[B, S]: start and end share one id and it is > 0 (TF span_prediction_utils._get_id_mask)."""
    start, end = ids[:, spans[:, 0]], ids[:, spans[:, 1]]
    return (start == end) & (start > 0)


MODEL_CLASSES: dict[str, type[TapasDualEncoder] | type[TapasReader]] = {
    TapasDualEncoderConfig.model_type: TapasDualEncoder,
    TapasReaderConfig.model_type: TapasReader,
}


def model_class(directory: str | Path) -> type[TapasDualEncoder] | type[TapasReader]:
    """The model class a converted directory's config.json names (model_type)."""
    model_type = json.loads((Path(directory) / "config.json").read_text()).get("model_type")
    if model_type not in MODEL_CLASSES:
        raise TapasInputError(
            f"{directory}: model_type {model_type!r} is not a zoo TAPAS model ({', '.join(MODEL_CLASSES)})"
        )
    return MODEL_CLASSES[model_type]


def load_pretrained(directory: str | Path) -> TapasDualEncoder | TapasReader:
    """A converted directory -> its model (TapasDualEncoder or TapasReader)."""
    return model_class(directory).from_pretrained(directory)
