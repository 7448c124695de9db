"""zoo.checks.tapas: encodings (torch vs TF reference) and golden checks pass when right, fail when wrong."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file
from tapas_support import GOLDEN, TOL, convert, factory

from zoo.checks.tapas import encodings, golden, probe_batch
from zoo.errors import FormatError

VARIANTS = {
    "proj0": {"down_projection_dim": 0},
    "non4h_heads": {"hidden_size": 48, "num_attention_heads": 6, "intermediate_size": 50, "down_projection_dim": 5},
    "single_tower": {"single_tower": True},
    "reader_noreset": {"kind": "reader", "reset": False},
    "reader_reset": {"kind": "reader", "hidden_size": 24, "num_attention_heads": 3, "intermediate_size": 40},
}


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """name -> (model dir, manifest-like dict) for each generated variant, converted once."""
    mk = factory()
    root = tmp_path_factory.mktemp("verify")
    made = {}
    for name, fields in VARIANTS.items():
        mk.write_checkpoint(mk.CheckpointSpec(**fields, seed=len(made)), root / "src" / name)
        fmt = "tapas-reader" if fields.get("kind") == "reader" else "tapas-retriever"
        result = convert(fmt, root / "src" / name, root / "out" / name)
        made[name] = (root / "out" / name, {"source": result.source, "options": result.options})
    return made


@pytest.mark.parametrize("name", list(VARIANTS))
def test_encodings_pass_for_generated_checkpoints(converted, name):
    model_dir, manifest = converted[name]
    check = encodings(model_dir, manifest)
    assert check.name == "encodings" and check.ok, check.detail
    assert check.value <= check.tolerance  # the float64 gate (zoo.checks.gate)
    assert check.data["float32_max_abs_diff"] <= TOL  # what users run stays within the old float32 bound
    assert all(c > 0.99999 for c in check.data["cosine"].values())


def test_encodings_fail_on_a_tampered_model(converted, tmp_path):
    model_dir, manifest = converted["reader_reset"]
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    for path in model_dir.iterdir():
        (tampered / path.name).write_bytes(path.read_bytes())
    tensors = load_file(tampered / "model.safetensors")
    tensors["bert.encoder.layer.0.output.dense.bias"][0] += 1e-3  # one element: LayerNorm keeps it
    save_file(tensors, tampered / "model.safetensors")
    check = encodings(tampered, manifest)
    assert not check.ok and check.value > TOL


def test_encodings_fail_when_the_reset_flag_is_wrong(converted):
    model_dir, manifest = converted["reader_reset"]
    wrong = {**manifest, "options": {**manifest["options"], "reset_position_index_per_cell": False}}
    assert not encodings(model_dir, wrong).ok


def test_probe_batch_exercises_padding_and_out_of_range_ids():
    sizes = [3, 256, 256, 2, 256, 256, 10]
    config = {"vocab_size": 99, "max_position_embeddings": 64, "type_vocab_sizes": sizes}
    batch = probe_batch(config)
    lengths = batch["attention_mask"].sum(-1)
    assert len(set(lengths.tolist())) == 3 and lengths.min() < batch["input_ids"].shape[1]
    types = batch["token_type_ids"]
    for i, size in enumerate(sizes):
        if i != 0:
            assert (types[..., i] >= size).any(), i
    assert types[..., 1:3].max() > 300
    reset = probe_batch({**config, "reset_position_index_per_cell": True})["token_type_ids"]
    assert (reset[..., 2] >= 256).any()
    assert (reset[..., 1] * 256 + reset[..., 2]).max() < 256 * 256  # inside TF's cell table
    assert np.array_equal(probe_batch(config)["input_ids"], batch["input_ids"])  # fixed


@pytest.fixture(scope="module")
def golden_converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("golden")
    convert("tapas-retriever", GOLDEN / "retriever_proj8", root / "retriever")
    convert("tapas-reader", GOLDEN / "reader_reset", root / "reader")
    return root


@pytest.mark.parametrize("kind, fixture", [("retriever", "retriever_proj8"), ("reader", "reader_reset")])
def test_golden_check(golden_converted, kind, fixture):
    check = golden(golden_converted / kind, GOLDEN / fixture)
    assert check.ok and check.name == "golden" and check.value <= TOL, check.detail
    other = "reader_reset" if kind == "retriever" else "retriever_proj8"
    with pytest.raises(FormatError) as info:
        golden(golden_converted / kind, GOLDEN / other)
    assert info.value.exit_code == 2


def test_golden_check_fails_for_another_model(converted):
    model_dir, _ = converted["reader_noreset"]  # same shapes as the golden reader, other weights
    check = golden(model_dir, GOLDEN / "reader_reset")
    assert not check.ok and check.value > TOL


def test_conversion_replays_the_readers_scalar_biases_bit_for_bit(tmp_path):
    """The original reader stores output_bias and span_output_bias as 0-d tensors; they stay 0-d."""
    import zoo

    out = zoo.convert(GOLDEN / "reader_reset", format="tapas-reader", out=tmp_path / "reader")
    checks = {c["name"]: c for c in json.loads((out / "zoo_manifest.json").read_text())["checks_at_conversion"]}
    assert checks["weights"]["verdict"] == "PASS", checks["weights"]
    assert load_file(str(out / "model.safetensors"))["output_bias"].shape == ()


def test_weights_replay_sees_one_ulp_in_the_last_element_of_one_kernel(tmp_path):
    """The replay is bit for bit over whole tensors: one float32 ulp in the last element of one kernel fails it."""
    import zoo
    from zoo.checks.weights import weights
    from zoo.manifest import read

    mk = factory()
    mk.write_checkpoint(mk.CheckpointSpec(seed=11), tmp_path / "src")
    out = zoo.convert(tmp_path / "src", format="tapas-retriever", out=tmp_path / "out")
    assert weights(out, read(out)).ok
    name = "bert_1.encoder.layer.1.output.dense.weight"
    tensors = load_file(str(out / "model.safetensors"))
    last = tensors[name].reshape(-1)
    last[-1] = np.nextafter(last[-1], np.float32(np.inf), dtype=np.float32)
    save_file(tensors, str(out / "model.safetensors"))
    check = weights(out, read(out))
    assert not check.ok
    (problem,) = check.data["problems"]
    assert problem.startswith(f"bert_1/encoder/layer_1/output/dense/kernel -> {name}: not bit-exact")
