"""converters.torch_bin: .bin-only folders become safetensors, bit for bit, without running pickled code."""

from __future__ import annotations

import argparse
import json

import pytest
import torch
from safetensors.torch import load_file

from converters.torch_bin import bin_only_dirs, convert_bin_weights
from zoo.errors import FormatError


def test_shared_storage_dtypes_and_odd_values_survive(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    embeddings = torch.randn(5, 3)
    state = {
        "embeddings.weight": embeddings,
        "projector.weight": embeddings,  # tied: one storage, two names
        "half": torch.tensor([1.5, -0.0, float("nan")], dtype=torch.bfloat16),
        "ids": torch.arange(4, dtype=torch.int64),
        "scalar": torch.tensor(3.0),
    }
    torch.save(state, src / "pytorch_model.bin")
    result = convert_bin_weights(src, out)
    assert result is not None and result.replaced == ("pytorch_model.bin",)
    assert result.written == ("model.safetensors",) and result.tensors == 5
    written = load_file(out / "model.safetensors")
    assert written.keys() == state.keys()
    for key, tensor in state.items():
        assert written[key].dtype == tensor.dtype and written[key].shape == tensor.shape
        assert torch.equal(written[key].view(-1).view(torch.uint8), tensor.reshape(-1).view(torch.uint8))


def test_sharded_bin_and_nested_folders(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    out.mkdir()
    torch.save({"a": torch.ones(2)}, src / "sub" / "pytorch_model-00001-of-00002.bin")
    torch.save({"b": torch.zeros(3)}, src / "sub" / "pytorch_model-00002-of-00002.bin")
    (src / "sub" / "pytorch_model.bin.index.json").write_text(
        json.dumps({"weight_map": {"a": "pytorch_model-00001-of-00002.bin", "b": "pytorch_model-00002-of-00002.bin"}})
    )
    result = convert_bin_weights(src, out)
    assert set(result.replaced) == {
        "sub/pytorch_model.bin.index.json",
        "sub/pytorch_model-00001-of-00002.bin",
        "sub/pytorch_model-00002-of-00002.bin",
    }
    assert set(load_file(out / "sub" / "model.safetensors")) == {"a", "b"}


def test_folders_with_safetensors_are_left_alone(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"x")
    (tmp_path / "model.safetensors").write_bytes(b"x")
    assert bin_only_dirs(tmp_path) == []
    assert convert_bin_weights(tmp_path, tmp_path / "out") is None


def test_pickles_that_need_code_are_refused(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    torch.save({"w": torch.ones(1), "args": argparse.Namespace(lr=1)}, src / "pytorch_model.bin")
    with pytest.raises(FormatError, match="weights_only=True"):
        convert_bin_weights(src, tmp_path)


def test_a_pickle_that_is_not_a_state_dict_is_refused(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    torch.save([torch.ones(1)], src / "pytorch_model.bin")
    with pytest.raises(FormatError, match="not a flat state dict"):
        convert_bin_weights(src, tmp_path)
