"""zoo.models.flmr against the golden PreFLMR written by the authors' code, and a generated plain FLMR."""

from __future__ import annotations

import json
import logging
import math
import shutil
import string
from pathlib import Path

import pytest
import torch
from flmr_factory import ADDED_TOKENS, VOCAB, encode_golden, make_flmr
from safetensors.torch import load_file, save_file

from zoo.models.flmr import (
    FLMRConfig,
    FLMRContextEncoderTokenizer,
    FLMRInputError,
    FLMRModelForRetrieval,
    FLMRQueryEncoderTokenizer,
)

GOLDEN = Path(__file__).parent / "data" / "golden" / "flmr" / "preflmr"
VOCAB_GOLDEN = (GOLDEN / "hf" / "query_tokenizer" / "vocab.txt").read_text().splitlines()
TOL = 1e-5


@pytest.fixture(scope="module")
def inputs() -> dict:
    return torch.load(GOLDEN / "inputs.pt", weights_only=True)


@pytest.fixture(scope="module")
def outputs() -> dict:
    return torch.load(GOLDEN / "outputs.pt", weights_only=True)


@pytest.fixture(scope="module")
def golden_model() -> FLMRModelForRetrieval:
    return FLMRModelForRetrieval.from_pretrained(GOLDEN / "hf")


@pytest.fixture(scope="module")
def tiny_flmr(tmp_path_factory):
    return make_flmr(tmp_path_factory.mktemp("flmr"))


# --- tokenizers --------------------------------------------------------------------------


def test_tokenizers_reproduce_golden_ids(inputs):
    qt = FLMRQueryEncoderTokenizer.from_pretrained(GOLDEN / "hf" / "query_tokenizer")
    ct = FLMRContextEncoderTokenizer.from_pretrained(GOLDEN / "hf", subfolder="context_tokenizer")
    q, d = qt(inputs["query_texts"]), ct(inputs["doc_texts"])
    assert torch.equal(q["input_ids"], inputs["query_input_ids"])
    assert torch.equal(q["attention_mask"], inputs["query_attention_mask"])
    assert torch.equal(d["input_ids"], inputs["doc_input_ids"])
    assert torch.equal(d["attention_mask"], inputs["doc_attention_mask"])
    assert qt.query_maxlen == 20 and ct.doc_maxlen == 24
    assert (q["input_ids"][:, 1] == 1).all() and (d["input_ids"][:, 1] == 2).all()  # [Q] / [D] markers


def test_tokenizer_vocab_round_trips():
    vocab = (GOLDEN / "hf" / "query_tokenizer" / "vocab.txt").read_text().splitlines()
    tok = FLMRQueryEncoderTokenizer.from_pretrained(GOLDEN / "hf" / "query_tokenizer")
    assert [tok.convert_tokens_to_ids(t) for t in vocab] == list(range(len(vocab)))
    assert tok.mask_token_id == vocab.index("[MASK]") and tok.pad_token_id == 0


def test_tokenizer_refuses_misplaced_added_token(tmp_path):
    folder = tmp_path / "query_tokenizer"
    shutil.copytree(GOLDEN / "hf" / "query_tokenizer", folder)
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    cfg["added_tokens_decoder"]["14"]["content"] = "[CLS]"  # id 14 is [MASK] in vocab.txt
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    with pytest.raises(FLMRInputError, match="added token"):
        FLMRQueryEncoderTokenizer.from_pretrained(folder)


def test_flmr_added_special_tokens_keep_their_ids(tiny_flmr):
    tok = FLMRQueryEncoderTokenizer.from_pretrained(tiny_flmr.hf / "query_tokenizer")
    assert len(tok) == len(VOCAB) + len(ADDED_TOKENS)
    ids = tok.encode("the <BOV> paris <EOK>", add_special_tokens=False)
    assert ids == [VOCAB.index("the"), len(VOCAB), VOCAB.index("paris"), len(VOCAB) + 8]


# --- golden PreFLMR, hub layout ------------------------------------------------------------


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_hub_layout_reproduces_golden_outputs(attn, inputs, outputs, caplog):
    model = FLMRModelForRetrieval.from_pretrained(GOLDEN / "hf", attn_implementation=attn)
    with caplog.at_level(logging.ERROR, logger="zoo.models.flmr.modeling_flmr"):
        q, d, mask, scores = encode_golden(model, inputs)
    assert q.shape == outputs["query_embeddings"].shape == (3, 20 + 4 + 16, 8)
    assert (q - outputs["query_embeddings"]).abs().max() <= TOL
    assert (q[2] - outputs["query_embeddings"][2]).abs().max() <= TOL  # the query without ":"
    assert (d - outputs["doc_embeddings"]).abs().max() <= TOL
    assert torch.equal(mask, outputs["doc_mask"])
    assert (scores - outputs["scores"]).abs().max() <= TOL
    assert "can not find the separator" in caplog.text  # logged for the third query, as the original does


def test_query_mask_instruction_and_skip_list(golden_model):
    colon = golden_model.instruction_token_id
    assert colon == VOCAB_GOLDEN.index(":")
    ids = torch.tensor(
        [
            [12, 1, 47, 48, colon, 57, 58, 13, 14, 14],  # instruction then question
            [12, 1, 71, 72, 13, 14, 14, 14, 14, 0],
        ]
    )  # no ":" -> s = 1, pad id 0 dropped
    mask = golden_model.query_mask(ids)
    assert mask[0].tolist() == [True, True, False, False, False, True, True, True, True, True]
    assert mask[1].tolist() == [True] * 9 + [False]
    golden_model.config.query_mask_input_ids_skip_list = [57]
    try:
        assert golden_model.query_mask(ids)[0, 5].item() is False
    finally:
        golden_model.config.query_mask_input_ids_skip_list = []


def test_doc_mask_skips_punctuation(golden_model, inputs):
    mask = golden_model.doc_mask(inputs["doc_input_ids"])
    ids = inputs["doc_input_ids"]
    punct = {VOCAB_GOLDEN.index(c) for c in string.punctuation}
    expected = [[i != 0 and i not in punct for i in row] for row in ids.tolist()]
    assert mask.tolist() == expected


# --- the mapping network's self-attention is not causal ---------------------------------------


def _manual_mapping_layer(layer, x, text, heads, causal=False):
    """BertLayer with cross-attention written out from the weights; self-attention full unless `causal`."""

    def attend(att, q_in, kv_in, causal):
        b, n, h = q_in.shape
        split = lambda t: t.view(b, -1, heads, h // heads).transpose(1, 2)
        q, k, v = split(att.self.query(q_in)), split(att.self.key(kv_in)), split(att.self.value(kv_in))
        scores = q @ k.transpose(-1, -2) / math.sqrt(h // heads)
        if causal:
            scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
        ctx = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(b, n, h)
        return att.output.LayerNorm(att.output.dense(ctx) + q_in)

    a = attend(layer.attention, x, x, causal)
    c = attend(layer.crossattention, a, text, False)
    inter = torch.nn.functional.gelu(layer.intermediate.dense(c))
    return layer.output.LayerNorm(layer.output.dense(inter) + c)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_mapping_network_self_attention_is_not_causal(attn, inputs):
    model = FLMRModelForRetrieval.from_pretrained(GOLDEN / "hf", attn_implementation=attn)
    torch.manual_seed(0)
    patches = torch.randn(2, 16, 24)
    ids = inputs["query_input_ids"][:2]
    text = torch.randn(2, 20, 32)
    with torch.no_grad():
        out = model._mapping_tokens(ids, text, patches)
        moved = patches.clone()
        moved[:, -1] += 3.0  # perturb the LAST position only
        out_moved = model._mapping_tokens(ids, text, moved)
        # an earlier position sees the later one: only possible without a causal mask
        assert (out_moved[:, 0] - out[:, 0]).abs().max() > 1e-3
        layer = model.transformer_mapping_network.layer[0]
        features = model.transformer_mapping_input_linear(patches)
        full, causal = (
            model.transformer_mapping_output_linear(
                _manual_mapping_layer(layer, features, text[:, :8], heads=4, causal=c)
            )
            for c in (False, True)
        )
        assert (out - full).abs().max() <= 1e-5
        assert (out - causal).abs().max() > 1e-3  # the comparison tells the two apart
        if attn == "sdpa":  # the trap: transformers 5's decoder BertLayer, no mask, SDPA -> causal
            for lyr in model.transformer_mapping_network.layer:
                lyr.attention.self.is_causal = True
            trap = model.transformer_mapping_network(features, encoder_hidden_states=text[:, :8]).last_hidden_state
            assert (model.transformer_mapping_output_linear(trap) - causal).abs().max() <= 1e-5


# --- hub layout I/O ----------------------------------------------------------------------------


def test_save_pretrained_writes_hub_layout_and_shards(golden_model, inputs, tmp_path):
    golden_model.save_pretrained(tmp_path / "one")
    assert set(load_file(str(tmp_path / "one" / "model.safetensors"))) == set(
        load_file(str(GOLDEN / "hf" / "model.safetensors"))
    )
    golden_model.save_pretrained(tmp_path / "sharded", max_shard_size=100_000)
    assert (tmp_path / "sharded" / "model.safetensors.index.json").exists()
    assert len(list((tmp_path / "sharded").glob("model-*-of-*.safetensors"))) > 1
    reloaded = FLMRModelForRetrieval.from_pretrained(tmp_path / "sharded")
    for a, b in zip(encode_golden(golden_model, inputs), encode_golden(reloaded, inputs), strict=True):
        assert torch.equal(a, b)
    saved, original = (FLMRConfig.from_pretrained(d) for d in (tmp_path / "sharded", GOLDEN / "hf"))
    assert _without_dtype(saved.to_dict()) == _without_dtype(original.to_dict())


def _without_dtype(config: dict) -> dict:
    """transformers 5 records the weights' dtype on save (the hub config has none); all else must match."""
    return {k: _without_dtype(v) if isinstance(v, dict) else v for k, v in config.items() if k != "dtype"}


def _tampered(tmp_path, edit) -> Path:
    target = tmp_path / "hf"
    shutil.copytree(GOLDEN / "hf", target)
    tensors = load_file(str(target / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(target / "model.safetensors"), metadata={"format": "pt"})
    return target


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda t: t.__setitem__(
                "context_vision_encoder.vision_model.vision_model.pre_layrnorm.bias", torch.zeros(24)
            ),
            "unexpected",
        ),
        (lambda t: t.pop("transformer_mapping_output_linear.bias"), "missing"),
        (lambda t: t.__setitem__("query_text_encoder_linear.weight", torch.zeros(8, 31)), "shape"),
        (
            lambda t: t.__setitem__("query_text_encoder.bert_model.embeddings.position_ids", torch.arange(64)[None]),
            "unexpected",
        ),
    ],
)
def test_loading_is_strict(tmp_path, edit, message):
    with pytest.raises(FLMRInputError, match=message) as info:
        FLMRModelForRetrieval.from_pretrained(_tampered(tmp_path, edit))
    assert info.value.exit_code == 2


# --- generated plain FLMR (tied text encoder, no mapping network) -------------------------------


def test_plain_flmr_loads_tied_and_saves_once(tiny_flmr, tmp_path):
    model = FLMRModelForRetrieval.from_pretrained(tiny_flmr.hf)
    assert model.context_text_encoder is model.query_text_encoder
    assert not hasattr(model, "transformer_mapping_network")
    model.save_pretrained(tmp_path / "saved")
    keys = set(load_file(str(tmp_path / "saved" / "model.safetensors")))
    assert keys == set(load_file(str(tiny_flmr.hf / "model.safetensors")))
    assert not any(k.startswith("context_") for k in keys)
    texts = ["what is the capital of france ?", "the river seine"]
    q = model.encode_queries(texts, pixel_values=torch.randn(2, 3, 32, 32))
    assert q.late_interaction_output.shape == (2, 16 + 4, 8)  # FLMR: text + P prefix tokens, no patches


def test_batched_helpers_match_single_batch(golden_model, inputs):
    texts, docs = inputs["query_texts"][:2], inputs["doc_texts"]
    pixels = inputs["pixel_values"][:2]
    whole_q = golden_model.encode_queries(texts, pixel_values=pixels, batch_size=8)
    split_q = golden_model.encode_queries(texts, pixel_values=pixels, batch_size=1)
    assert (whole_q.late_interaction_output - split_q.late_interaction_output).abs().max() <= 1e-6
    whole_d = golden_model.encode_documents(docs, batch_size=8)
    split_d = golden_model.encode_documents(docs, batch_size=3)
    assert torch.equal(whole_d.context_mask, split_d.context_mask)
    assert (whole_d.late_interaction_output - split_d.late_interaction_output).abs().max() <= 1e-6
