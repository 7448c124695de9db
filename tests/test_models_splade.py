"""zoo.models.splade: both on-disk layouts are read and loaded from local files only."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from splade_factory import MAX_SEQ_LENGTH, vocabulary

from zoo.families.splade import load_sparse_encoder
from zoo.models.splade import SpladeFormatError, read_spec


def test_v5_layout_spec(splade_repos):
    spec = read_spec(splade_repos["v5"])
    assert spec.layout == "v5" and spec.transformer_dir == splade_repos["v5"]
    assert (spec.pooling_strategy, spec.activation, spec.dimension) == ("max", "relu", len(vocabulary()))
    assert spec.max_seq_length == MAX_SEQ_LENGTH and spec.similarity == "dot"
    assert spec.prompt("query") == spec.prompt("document") == ""


def test_v6_layout_spec(splade_repos):
    spec = read_spec(splade_repos["v6"])
    assert spec.layout == "v6" and spec.dimension == len(vocabulary())
    assert spec.max_seq_length is None  # v6 keeps it in tokenizer_config.json
    assert json.loads((splade_repos["v6"] / "tokenizer_config.json").read_text())["model_max_length"] == MAX_SEQ_LENGTH


def test_both_layouts_load_offline_and_agree(splade_repos, monkeypatch):
    from sentence_transformers import SparseEncoder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    texts = ["canine ultrasound cost", "water boils at 100 degrees at sea level"]
    vectors = {}
    for layout in ("v5", "v6"):
        model = load_sparse_encoder(splade_repos[layout], device="cpu")
        assert isinstance(model, SparseEncoder) and model.max_seq_length == MAX_SEQ_LENGTH
        vectors[layout] = model.encode_document(texts, convert_to_sparse_tensor=False)
    assert torch.equal(vectors["v5"], vectors["v6"])


@pytest.mark.parametrize("problem", ["no-modules", "dense-pooling", "feature-extraction", "bad-activation"])
def test_directories_that_are_not_splade_are_format_errors(splade_repos, tmp_path, problem):
    repo = tmp_path / "repo"
    shutil.copytree(splade_repos["v6" if problem == "feature-extraction" else "v5"], repo)
    if problem == "no-modules":
        (repo / "modules.json").unlink()
    elif problem == "dense-pooling":
        modules = json.loads((repo / "modules.json").read_text())
        modules[1]["type"] = "sentence_transformers.models.Pooling"
        (repo / "modules.json").write_text(json.dumps(modules))
    elif problem == "feature-extraction":
        config = json.loads((repo / "sentence_bert_config.json").read_text())
        config["transformer_task"] = "feature-extraction"
        (repo / "sentence_bert_config.json").write_text(json.dumps(config))
    else:
        (repo / "1_SpladePooling" / "config.json").write_text(json.dumps({"activation_function": "gelu"}))
    with pytest.raises(SpladeFormatError):
        load_sparse_encoder(repo)


def test_missing_directory(tmp_path):
    with pytest.raises(SpladeFormatError, match="not a directory"):
        read_spec(tmp_path / "nope")
