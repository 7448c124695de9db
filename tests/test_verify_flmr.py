"""zoo.checks.flmr: the golden and encodings checks pass on faithful models and fail on altered ones."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from converters import flmr_legacy as fl
from zoo.checks.flmr import TOLERANCE, golden
from zoo.checks.flmr import compare_models as encodings

GOLDEN = Path(__file__).parent / "data" / "golden" / "flmr" / "preflmr"


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("converted")
    fl.convert(GOLDEN / "legacy.ckpt", out, {"config": str(GOLDEN / "hf")}, progress=False)
    return out


def _altered(tmp_path: Path, name: str, delta: float) -> Path:
    target = tmp_path / "altered"
    shutil.copytree(GOLDEN / "hf", target)
    tensors = load_file(str(target / "model.safetensors"))
    tensors[name] = tensors[name] + delta
    save_file(tensors, str(target / "model.safetensors"), metadata={"format": "pt"})
    return target


def test_golden_check_passes_on_hub_and_converted(converted):
    for model_dir in (GOLDEN / "hf", converted):
        check = golden(model_dir, GOLDEN)
        assert check.ok, check.detail
        assert check.name == "golden" and check.tolerance == TOLERANCE and check.value <= TOLERANCE
        assert check.data["ids_equal"] and check.data["doc_mask_equal"]
        assert check.data["queries_min_cosine"] > 0.999999


def test_golden_check_fails_on_a_changed_weight(tmp_path):
    # a mapping-network weight: only the PreFLMR mapping tokens of the query change
    check = golden(_altered(tmp_path, "transformer_mapping_output_linear.bias", 1e-3), GOLDEN)
    assert not check.ok and check.value > TOLERANCE
    assert check.data["docs_max_abs_diff"] <= TOLERANCE < check.data["queries_max_abs_diff"]


def test_encodings_check(converted, tmp_path):
    check = encodings(converted, GOLDEN / "hf")
    assert check.ok, check.detail
    assert check.name == "encodings" and check.value <= TOLERANCE
    assert {"queries_max_abs_diff", "docs_max_abs_diff", "scores_max_abs_diff", "queries_min_cosine"} <= set(check.data)
    bad = encodings(converted, _altered(tmp_path, "context_text_encoder.bert_model.embeddings.LayerNorm.bias", 1e-2))
    assert not bad.ok and bad.data["docs_max_abs_diff"] > TOLERANCE


def test_unloadable_model_is_a_failed_check(tmp_path):
    (tmp_path / "empty").mkdir()
    check = encodings(tmp_path / "empty", GOLDEN / "hf")
    assert not check.ok and check.value == "unloadable"
    assert not golden(tmp_path / "empty", GOLDEN).ok


def test_pixel_probe_is_deterministic(converted):
    from zoo.checks.flmr import _probe_pixels
    from zoo.models.flmr import FLMRModelForRetrieval

    model = FLMRModelForRetrieval.from_pretrained(converted)
    assert torch.equal(_probe_pixels(model, 3), _probe_pixels(model, 3))
