"""An independent TensorFlow implementation of the TAPAS encoder, dual encoder and NQ reader.

It reads the TF checkpoint's own variables (RestoreV2, the op TF's Saver restores with) and recomputes the
original google-research/tapas forward pass in TF ops, following modeling.py,
table_retriever_model.py, tapas_classifier_model.py and span_prediction_utils.py step by step:
one-hot token-type lookup (zero for ids outside a table), tanh GELU, post-LN, additive mask
-10000, per-cell position reset through unsorted_segment_min when asked, tanh pooler,
projections, reader heads and span logits in the original order. It shares no code with
zoo.models or converters, so agreeing with the converted torch model is evidence, not an echo.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..extras import tensorflow

tf = tensorflow("the TAPAS TensorFlow reference (verify's encodings check, bench --backend tf)")
Tensor = Any  # tf.Tensor: TensorFlow is imported at run time, so annotations cannot name its types

MAX_SPAN_LENGTH = 10
NEG_INFINITY = -10000.0
_NOT_WEIGHTS = ("adam_m", "adam_v", "accum")


def _gelu(x: Tensor) -> Tensor:
    """modeling.gelu: the tanh approximation."""
    cdf = 0.5 * (1.0 + tf.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * tf.pow(x, 3))))
    return x * cdf


_ACTIVATIONS = {"gelu": _gelu, "relu": tf.nn.relu, "tanh": tf.tanh}


def _layer_norm(x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
    """tf_slim.layer_norm over the last axis (epsilon 1e-12)."""
    mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
    return tf.nn.batch_normalization(x, mean, variance, offset=beta, scale=gamma, variance_epsilon=1e-12)


class TapasTFReference:
    """The checkpoint's variables plus the original forward passes, in TF ops.

    Variables are read from the checkpoint when an op needs them, so a forward pass holds one
    layer's weights at a time, never the model; `keep_weights` keeps them after first use instead
    (for encoding many batches, as `zoo bench --backend tf` does). `dtype` float64 runs the same
    graph in double precision (the variables are cast exactly), which is how zoo's parity gate
    separates a conversion mistake from float32 rounding.
    """

    def __init__(
        self,
        prefix: Path,
        bert_config: Path,
        *,
        reset_position_index_per_cell: bool,
        dtype: Any = None,
        keep_weights: bool = False,
    ) -> None:
        config = json.loads(Path(bert_config).read_text())
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.type_vocab_sizes = [int(s) for s in config["type_vocab_size"]]
        self.activation = _ACTIVATIONS[config["hidden_act"]]
        self.softmax_temperature = float(config.get("softmax_temperature", 1.0))
        self.reset = reset_position_index_per_cell
        self.dtype = tf.as_dtype(dtype or tf.float32)
        self._kept: dict[tuple[str, Any], Tensor] | None = {} if keep_weights else None
        self.prefix = str(prefix)
        self.dtypes = {
            name: dtype
            for name, dtype in tf.train.load_checkpoint(self.prefix).get_variable_to_dtype_map().items()
            if name.rsplit("/", 1)[-1] not in _NOT_WEIGHTS and name not in ("global_step", "counter")
        }

    # --- encoder (modeling.BertModel) -----------------------------------------------------

    def _v(self, name: str, dtype: Any = None) -> Tensor:
        """A variable as a tensor of `dtype` (default: the reference's)."""
        dtype = tf.as_dtype(dtype or self.dtype)
        if self._kept is not None and (name, dtype) in self._kept:
            return self._kept[name, dtype]
        if name not in self.dtypes:
            raise KeyError(f"the checkpoint has no variable {name!r}")
        # restored straight into a TF tensor (no numpy copy), with the GIL released while it reads
        (stored,) = tf.raw_ops.RestoreV2(
            prefix=self.prefix, tensor_names=[name], shape_and_slices=[""], dtypes=[self.dtypes[name]]
        )
        value = tf.cast(stored, dtype)
        if self._kept is not None:
            self._kept[name, dtype] = value
        return value

    def _embeddings(self, scope: str, input_ids, token_type_ids) -> Tensor:
        batch, length = input_ids.shape
        # rows are looked up in the float32 table, then cast: the same values as a lookup in a cast
        # table, without a float64 copy of all 30k rows
        words = tf.nn.embedding_lookup(self._v(f"{scope}/embeddings/word_embeddings", tf.float32), input_ids)
        output = tf.cast(words, self.dtype)
        for i, size in enumerate(self.type_vocab_sizes):
            table = self._v(f"{scope}/embeddings/token_type_embeddings_{i}")
            one_hot = tf.one_hot(tf.reshape(token_type_ids[i], [-1]), depth=size, dtype=self.dtype)
            output += tf.reshape(tf.matmul(one_hot, table), [batch, length, self.hidden])
        positions = self._v(f"{scope}/embeddings/position_embeddings")
        if self.reset:
            output += self._relative_positions(positions, token_type_ids, length, batch)
        else:
            output += tf.reshape(positions[:length], [1, length, self.hidden])
        return _layer_norm(
            output, self._v(f"{scope}/embeddings/LayerNorm/gamma"), self._v(f"{scope}/embeddings/LayerNorm/beta")
        )

    def _relative_positions(self, table, token_type_ids, length, batch) -> Tensor:
        """modeling._get_relative_position_embeddings with segmented_tensor spelled out."""
        num_rows = self.type_vocab_sizes[2]
        num_segments = self.type_vocab_sizes[1] * num_rows
        # ProductIndexMap(col_index, row_index): inner (row) + outer (column) * inner segments
        cell = token_type_ids[2] + token_type_ids[1] * num_rows
        offset = tf.expand_dims(tf.range(batch) * num_segments, 1)
        position = tf.repeat(tf.expand_dims(tf.range(length), 0), repeats=batch, axis=0)
        first = tf.math.unsorted_segment_min(
            tf.reshape(position, [-1]), tf.reshape(cell + offset, [-1]), num_segments=batch * num_segments
        )
        first = tf.gather(tf.reshape(first, [batch, num_segments]), cell, batch_dims=1)
        return tf.nn.embedding_lookup(table, tf.expand_dims(tf.range(length), 0) - first)

    def _attention(self, prefix: str, x: Tensor, adder: Tensor) -> Tensor:
        size = self.hidden // self.heads

        def project(name):
            kernel = tf.reshape(self._v(f"{prefix}/self/{name}/kernel"), [self.hidden, self.heads, size])
            bias = tf.reshape(self._v(f"{prefix}/self/{name}/bias"), [self.heads, size])
            return tf.einsum("abc,cde->abde", x, kernel) + bias

        q, k, v = project("query"), project("key"), project("value")
        scores = tf.einsum("BFNH,BTNH->BNFT", q, k) / self.softmax_temperature
        scores = tf.multiply(scores, 1.0 / math.sqrt(float(size))) + adder
        context = tf.einsum("BNFT,BTNH->BFNH", tf.nn.softmax(scores), v)
        kernel = tf.reshape(self._v(f"{prefix}/output/dense/kernel"), [self.heads, size, self.hidden])
        out = tf.einsum("BFNH,NHD->BFD", context, kernel) + self._v(f"{prefix}/output/dense/bias")
        return _layer_norm(
            out + x, self._v(f"{prefix}/output/LayerNorm/gamma"), self._v(f"{prefix}/output/LayerNorm/beta")
        )

    def encode(self, scope: str, input_ids, input_mask, token_type_ids) -> tuple[Tensor, Tensor]:
        """(sequence output [B, L, H], pooled output [B, H]) of the tower under `scope`."""
        input_ids = tf.constant(input_ids, tf.int32)
        types = [tf.constant(t, tf.int32) for t in np.moveaxis(np.asarray(token_type_ids), -1, 0)]
        x = self._embeddings(scope, input_ids, types)
        mask = tf.cast(tf.constant(input_mask)[:, None, None, :], self.dtype)
        adder = tf.math.log(mask)
        adder = tf.where(tf.math.is_finite(adder), adder, tf.zeros_like(adder) - 10000.0)
        for layer in range(self.layers):
            p = f"{scope}/encoder/layer_{layer}"
            attended = self._attention(f"{p}/attention", x, adder)
            inner = self.activation(
                tf.einsum("abc,cd->abd", attended, self._v(f"{p}/intermediate/dense/kernel"))
                + self._v(f"{p}/intermediate/dense/bias")
            )
            out = tf.einsum("abc,cd->abd", inner, self._v(f"{p}/output/dense/kernel")) + self._v(
                f"{p}/output/dense/bias"
            )
            x = _layer_norm(
                out + attended, self._v(f"{p}/output/LayerNorm/gamma"), self._v(f"{p}/output/LayerNorm/beta")
            )
        pooled = tf.tanh(
            tf.matmul(x[:, 0], self._v(f"{scope}/pooler/dense/kernel")) + self._v(f"{scope}/pooler/dense/bias")
        )
        return x, pooled

    # --- dual encoder (table_retriever_model.model_fn) ---------------------------------------

    def dual_encoder(
        self, question_input_ids, question_input_mask, input_ids, input_mask, token_type_ids, max_query_length: int
    ) -> dict[str, np.ndarray]:
        """query_rep, table_rep and both pooled outputs; one tower only: bert/ serves both."""
        question_scope = "bert_1" if any(n.startswith("bert_1/") for n in self.dtypes) else "bert"
        q_ids = np.asarray(question_input_ids)[:, :max_query_length]
        q_mask = np.asarray(question_input_mask)[:, :max_query_length]
        _, question_pooled = self.encode(question_scope, q_ids, q_mask, np.zeros((*q_ids.shape, 7), np.int32))
        _, table_pooled = self.encode("bert", input_ids, input_mask, token_type_ids)
        query_rep, table_rep = question_pooled, table_pooled
        if "table_projection" in self.dtypes:
            table_rep = tf.matmul(table_pooled, self._v("table_projection"), transpose_b=True)
            query_rep = tf.matmul(question_pooled, self._v("text_projection"), transpose_b=True)
        return {
            "query_rep": query_rep.numpy(),
            "table_rep": table_rep.numpy(),
            "question_pooled": question_pooled.numpy(),
            "table_pooled": table_pooled.numpy(),
        }

    # --- reader (tapas_classifier_model, task NQ_RETRIEVAL) ----------------------------------

    def reader(self, input_ids, input_mask, token_type_ids, temperature: float = 1.0) -> dict[str, np.ndarray]:
        sequence, pooled = self.encode("bert", input_ids, input_mask, token_type_ids)
        logits = (tf.einsum("bsj,j->bs", sequence, self._v("output_weights")) + self._v("output_bias")) / temperature
        probabilities = tf.sigmoid(logits) * tf.cast(tf.constant(input_mask), self.dtype)
        logits_cls = tf.nn.bias_add(
            tf.matmul(pooled, self._v("output_weights_cls"), transpose_b=True), self._v("output_bias_cls")
        )
        types = np.asarray(token_type_ids)
        spans, span_logits = self._span_logits(
            sequence, tf.constant(types[..., 1], tf.int32), tf.constant(types[..., 2], tf.int32)
        )
        return {
            "logits_cls": (logits_cls[:, 1] - logits_cls[:, 0]).numpy(),
            "span_logits": span_logits.numpy(),
            "span_indexes": spans.numpy(),
            "token_probabilities": probabilities.numpy(),
        }

    def _span_logits(self, embeddings, column_ids, row_ids) -> tuple[Tensor, Tensor]:
        """span_prediction_utils._get_span_logits (mode SPAN), returning spans [B, S, 2]."""
        batch, length, width = embeddings.shape
        indexes = tf.repeat(tf.expand_dims(tf.range(length), 0), repeats=batch, axis=0)
        all_spans = []
        for offset in range(MAX_SPAN_LENGTH):
            starts, ends = indexes, indexes + offset
            if offset:  # _get_valid_indexes: keep start + offset inside the sequence
                starts, ends = starts[:, :-offset], ends[:, :-offset]
            all_spans.append(tf.stack([starts, ends], axis=-1))
        spans = tf.concat(all_spans, axis=1)
        num_spans = spans.shape[1]
        batch_dims = tf.repeat(tf.expand_dims(tf.range(batch), 1), repeats=num_spans * 2, axis=1)
        flat_spans_2d = tf.stack([batch_dims, tf.reshape(spans, (batch, num_spans * 2))], axis=2)
        pairs = tf.reshape(tf.gather_nd(embeddings, flat_spans_2d), (batch, num_spans, width * 2))
        logits = tf.einsum("bsj,j->bs", pairs, self._v("loss/span_output_weights")) + self._v("loss/span_output_bias")

        def same_positive(ids):
            ends = tf.reshape(tf.gather_nd(ids, flat_spans_2d), (batch, num_spans, 2))
            return tf.logical_and(tf.equal(ends[..., 0], ends[..., 1]), ends[..., 0] > 0)

        mask = same_positive(column_ids) & same_positive(row_ids)
        return spans, tf.where(mask, logits, tf.ones_like(logits) * NEG_INFINITY)
