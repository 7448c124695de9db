"""converters.flmr_legacy: golden PreFLMR legacy.ckpt, a generated plain FLMR, bad and hostile inputs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from flmr_factory import encode_golden, make_flmr, make_malicious_ckpt
from safetensors.torch import load_file

from converters import flmr_legacy as fl
from converters import load_format
from converters.safe_pickle import load_torch_pickle
from zoo.cache import sha256_file
from zoo.errors import FormatError, InputError, MappingError
from zoo.models.flmr import FLMRConfig, FLMRModelForRetrieval

GOLDEN = Path(__file__).parent / "data" / "golden" / "flmr" / "preflmr"


@pytest.fixture(scope="module")
def tiny_flmr(tmp_path_factory):
    return make_flmr(tmp_path_factory.mktemp("flmr"))


def _convert(src: Path, tmp_path: Path, **options) -> tuple[Path, object]:
    out = tmp_path / "out"
    out.mkdir()
    return out, fl.convert(src, out, {k: str(v) for k, v in options.items()}, progress=False)


def _legacy_variant(tmp_path: Path, edit) -> Path:
    ckpt = torch.load(GOLDEN / "legacy.ckpt", weights_only=True)
    edit(ckpt["state_dict"])
    path = tmp_path / "variant.ckpt"
    torch.save(ckpt, path)
    return path


def _outputs(model_dir: Path, inputs: dict):
    return encode_golden(FLMRModelForRetrieval.from_pretrained(model_dir), inputs)


# --- golden PreFLMR ------------------------------------------------------------------------------


def test_golden_legacy_conversion_reproduces_original_outputs(tmp_path):
    out, result = _convert(GOLDEN / "legacy.ckpt", tmp_path, config=GOLDEN / "hf")
    assert load_format("flmr-legacy") is fl and fl.FAMILY == "flmr"
    inputs = torch.load(GOLDEN / "inputs.pt", weights_only=True)
    expected = torch.load(GOLDEN / "outputs.pt", weights_only=True)
    q, d, mask, scores = _outputs(out, inputs)
    assert (q - expected["query_embeddings"]).abs().max() <= 1e-5
    assert (d - expected["doc_embeddings"]).abs().max() <= 1e-5
    assert torch.equal(mask, expected["doc_mask"])
    assert (scores - expected["scores"]).abs().max() <= 1e-5
    # same tensors, same names as the authors' hub export, bit for bit
    ours, hub = load_file(str(out / "model.safetensors")), load_file(str(GOLDEN / "hf" / "model.safetensors"))
    assert ours.keys() == hub.keys() and all(torch.equal(ours[k], hub[k]) for k in hub)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(
        p.relative_to(GOLDEN / "hf").as_posix() for p in (GOLDEN / "hf").rglob("*") if p.is_file()
    )
    assert result.source["sha256"] == sha256_file(GOLDEN / "legacy.ckpt")
    assert result.source["format"] == "flmr-legacy" and result.options["kind"] == "preflmr"
    assert result.config["model_type"] == "flmr"


def test_plan_replays_from_recorded_options(tmp_path):
    _, result = _convert(GOLDEN / "legacy.ckpt", tmp_path, config=GOLDEN / "hf")
    reader = fl.open_source(GOLDEN / "legacy.ckpt", result.options)
    assert fl.plan_for(reader, result.options) == result.plan


# --- generated plain FLMR: tied text encoder, vision tower from --vision ---------------------------


def test_flmr_legacy_with_vision_reproduces_hub_model(tiny_flmr, tmp_path):
    out, result = _convert(tiny_flmr.legacy, tmp_path, config=tiny_flmr.hf, vision=tiny_flmr.vision)
    reference = FLMRModelForRetrieval.from_pretrained(tiny_flmr.hf)
    q = reference.query_tokenizer(["what is the capital of france ?", "the seine flows through paris <BOV> to the sea"])
    d = reference.context_tokenizer(["paris is the capital of france .", "a red car ; on a road , in a city !"])
    inputs = {
        "query_input_ids": q["input_ids"],
        "query_attention_mask": q["attention_mask"],
        "doc_input_ids": d["input_ids"],
        "doc_attention_mask": d["attention_mask"],
        "pixel_values": torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)),
    }
    for ours, reference in zip(_outputs(out, inputs), _outputs(tiny_flmr.hf, inputs), strict=True):
        assert torch.equal(ours, reference)
    vision_sources = [m for m in result.plan.mapped if m.source.startswith("vision:")]
    assert vision_sources and all(
        m.target.startswith("query_vision_encoder.vision_model.vision_model.") for m in vision_sources
    )
    assert result.plan.skipped == ("model.model.bert.embeddings.position_ids",)
    assert set(result.source["vision"]["files"]) == {"config.json", "model.safetensors"}
    assert any("restricted unpickler" in n and "HParams" in n for n in result.notes)


def test_flmr_without_vision_names_the_fix(tiny_flmr, tmp_path):
    with pytest.raises(MappingError, match="--vision") as info:
        _convert(tiny_flmr.legacy, tmp_path, config=tiny_flmr.hf)
    assert info.value.exit_code == 2


def test_preflmr_refuses_a_second_vision_tower(tiny_flmr, tmp_path):
    with pytest.raises(MappingError, match="own vision tower"):
        _convert(GOLDEN / "legacy.ckpt", tmp_path, config=GOLDEN / "hf", vision=tiny_flmr.vision)


def test_vision_activation_must_match_config(tiny_flmr, tmp_path):
    bad = tmp_path / "clip"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes((tiny_flmr.vision / "model.safetensors").read_bytes())
    (bad / "config.json").write_text((tiny_flmr.vision / "config.json").read_text().replace("quick_gelu", "gelu"))
    with pytest.raises(FormatError, match="hidden_act"):
        _convert(tiny_flmr.legacy, tmp_path, config=tiny_flmr.hf, vision=bad)


def test_config_option_is_required(tmp_path):
    with pytest.raises(InputError, match="--config") as info:
        _convert(GOLDEN / "legacy.ckpt", tmp_path)
    assert info.value.exit_code == 2


# --- wrong inputs: exit 2 with names --------------------------------------------------------------


@pytest.mark.parametrize(
    "edit, pattern",
    [
        (lambda sd: sd.__setitem__("model.mystery_head.weight", torch.zeros(3)), r"match no rule: model\.mystery_head"),
        (
            lambda sd: sd.pop("model.query_linear.weight"),
            r"missing from the checkpoint: query_text_encoder_linear\.weight",
        ),
        (
            lambda sd: sd.__setitem__("model.vision_projection_linear.bias", torch.zeros(9)),
            r"shape mismatch: model\.vision_projection_linear\.bias \(9,\)",
        ),
        (
            lambda sd: sd.__setitem__("model.query_encoder.encoder.layer.7.output.dense.bias", torch.zeros(32)),
            r"not used by the model: model\.query_encoder\.encoder\.layer\.7",
        ),
    ],
)
def test_bad_checkpoints_are_mapping_errors(tmp_path, edit, pattern):
    with pytest.raises(MappingError, match=pattern) as info:
        _convert(_legacy_variant(tmp_path, edit), tmp_path, config=GOLDEN / "hf")
    assert info.value.exit_code == 2
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"definitely not a pickle")
    with pytest.raises(FormatError) as info:
        _convert(junk, tmp_path, config=GOLDEN / "hf")
    assert info.value.exit_code == 2
    no_state = tmp_path / "nostate.ckpt"
    torch.save({"epoch": 1}, no_state)
    with pytest.raises(FormatError, match="no state_dict"):
        fl.open_source(no_state, {})


@pytest.mark.parametrize("via", ["exec", "system"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, via):
    marker = tmp_path / "PWNED"
    evil = make_malicious_ckpt(tmp_path / "evil.ckpt", marker, via=via)
    with pytest.raises(FormatError, match="refusing to unpickle") as info:
        _convert(evil, tmp_path, config=GOLDEN / "hf")
    assert info.value.exit_code == 2
    with pytest.raises(FormatError):
        load_torch_pickle(evil)
    assert not marker.exists()


# --- rule tables ------------------------------------------------------------------------------------


def test_rule_tables_consume_each_tensor_exactly_once(tiny_flmr):
    sources = {
        "preflmr": (GOLDEN / "legacy.ckpt", {"config": str(GOLDEN / "hf")}),
        "flmr": (tiny_flmr.legacy, {"config": str(tiny_flmr.hf), "vision": str(tiny_flmr.vision)}),
    }
    # the transformers-4 CLIP layouts (CLIPVisionModel / full CLIPModel keys) must be covered too
    tf4_clip = [
        "vision:vision_model.post_layernorm.bias",
        "vision:text_model.final_layer_norm.bias",
        "vision:logit_scale",
        "vision:vision_model.embeddings.position_ids",
    ]
    for kind, (src, options) in sources.items():
        reader = fl.open_source(src, options)
        rules = [re.compile(r.pattern) for r in fl.RULES[kind]]
        skips = [re.compile(s) for s in fl.SKIP]
        for name in reader.names() + (tf4_clip if kind == "flmr" else []):
            # SKIP is consulted first; anything else must match exactly one rule (order never decides)
            hits = [p.pattern for p in skips if p.fullmatch(name)] or [p.pattern for p in rules if p.fullmatch(name)]
            assert len(hits) == 1, f"{kind}: {name} matched {hits}"
        plan = fl.plan_for(reader, options)
        config = FLMRConfig.from_pretrained(options["config"])
        assert sorted(m.target for m in plan.mapped) == sorted(FLMRModelForRetrieval.hub_state_shapes(config))
        assert len({m.source for m in plan.mapped} | set(plan.skipped)) == len(reader.names())


def test_restricted_unpickler_keeps_tensors_and_stands_in_for_objects(tmp_path):
    """Old (non-zip) torch format, hparams holding objects weights_only refuses: tensors load, objects don't run."""
    import argparse

    ckpt = torch.load(GOLDEN / "legacy.ckpt", weights_only=True)
    ckpt["hyper_parameters"] = {"args": argparse.Namespace(lr=1e-5), "data": tmp_path / "data"}
    path = tmp_path / "old_format.ckpt"
    torch.save(ckpt, path, _use_new_zipfile_serialization=False)
    loaded = load_torch_pickle(path)
    assert loaded.restricted and "argparse.Namespace" in loaded.placeholders
    assert all(torch.equal(v, ckpt["state_dict"][k]) for k, v in loaded.obj["state_dict"].items())
    reader = fl.open_source(path, {})
    assert reader.names() == sorted(ckpt["state_dict"])


def test_flmr_vision_tower_can_come_from_a_hub_layout_dir(tiny_flmr, tmp_path):
    """--vision may name the matching hub repo: only its CLIP tower enters the plan."""
    out, result = _convert(tiny_flmr.legacy, tmp_path, config=tiny_flmr.hf, vision=tiny_flmr.hf)
    (tmp_path / "clip").mkdir()
    clip_dir, _ = _convert(tiny_flmr.legacy, tmp_path / "clip", config=tiny_flmr.hf, vision=tiny_flmr.vision)
    assert (out / "model.safetensors").read_bytes() == (clip_dir / "model.safetensors").read_bytes()
    assert all(
        m.target.startswith("query_vision_encoder.") for m in result.plan.mapped if m.source.startswith("vision:")
    )
