"""converters/tapas_*: rule tables, reset detection, bit-exact output, single tower, bad inputs (exit 2)."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from dataclasses import replace

import numpy as np
import pytest
import tensorflow as tf
from safetensors.numpy import load_file
from tapas_support import GOLDEN, convert, factory

from converters import load_format
from converters.tapas_checkpoint import SKIP, detect_reset
from converters.tapas_write import expected_shapes
from zoo.errors import FormatError, MappingError
from zoo.models.tapas import (
    TapasDualEncoder,
    TapasDualEncoderConfig,
    TapasReader,
    TapasReaderConfig,
    TapasTextEncoder,
)

RETRIEVER, READER = load_format("tapas-retriever"), load_format("tapas-reader")


@pytest.fixture(scope="module")
def make(tmp_path_factory):
    """make(name, **spec fields) -> folder with a generated checkpoint (cached per module)."""
    mk = factory()
    root = tmp_path_factory.mktemp("ckpts")
    made = {}

    def build(name: str, **fields):
        if name not in made:
            made[name] = root / name
            mk.write_checkpoint(mk.CheckpointSpec(**fields), made[name])
        return made[name]

    return build


# --- rule tables ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "module, kind, model_cls, config_cls",
    [
        (RETRIEVER, "retriever", TapasDualEncoder, TapasDualEncoderConfig),
        (READER, "reader", TapasReader, TapasReaderConfig),
    ],
)
def test_rules_consume_each_tensor_once(module, kind, model_cls, config_cls):
    mk = factory()
    spec = mk.CheckpointSpec(kind=kind, num_hidden_layers=3, optimizer_slots=True, accumulation=True)
    names = list(mk.checkpoint_shapes(spec))
    weights = set(mk.variable_shapes(spec))
    for name in names:  # every name matches exactly one rule or one skip pattern, never both
        rules = [r for r in module.RULES if re.fullmatch(r.pattern, name)]
        skips = [s for s in module.SKIP if re.fullmatch(s, name)]
        assert len(rules) + len(skips) == 1, (name, rules, skips)
        assert bool(skips) == (name not in weights)
    the_plan = module.plan_for(type("R", (), {"names": lambda self: names})(), {})
    assert sorted(m.source for m in the_plan.mapped) == sorted(weights)
    config = (
        config_cls(
            hidden_size=32,
            num_hidden_layers=3,
            num_attention_heads=4,
            intermediate_size=37,
            vocab_size=99,
            max_position_embeddings=64,
            down_projection_dim=8,
        )
        if kind == "retriever"
        else config_cls(
            hidden_size=32,
            num_hidden_layers=3,
            num_attention_heads=4,
            intermediate_size=37,
            vocab_size=99,
            max_position_embeddings=64,
        )
    )
    assert {m.target for m in the_plan.mapped} == set(expected_shapes(model_cls, config))


def test_skip_lists_only_slots_and_counters():
    assert set(SKIP) == {r".*/adam_m", r".*/adam_v", r"global_step", r"counter", r".*/accum"}
    for weight in ("bert/embeddings/word_embeddings", "output_bias", "loss/span_output_bias", "text_projection"):
        assert not any(re.fullmatch(s, weight) for s in SKIP)


# --- reset detection ------------------------------------------------------------------------------


def test_reset_detected_from_golden_meta_graphs():
    assert detect_reset(GOLDEN / "reader_reset" / "model.ckpt.meta") is True
    assert detect_reset(GOLDEN / "retriever_proj8" / "model.ckpt.meta") is False


def test_reader_without_reset_and_without_meta(make, tmp_path):
    plain = make("reader_noreset", kind="reader", reset=False)
    assert detect_reset(plain / "model.ckpt.meta") is False  # its segment sums elsewhere do not count
    assert convert("tapas-reader", plain, tmp_path / "a").options["reset_position_index_per_cell"] is False

    no_meta = make("reader_nometa", kind="reader", write_meta=False)
    with pytest.raises(FormatError, match="reset_position_index_per_cell") as info:
        convert("tapas-reader", no_meta, tmp_path / "b")
    assert info.value.exit_code == 2
    result = convert("tapas-reader", no_meta, tmp_path / "c", reset_position_index_per_cell=True)
    assert result.options["reset_position_index_per_cell"] is True and "given by the caller" in result.notes[0]
    with pytest.raises(FormatError, match="says reset_position_index_per_cell=False"):
        convert("tapas-reader", plain, tmp_path / "d", reset_position_index_per_cell=True)


# --- conversion output --------------------------------------------------------------------------


def test_retriever_zip_with_slots_converts_bit_exact(make, tmp_path):
    mk = factory()
    folder = make("ret_slots", optimizer_slots=True, accumulation=True)
    archive = mk.write_zip(folder, tmp_path / "tapas_nq_retriever_tiny.zip", "tapas_nq_retriever_tiny")
    out = tmp_path / "out"
    result = convert("tapas-retriever", archive, out)
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "model.safetensors",
        "tokenizer_config.json",
        "vocab.txt",
    ]
    assert result.source["format"] == "tapas-retriever" and result.source["kind"] == "zip"
    assert result.source["checkpoint"] == "tapas_nq_retriever_tiny/model.ckpt"
    index_hash = hashlib.sha256((folder / "model.ckpt.index").read_bytes()).hexdigest()
    assert result.source["files"]["model.ckpt.index"] == index_hash
    assert result.source["archive_sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert result.options == {"single_tower": False, "reset_position_index_per_cell": False, "max_query_length": 128}
    assert len(result.plan.skipped) == 3 * len(result.plan.mapped) + 2  # adam_m, adam_v, accum; step, counter

    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "zoo_tapas_dual_encoder" and config["down_projection_dim"] == 8
    assert config["type_vocab_sizes"] == [3, 256, 256, 2, 256, 256, 10] and config["hidden_act"] == "gelu_new"
    tensors = load_file(out / "model.safetensors")
    reader = tf.train.load_checkpoint(str(folder / "model.ckpt"))
    kernel = reader.get_tensor("bert_1/encoder/layer_1/intermediate/dense/kernel")
    assert np.array_equal(tensors["bert_1.encoder.layer.1.intermediate.dense.weight"], kernel.T)
    assert np.array_equal(tensors["table_projection.weight"], reader.get_tensor("table_projection"))
    assert (out / "vocab.txt").read_bytes() == (folder / "vocab.txt").read_bytes()
    text = TapasTextEncoder.from_pretrained(out)
    ids = text.tokenizer.convert_tokens_to_ids(text.tokenizer.tokenize("the largest city"))
    assert text.tokenizer.convert_ids_to_tokens(ids) == ["the", "largest", "city"] and 2 not in ids


def test_single_tower_is_copied_into_both(make, tmp_path):
    folder = make("single", single_tower=True, down_projection_dim=0)
    out = tmp_path / "out"
    result = convert("tapas-retriever", folder, out)
    assert result.options["single_tower"] is True
    assert any("single encoder" in note for note in result.notes)
    assert any(m.source.startswith("bert_1/") for m in result.plan.mapped)  # the alias is part of the plan
    tensors = load_file(out / "model.safetensors")
    for name, value in tensors.items():
        if name.startswith("bert."):
            assert np.array_equal(value, tensors["bert_1." + name[len("bert.") :]])
    with pytest.raises(FormatError, match="single_tower=False"):
        RETRIEVER.open_source(folder, {"single_tower": False})


# --- bad inputs: clear errors, exit code 2 -----------------------------------------------------------


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"extra_variable": "bert/encoder/extra/kernel"}, "match no rule: bert/encoder/extra/kernel"),
        (
            {"missing_variable": "bert_1/encoder/layer_1/output/dense/bias"},
            "missing from the checkpoint: bert_1.encoder.layer.1.output.dense.bias",
        ),
        ({"wrong_shape": "bert/encoder/layer_0/attention/self/key/kernel"}, "shape mismatch: bert/encoder/layer_0"),
        ({"missing_variable": "text_projection"}, "missing from the checkpoint: text_projection.weight"),
    ],
)
def test_checkpoint_that_does_not_fit_is_rejected(make, tmp_path, fields, message):
    folder = make("bad_" + "_".join(f"{k}-{v}".replace("/", ".") for k, v in fields.items()), **fields)
    with pytest.raises(MappingError, match=re.escape(message)) as info:
        convert("tapas-retriever", folder, tmp_path / "out")
    assert info.value.exit_code == 2


def test_reader_extra_head_is_rejected(make, tmp_path):
    folder = make("reader_extra", kind="reader", extra_variable="column_output_weights")
    with pytest.raises(MappingError, match="column_output_weights") as info:
        convert("tapas-reader", folder, tmp_path / "out")
    assert info.value.exit_code == 2


def test_wrong_format_is_named(make, tmp_path):
    with pytest.raises(FormatError, match="with format tapas-reader") as info:
        convert("tapas-retriever", make("reader_noreset", kind="reader", reset=False), tmp_path / "a")
    assert info.value.exit_code == 2
    with pytest.raises(FormatError, match="with format tapas-retriever"):
        convert("tapas-reader", GOLDEN / "retriever_proj8", tmp_path / "b")


def test_corrupt_index_is_a_format_error(make, tmp_path):
    folder = make("corrupt")
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in folder.iterdir():
        data = path.read_bytes()
        if path.name.endswith(".index"):
            data = data[:40] + bytes(b ^ 0x5A for b in data[40:200]) + data[200:]
        (broken / path.name).write_bytes(data)
    with pytest.raises(FormatError, match="not a readable TF checkpoint") as info:
        convert("tapas-retriever", broken, tmp_path / "out")
    assert info.value.exit_code == 2


def test_zip_without_bert_config_is_a_format_error(make, tmp_path):
    folder = make("noconfig", with_config=False)
    archive = factory().write_zip(folder, tmp_path / "x.zip", "inner")
    with pytest.raises(FormatError, match="bert_config.json is missing") as info:
        convert("tapas-retriever", archive, tmp_path / "out")
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no TF checkpoint found"),
        ({"vocab_size": 9}, "missing field"),
        ({"type_vocab_size": 16}, "type_vocab_size must be a list"),
    ],
)
def test_bad_sources_name_the_problem(make, tmp_path, content, message):
    if content is None:
        src = tmp_path / "empty.zip"
        with zipfile.ZipFile(src, "w") as zf:
            zf.writestr("folder/readme.txt", "no checkpoint here")
    else:
        src = tmp_path / "src"
        src.mkdir()
        for path in make("base").iterdir():
            (src / path.name).write_bytes(path.read_bytes())
        config = {} if "vocab_size" in content else json.loads((src / "bert_config.json").read_text())
        (src / "bert_config.json").write_text(json.dumps({**config, **content}))
    with pytest.raises(FormatError, match=message) as info:
        convert("tapas-retriever", src, tmp_path / "out")
    assert info.value.exit_code == 2


def test_unsafe_zip_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../model.ckpt.index", b"x")
    with pytest.raises(FormatError, match="escapes the target") as info:
        convert("tapas-retriever", archive, tmp_path / "out")
    assert info.value.exit_code == 2


def test_generator_defects_are_what_they_say():
    mk = factory()
    base = mk.CheckpointSpec()
    assert "bert/x" in mk.checkpoint_shapes(replace(base, extra_variable="bert/x"))
    assert "output_bias" not in mk.checkpoint_shapes(replace(base, kind="reader", missing_variable="output_bias"))
    assert mk.checkpoint_shapes(replace(base, wrong_shape="text_projection"))["text_projection"][0] == (8, 33)
    words = mk.vocab(base)
    assert len(words) == len(set(words)) == base.vocab_size and words[1] == "[EMPTY]"
