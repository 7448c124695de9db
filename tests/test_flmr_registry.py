"""PreFLMR end to end through the registry: the golden repo served under the real repo id by the
local Hub server is pulled, loaded with zoo.load, and used as the reference for a converted legacy
checkpoint; every output is compared with the authors' recorded outputs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from flmr_factory import encode_golden

GOLDEN = Path(__file__).parent / "data" / "golden" / "flmr" / "preflmr"
REPO = "LinWeizheDragon/PreFLMR_ViT-B"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def served(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    from hub_server import HubServer

    root = tmp_path / "hub"
    shutil.copytree(GOLDEN / "hf", root / REPO)
    env = {
        "ZOO_HOME": str(tmp_path / "zoo"),
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_CACHE": str(tmp_path / "hf" / "hub"),
        "ZOO_REGISTRY": "",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("ZOO_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    with HubServer(root) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield {**os.environ}


def zoo_cli(env, *args):
    return subprocess.run(
        [sys.executable, "-m", "zoo", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300
    )


def test_pull_load_and_reproduce_golden(served):
    result = zoo_cli(served, "pull", "PreFLMR_ViT-B", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["status"] == "downloaded"

    import zoo
    from zoo.models.flmr import FLMRModelForRetrieval

    model = zoo.load("LinWeizheDragon/PreFLMR_ViT-B")
    assert isinstance(model, FLMRModelForRetrieval)
    inputs = torch.load(GOLDEN / "inputs.pt", weights_only=True)
    outputs = torch.load(GOLDEN / "outputs.pt", weights_only=True)
    q, d, mask, scores = encode_golden(model, inputs)
    assert torch.max(torch.abs(q - outputs["query_embeddings"])) <= 1e-5
    assert torch.max(torch.abs(d - outputs["doc_embeddings"])) <= 1e-5
    assert torch.equal(mask.bool(), outputs["doc_mask"].bool())
    assert torch.max(torch.abs(scores - outputs["scores"])) <= 1e-5
    manifest = json.loads((zoo.resolve("PreFLMR_ViT-B") / "zoo_manifest.json").read_text())
    assert manifest["format"] is None and "nothing was converted" in manifest["notes"][0]


def test_legacy_conversion_verified_against_the_pulled_hub_repo(served, tmp_path):
    assert zoo_cli(served, "pull", "PreFLMR_ViT-B").returncode == 0
    hub_dir = Path(zoo_cli(served, "path", "PreFLMR_ViT-B").stdout.strip())
    # --config without weights: the reference must be found in the cache by architecture
    config_only = tmp_path / "config_only"
    config_only.mkdir()
    for name in ("config.json", "query_tokenizer", "context_tokenizer"):
        src = hub_dir / name
        (shutil.copytree if src.is_dir() else shutil.copyfile)(src, config_only / name)
    out = tmp_path / "converted"
    result = zoo_cli(
        served,
        "convert",
        "--from",
        str(GOLDEN / "legacy.ckpt"),
        "--format",
        "flmr-legacy",
        "--config",
        str(config_only),
        "--out",
        str(out),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    result = zoo_cli(served, "verify", str(out), "--golden", str(GOLDEN), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert set(checks) == {"files", "weights", "encodings", "golden"}
    assert isinstance(checks["encodings"]["value"], float) and checks["encodings"]["value"] <= 1e-5
    assert all(c["ok"] for c in checks.values())

    weights = out / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x40  # flip a bit inside the last tensor
    weights.write_bytes(bytes(data))
    result = zoo_cli(served, "verify", str(out), "--json")
    assert result.returncode == 1
    failed = {c["name"] for c in json.loads(result.stdout)["checks"] if not c["ok"]}
    assert {"files", "weights", "encodings"} <= failed


AUTO_LOAD = r"""
import json, sys, torch
sys.modules["zoo"] = None  # the converted repository must carry everything it needs
from transformers import AutoModel, AutoTokenizer
path, golden = sys.argv[1], sys.argv[2]
model = AutoModel.from_pretrained(path, trust_remote_code=True).eval()
qt = AutoTokenizer.from_pretrained(path, subfolder="query_tokenizer", trust_remote_code=True)
ct = AutoTokenizer.from_pretrained(path, subfolder="context_tokenizer", trust_remote_code=True)
i, o = torch.load(golden + "/inputs.pt", weights_only=True), torch.load(golden + "/outputs.pt", weights_only=True)
q, d = qt(i["query_texts"]), ct(i["doc_texts"])
with torch.no_grad():
    Q = model.query(q["input_ids"], q["attention_mask"], pixel_values=i["pixel_values"]).late_interaction_output
    D = model.doc(d["input_ids"], d["attention_mask"])
    S = torch.stack([model.score(Q[k:k + 1], D.late_interaction_output, D.context_mask) for k in range(len(Q))])
print(json.dumps({"ids": torch.equal(q["input_ids"], i["query_input_ids"]),
                  "diff": max(float((Q - o["query_embeddings"]).abs().max()), float((S - o["scores"]).abs().max()))}))
"""


def test_converted_hub_repo_is_a_transformers_5_repository(served, tmp_path):
    """`zoo convert PreFLMR_ViT-B`: the original weights (linked) with working remote code, loaded without zoo."""
    result = zoo_cli(served, "convert", "PreFLMR_ViT-B", "--json")
    assert result.returncode == 0, result.stderr
    out = Path(json.loads(result.stdout)["path"])
    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_flmr.FLMRModelForRetrieval"
    assert (out / "modeling_flmr.py").read_text() == (ROOT / "zoo" / "models" / "flmr" / "modeling_flmr.py").read_text()
    assert (out / "model.safetensors").stat().st_nlink >= 2  # the original weights, hard-linked from the pull
    loaded = subprocess.run(
        [sys.executable, "-c", AUTO_LOAD, str(out), str(GOLDEN)],
        capture_output=True,
        text=True,
        env=served,
        cwd=tmp_path,
        timeout=300,
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    got = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert got["ids"] and got["diff"] <= 1e-5, got
