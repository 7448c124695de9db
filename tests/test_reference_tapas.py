"""zoo.reference.tapas_tf: the independent TF implementation reproduces the original code's outputs."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tapas_support import TOL, factory, golden, max_diff, token_types

from zoo.reference.tapas_tf import TapasTFReference


def _reference(folder, reset: bool) -> TapasTFReference:
    return TapasTFReference(folder / "model.ckpt", folder / "bert_config.json", reset_position_index_per_cell=reset)


def test_reference_reproduces_golden_retriever():
    folder, inputs, outputs = golden("retriever_proj8")
    got = _reference(folder, reset=False).dual_encoder(
        inputs["question_input_ids"],
        inputs["question_input_mask"],
        inputs["input_ids"],
        inputs["input_mask"],
        token_types(inputs),
        max_query_length=10,
    )
    assert max_diff(got["query_rep"], outputs["query_rep"]) <= TOL
    assert max_diff(got["table_rep"], outputs["table_rep"]) <= TOL
    assert max_diff(got["question_pooled"], outputs["bert_1_pooler_dense_Tanh_0"]) <= TOL
    assert max_diff(got["table_pooled"], outputs["bert_pooler_dense_Tanh_0"]) <= TOL


@pytest.fixture(scope="module")
def reader_golden():
    folder, inputs, outputs = golden("reader_reset")
    return _reference(folder, reset=True), inputs, outputs


def test_reference_reproduces_golden_reader(reader_golden):
    reference, inputs, outputs = reader_golden
    got = reference.reader(inputs["input_ids"], inputs["input_mask"], token_types(inputs))
    assert np.array_equal(got["span_indexes"], outputs["span_indexes"])
    assert max_diff(got["logits_cls"], outputs["logits_cls"]) <= TOL
    assert max_diff(got["span_logits"], outputs["span_logits"]) <= TOL
    assert max_diff(got["token_probabilities"], outputs["probabilities"]) <= TOL


def test_reset_matters_on_the_golden_reader():
    """Without the per-cell reset the same weights give visibly different outputs (the check can fail)."""
    folder, inputs, outputs = golden("reader_reset")
    got = _reference(folder, reset=False).reader(inputs["input_ids"], inputs["input_mask"], token_types(inputs))
    assert max_diff(got["token_probabilities"], outputs["probabilities"]) > 1e-3


def test_out_of_range_ids_add_nothing(reader_golden):
    reference, inputs, _ = reader_golden
    types = token_types(inputs)
    ids, mask = inputs["input_ids"], inputs["input_mask"]
    at_size, far, inside = types.copy(), types.copy(), types.copy()
    at_size[0, 12, 4], far[0, 12, 4], inside[0, 12, 4] = 256, 511, 3  # column ranks: a table of 256
    a = reference.reader(ids, mask, at_size)["token_probabilities"]
    b = reference.reader(ids, mask, far)["token_probabilities"]
    c = reference.reader(ids, mask, inside)["token_probabilities"]
    assert np.array_equal(a, b) and max_diff(a, c) > 1e-4
    # the same as looking up a row of zeros: the one-hot of an id >= 256 is all zeros
    name = "bert/embeddings/token_type_embeddings_4"

    class ZeroRow(TapasTFReference):
        def _v(self, variable: str, dtype=None) -> tf.Tensor:
            value = super()._v(variable, dtype)
            if variable != name:
                return value
            return tf.concat([value[:3], tf.zeros_like(value[3:4]), value[4:]], axis=0)

    folder, _, _ = golden("reader_reset")
    zeroed = ZeroRow(folder / "model.ckpt", folder / "bert_config.json", reset_position_index_per_cell=True)
    d = zeroed.reader(ids, mask, inside)["token_probabilities"]
    assert max_diff(a, d) <= 1e-6


def test_single_tower_reference_uses_bert_for_questions(tmp_path):
    mk = factory()
    folder = tmp_path / "single"
    mk.write_checkpoint(mk.CheckpointSpec(single_tower=True, down_projection_dim=0), folder)
    reference = _reference(folder, reset=False)
    ids = np.array([[3, 10, 11, 4, 0]])
    mask = np.array([[1, 1, 1, 1, 0]])
    zeros = np.zeros((1, 5, 7), np.int64)
    got = reference.dual_encoder(ids, mask, ids, mask, zeros, max_query_length=128)
    _, pooled = reference.encode("bert", ids, mask, zeros)
    assert np.array_equal(got["question_pooled"], pooled.numpy())
    assert np.array_equal(got["query_rep"], got["table_rep"])
