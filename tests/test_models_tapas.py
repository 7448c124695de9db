"""zoo.models.tapas: golden reproduction, TF's token-type and position rules, spans, text helpers."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors import safe_open
from tapas_support import TOL, convert, golden, max_diff, token_types
from torch.profiler import profile

from zoo.models.tapas import (
    TapasDualEncoder,
    TapasDualEncoderConfig,
    TapasReader,
    TapasReaderConfig,
    TapasTextEncoder,
    cell_positions,
    load_pretrained,
    span_indexes,
)

TINY = {
    "vocab_size": 40,
    "hidden_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 24,
    "max_position_embeddings": 32,
    "type_vocab_sizes": [3, 8, 8, 2, 8, 8, 4],
}


def t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.int64))


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("golden_converted")
    convert("tapas-retriever", golden("retriever_proj8")[0], root / "retriever")
    convert("tapas-reader", golden("reader_reset")[0], root / "reader")
    return root


# Inference on CPU in float32 runs the dense layers on oneDNN (activation fused); with autograd on, aten.
KERNELS = {"onednn": torch.no_grad, "aten": torch.enable_grad}


@contextlib.contextmanager
def kernels(path: str):
    """Run under the grad mode that selects `path`, and check afterwards that it was the one taken."""
    with profile() as trace, KERNELS[path]():
        yield
    fused = any(event.name == "mkldnn::_linear_pointwise" for event in trace.events())
    assert fused == (path == "onednn"), f"expected the {path} dense layers"


@pytest.mark.parametrize("path", KERNELS)
def test_retriever_reproduces_golden(converted, path):
    _, inputs, outputs = golden("retriever_proj8")
    model = TapasDualEncoder.from_pretrained(converted / "retriever")
    q = t(inputs["question_input_ids"]), t(inputs["question_input_mask"])
    tab = t(inputs["input_ids"]), t(inputs["input_mask"]), t(token_types(inputs))
    with kernels(path):
        assert max_diff(model.encode_questions(*q), outputs["query_rep"]) <= TOL
        assert max_diff(model.encode_tables(*tab), outputs["table_rep"]) <= TOL
        assert max_diff(model.pool_questions(*q), outputs["bert_1_pooler_dense_Tanh_0"]) <= TOL
        assert max_diff(model.pool_tables(*tab), outputs["bert_pooler_dense_Tanh_0"]) <= TOL
        scores = model(*q, *tab).logits.detach()
    assert torch.allclose(scores, torch.as_tensor(outputs["query_rep"] @ outputs["table_rep"].T), atol=1e-5)


@pytest.mark.parametrize("path", KERNELS)
def test_reader_reproduces_golden(converted, path):
    _, inputs, outputs = golden("reader_reset")
    model = TapasReader.from_pretrained(converted / "reader")
    assert model.config.reset_position_index_per_cell is True
    with kernels(path):
        out = model(t(inputs["input_ids"]), t(inputs["input_mask"]), t(token_types(inputs)))
    assert out.span_logits.shape == (2, 155)
    assert np.array_equal(out.span_indexes.numpy(), outputs["span_indexes"][0])
    assert np.array_equal(outputs["span_indexes"][0], outputs["span_indexes"][1])
    assert max_diff(out.logits_cls, outputs["logits_cls"]) <= TOL
    assert max_diff(out.span_logits, outputs["span_logits"]) <= TOL
    assert max_diff(out.token_probabilities, outputs["probabilities"]) <= TOL
    answers = model.predict(t(inputs["input_ids"]), t(inputs["input_mask"]), t(token_types(inputs)))
    for b, answer in enumerate(answers):
        best = int(np.argmax(outputs["span_logits"][b]))
        assert (answer.start, answer.end) == tuple(outputs["span_indexes"][b, best])
        assert answer.row >= 0 and answer.column >= 0  # never the header or the question


def test_out_of_range_token_types_add_zero():
    """An id >= its table adds nothing (TF one-hot), unlike nn.Embedding, which would raise."""
    torch.manual_seed(0)
    model = TapasReader(TapasReaderConfig(**TINY, reset_position_index_per_cell=False)).eval()
    emb = model.bert.embeddings
    ids = t([[1, 2, 3]])
    inside = torch.zeros((1, 3, 7), dtype=torch.long)
    outside = inside.clone()
    outside[0, 1, 2] = 8  # row id == table size: out of range
    outside[0, 2, 4] = 300
    with torch.no_grad():
        got = emb(input_ids=ids, token_type_ids=outside)
        # the same sum by hand, leaving those two lookups out
        manual = emb.word_embeddings(ids) + emb.position_embeddings(torch.arange(3))
        for i in range(7):
            manual = manual + getattr(emb, f"token_type_embeddings_{i}")(inside[..., i])
        manual[0, 1] -= emb.token_type_embeddings_2.weight[0]
        manual[0, 2] -= emb.token_type_embeddings_4.weight[0]
        want = emb.LayerNorm(manual)
    assert torch.allclose(got, want, atol=1e-6)
    with pytest.raises(IndexError):
        emb.token_type_embeddings_2(outside[..., 2])  # what plain transformers would do


def test_cell_positions_restart_per_cell_with_tf_keys():
    cols = t([[0, 0, 1, 1, 1, 2, 2, 1, 1, 0]])
    rows = t([[0, 0, 0, 0, 0, 0, 0, 1, 1, 0]])
    assert cell_positions(cols, rows, 256).tolist() == [[0, 1, 0, 1, 2, 0, 1, 0, 1, 9]]
    # TF keys cells by column * rows + row: (1, 300) and (2, 44) are one cell there too
    cols, rows = t([[1, 2, 2]]), t([[300, 44, 44]])
    assert cell_positions(cols, rows, 256).tolist() == [[0, 1, 2]]


def test_span_order_is_offset_major():
    spans = span_indexes(20, 10)
    assert spans.shape == (155, 2)
    assert spans[:3].tolist() == [[0, 0], [1, 1], [2, 2]]
    assert spans[20].tolist() == [0, 1] and spans[-1].tolist() == [10, 19]
    assert span_indexes(512, 10).shape[0] == 5075


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = TapasDualEncoder(TapasDualEncoderConfig(**TINY, down_projection_dim=0, max_query_length=5)).eval()
    assert model.table_projection is None and model.text_projection is None
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "zoo_tapas_dual_encoder"
    assert config["type_vocab_sizes"] == TINY["type_vocab_sizes"]
    assert config["reset_position_index_per_cell"] is False and config["hidden_act"] == "gelu_new"
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as fh:
        names = list(fh.keys())
    assert names and not any("projection" in k for k in names)
    loaded = load_pretrained(tmp_path)
    assert isinstance(loaded, TapasDualEncoder)
    ids, mask = t([[2, 5, 6, 7, 8, 9, 3], [2, 5, 3, 0, 0, 0, 0]]), t([[1] * 7, [1, 1, 1, 0, 0, 0, 0]])
    with torch.no_grad():
        reps = loaded.encode_questions(ids, mask)
        assert torch.equal(reps, loaded.pool_questions(ids, mask))  # D = 0: the pooled output
        assert torch.equal(reps, model.encode_questions(ids[:, :5], mask[:, :5]))  # cut to max_query_length
        # padding is masked out: extra padded positions change nothing
        padded = loaded.encode_questions(
            torch.cat([ids[1:, :3], torch.zeros((1, 2), dtype=torch.long)], 1),
            torch.cat([mask[1:, :3], torch.zeros((1, 2), dtype=torch.long)], 1),
        )
        assert torch.allclose(padded, reps[1:], atol=1e-6)


# --- text helpers -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def text(tmp_path_factory) -> TapasTextEncoder:
    folder = tmp_path_factory.mktemp("vocab")
    words = [
        "[PAD]",
        "[EMPTY]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        "what",
        "is",
        "the",
        "city",
        "population",
        "paris",
        "london",
        "of",
        "big",
        "cities",
        "2",
        "9",
        "?",
        "##s",
        "capital",
    ]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    return TapasTextEncoder.from_pretrained(folder, max_length=64)


def test_tokenizer_ids_round_trip(text):
    tok = text.tokenizer
    tokens = tok.tokenize("What is the population of Paris?")
    assert tokens == ["what", "is", "the", "population", "of", "paris", "?"]
    ids = tok.convert_tokens_to_ids(tokens)
    assert ids == [6, 7, 8, 10, 13, 11, 18]  # line numbers in vocab.txt, no [UNK] (id 2)
    assert tok.convert_ids_to_tokens(ids) == tokens
    assert tok.convert_tokens_to_ids("[EMPTY]") == 1


def test_question_and_table_inputs(text):
    q = text.questions(["what is the capital", "paris"], max_length=4)
    assert q["input_ids"].tolist() == [[3, 6, 7, 8], [3, 11, 4, 0]]  # [CLS] q [SEP], cut to 4
    assert q["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    table = pd.DataFrame({"city": ["paris", "london", ""], "population": [2, 9, 2]})
    batch = text.tables([table], ["big cities"])
    ids, types = batch["input_ids"][0].tolist(), batch["token_type_ids"][0]
    assert ids == [3, 14, 15, 4, 9, 10, 11, 16, 12, 17, 1, 16]  # [CLS] title [SEP] header rows; [EMPTY]=1
    assert types[:, 0].tolist() == [0] * 4 + [1] * 8  # segment 1 for table tokens
    assert types[:, 1].tolist() == [0] * 4 + [1, 2] * 4  # 1-based columns
    assert types[:, 2].tolist() == [0] * 4 + [0, 0, 1, 1, 2, 2, 3, 3]  # header is row 0
    assert types[:, 4].tolist()[-6:] == [0, 1, 0, 2, 0, 1]  # numeric column ranks
    reader = text.reader_inputs(["what city"], [table], ["big cities"])
    assert reader["input_ids"][0].tolist()[:7] == [3, 6, 9, 4, 14, 15, 4]  # [CLS] q [SEP] title [SEP]


def test_text_level_encode_and_answer(text):
    torch.manual_seed(0)
    config = {**TINY, "vocab_size": 21, "max_position_embeddings": 64}
    encoder = TapasDualEncoder(TapasDualEncoderConfig(**config, down_projection_dim=4)).eval()
    table = pd.DataFrame({"city": ["paris", "london"], "population": ["2", "9"]})
    assert encoder.embed_questions(["what is the capital ?"], text).shape == (1, 4)
    assert encoder.embed_tables([table, table.head(1)], ["big cities", "cities"], text).shape == (2, 4)
    reader = TapasReader(TapasReaderConfig(**config, reset_position_index_per_cell=True)).eval()
    answer = reader.answer("what city", table, text, title="big cities")
    assert answer.text in {"paris", "london", "2", "9"} and answer.row in (0, 1) and answer.column in (0, 1)
