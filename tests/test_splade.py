"""SPLADE end to end against the local Hub server: pull, path, convert (adopt), load offline, verify.

Tiny repos come from tests/splade_factory.py: the v5 layout (what sentence-transformers v5 wrote
for the registry's SPLADE repo), the v6 layout, and a pytorch_model.bin-only repo. The tiny
model's golden similarities in tests/data were computed once by the factory's plain-transformers
path; nothing here recomputes them.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import hub_registry_entry
from splade_factory import vocabulary

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = json.loads((Path(__file__).parent / "data" / "splade_tiny_golden.json").read_text())
REPOS = {  # model id -> (hub repo, generated repo in the splade_repos fixture)
    "tiny-splade": ("org/tiny-splade", "v5"),
    "tiny-splade-v6": ("org/tiny-splade-v6", "v6"),
    "tiny-splade-bin": ("org/tiny-splade-bin", "v5-bin"),
    "tiny-splade-tampered": ("org/tiny-splade-tampered", "v5"),
    "tiny-splade-offline": ("org/tiny-splade-offline", "v5"),
}
REAL_ID = "splade-distilbert-base-uncased-msmarco-mnrl"


def registry_entry(model_id: str, repo: str, golden: list[dict] | None = None) -> dict:
    entry = hub_registry_entry(model_id, repo, "main")
    entry["attributes"]["text_encoder"] = "tiny DistilBertForMaskedLM"
    entry["paper"]["title"] = "tiny SPLADE"
    entry["golden"] = golden or []
    return entry


def tiny_golden(values: list[float] | None = None) -> list[dict]:
    return [
        {
            "name": GOLDEN["name"],
            "kind": "similarity",
            "inputs": {"query": GOLDEN["query"], "documents": GOLDEN["documents"]},
            "values": values or GOLDEN["similarities"],
            "tolerance": GOLDEN["tolerance"],
            "provenance": GOLDEN["provenance"],
        }
    ]


def write_registry(path: Path, golden_values: list[float] | None = None) -> Path:
    models = [
        registry_entry(mid, repo, tiny_golden(golden_values) if mid == "tiny-splade" else None)
        for mid, (repo, _) in REPOS.items()
    ]
    path.write_text(json.dumps({"schema_version": 1, "models": models}))
    return path


@pytest.fixture(scope="module")
def splade_hub(tmp_path_factory: pytest.TempPathFactory, splade_repos: dict[str, Path]) -> Iterator[dict]:
    """Tiny SPLADE repos served by the local Hub server; the env (as a dict) of a private cache and registry."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from hub_server import HubServer

    base = tmp_path_factory.mktemp("splade")
    for repo, generated in REPOS.values():
        shutil.copytree(splade_repos[generated], base / "hub" / repo)
    with HubServer(base / "hub") as server:
        server.tamper("org/tiny-splade-tampered", "model.safetensors", 4000)
        env = {
            "HF_ENDPOINT": server.url,
            "HF_HOME": str(base / "hf"),
            "HF_HUB_CACHE": str(base / "hf" / "hub"),
            "ZOO_HOME": str(base / "zoo"),
            "ZOO_REGISTRY": str(write_registry(base / "registry.json")),
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
        }
        yield {"env": env, "base": base, "server": server}


@pytest.fixture()
def splade_env(splade_hub: dict, monkeypatch: pytest.MonkeyPatch) -> dict:
    for name, value in splade_hub["env"].items():
        monkeypatch.setenv(name, value)
    for name in ("ZOO_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    return splade_hub


def zoo_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("ZOO_OFFLINE", "HF_HUB_OFFLINE")} | env
    return subprocess.run(
        [sys.executable, "-m", "zoo", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=full,
        timeout=120,
        check=False,
    )


def checks_of(stdout: str) -> dict[str, dict]:
    return {c["name"]: c for c in json.loads(stdout)["checks"]}


# --- the CLI flow: pull, path, convert, verify ---------------------------------------------


def test_pull_path_convert_verify_v5_repo(splade_env):
    env = splade_env["env"]
    pulled = zoo_cli(env, "pull", "tiny-splade", "--json")
    assert pulled.returncode == 0, pulled.stderr
    snapshot = Path(json.loads(pulled.stdout)[0]["path"])
    assert (snapshot / "modules.json").is_file() and (snapshot / "model.safetensors").is_file()
    path = zoo_cli(env, "path", "tiny-splade")
    assert path.returncode == 0 and Path(path.stdout.strip()) == snapshot  # pulled, not yet converted

    converted = zoo_cli(env, "convert", "tiny-splade", "--json")
    assert converted.returncode == 0, converted.stderr
    out = json.loads(converted.stdout)
    assert out["format"] is None and any("already safetensors" in n for n in out["notes"])
    model_dir = Path(out["path"])
    manifest = json.loads((model_dir / "zoo_manifest.json").read_text())
    assert manifest["model_id"] == "tiny-splade" and "1_SpladePooling/config.json" in manifest["files"]
    assert Path(zoo_cli(env, "path", "tiny-splade").stdout.strip()) == model_dir

    verified = zoo_cli(env, "verify", "tiny-splade", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    checks = checks_of(verified.stdout)
    assert set(checks) == {"files", "encodings", "golden"} and all(c["ok"] for c in checks.values())
    enc = checks["encodings"]
    assert enc["value"] <= enc["tolerance"] == 1e-5 and enc["data"]["layout"] == "v5"
    assert min(enc["data"]["cosine"].values()) > 0.99999
    sparsity = enc["data"]["sparsity"]
    assert 0 < sparsity["mean_active_dims"]["query"] < len(vocabulary())
    assert len(sparsity["active_dims"]["document"]) == enc["data"]["probe"]["documents"]
    assert checks["golden"]["tolerance"] == GOLDEN["tolerance"]


def test_tampering_one_weight_fails_verify(splade_env, tmp_path):
    import zoo

    model_dir = zoo.resolve("tiny-splade")
    copy = tmp_path / "copy"
    shutil.copytree(model_dir, copy)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    header_len = struct.unpack("<Q", data[:8])[0]
    data[8 + header_len + 12] ^= 0x01  # one bit of one float of the first tensor
    weights.write_bytes(bytes(data))
    result = zoo_cli(splade_env["env"], "verify", str(copy), "--json")
    assert result.returncode == 1
    checks = checks_of(result.stdout)
    assert not checks["files"]["ok"] and "model.safetensors" in checks["files"]["detail"]
    assert json.loads(result.stdout)["ok"] is False


def test_tampered_download_is_refused(splade_env):
    result = zoo_cli(splade_env["env"], "pull", "tiny-splade-tampered")
    assert result.returncode == 1 and "do not match" in result.stderr


# --- load, offline --------------------------------------------------------------------------


def test_load_returns_sparse_encoder_from_cache_offline(splade_env, monkeypatch):
    from sentence_transformers import SparseEncoder

    import zoo
    from zoo import cache

    snapshot = zoo.pull("tiny-splade-offline")  # pulled only: nothing converted yet
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: any request would fail
    splade_env["server"].reset_stats()
    model = zoo.load("tiny-splade-offline")
    assert isinstance(model, SparseEncoder)
    model_dir = cache.paths("tiny-splade-offline").converted_dir
    assert zoo.resolve("tiny-splade-offline") == model_dir and (model_dir / "zoo_manifest.json").is_file()
    assert (model_dir / "model.safetensors").samefile(snapshot / "model.safetensors")  # linked, not copied
    scores = model.similarity(model.encode_query([GOLDEN["query"]]), model.encode_document(GOLDEN["documents"]))
    assert scores.shape == (1, 3)
    diffs = [abs(float(a) - b) for a, b in zip(scores[0], GOLDEN["similarities"], strict=True)]
    assert max(diffs) <= GOLDEN["tolerance"]
    assert isinstance(zoo.load(model_dir), SparseEncoder)  # a directory works too
    assert splade_env["server"].stats()["requests"] == 0


def test_tokenizer_ids_round_trip(splade_env):
    from transformers import AutoTokenizer

    import zoo

    tokenizer = AutoTokenizer.from_pretrained(zoo.resolve("tiny-splade"), local_files_only=True)
    vocab = vocabulary()
    assert tokenizer.convert_tokens_to_ids(list(vocab)) == list(vocab.values())
    assert tokenizer.convert_ids_to_tokens(list(vocab.values())) == list(vocab)
    text = "canine ultrasound cost of a vet procedure"
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.unk_token_id not in ids and len(ids) == len(text.split()) + 2
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    spelled = tokenizer("zebra")["input_ids"][1:-1]  # not a whole word: WordPiece spells it, no [UNK]
    assert tokenizer.convert_ids_to_tokens(spelled) == ["z", "##e", "##b", "##r", "##a"]


# --- golden ---------------------------------------------------------------------------------


def test_registry_golden_fails_when_a_stored_value_moves_past_tolerance(splade_env, tmp_path, monkeypatch):
    import zoo

    zoo.resolve("tiny-splade")
    moved = list(GOLDEN["similarities"])
    moved[1] += 2 * GOLDEN["tolerance"]
    monkeypatch.setenv("ZOO_REGISTRY", str(write_registry(tmp_path / "moved.json", moved)))
    report = zoo.verify("tiny-splade")
    checks = {c.name: c for c in report.checks}
    assert not report.ok and not checks["golden"].ok
    assert checks["files"].ok and checks["encodings"].ok
    assert 1.5 * GOLDEN["tolerance"] < checks["golden"].value < 2.5 * GOLDEN["tolerance"]


def test_golden_dir(splade_env, tmp_path):
    import zoo
    from zoo.checks import splade

    model_dir = zoo.resolve("tiny-splade")
    case = {
        "name": "tiny",
        "query": GOLDEN["query"],
        "documents": GOLDEN["documents"],
        "similarities": GOLDEN["similarities"],
    }
    (tmp_path / "golden.json").write_text(json.dumps({"tolerance": GOLDEN["tolerance"], "cases": [case]}))
    assert splade.golden(model_dir, tmp_path).ok
    case["similarities"] = [v + 0.01 for v in GOLDEN["similarities"]]
    (tmp_path / "golden.json").write_text(json.dumps({"tolerance": GOLDEN["tolerance"], "cases": [case]}))
    assert not splade.golden(model_dir, tmp_path).ok
    (tmp_path / "golden.json").unlink()
    missing = splade.golden(model_dir, tmp_path)
    assert not missing.ok and missing.value == "not runnable"


def test_real_card_golden_is_recorded_verbatim_and_runs(splade_env):
    """The card's three documents are in the registry, so the check runs: on the tiny model it must fail."""
    import zoo
    from zoo.checks import splade
    from zoo.checks.report import Check, Report

    entry = zoo.get(REAL_ID)
    golden = entry.golden[0]
    assert golden.values == (33.7473, 25.6638, 0.2965) and golden.tolerance == 1e-3
    assert golden.inputs["query"] == "canine ultrasound cost"
    assert len(golden.inputs["documents"]) == 3 and all(isinstance(d, str) and d for d in golden.inputs["documents"])
    check = splade.registry_golden(zoo.resolve("tiny-splade"), entry.golden)
    assert check.ran is True and check.verdict == "FAIL" and check.value > check.tolerance  # not the real weights
    assert not Report("card golden on other weights", (check,)).ok
    skipped = Check("golden", ok=True, ran=False, value="not run")
    assert skipped.verdict == "SKIP" and not Report("only skipped", (skipped,)).ok  # a skip never passes a report


# --- other layouts --------------------------------------------------------------------------


def test_v6_layout_pulls_loads_and_verifies(splade_env):
    from sentence_transformers import SparseEncoder

    import zoo

    report = zoo.verify("tiny-splade-v6")
    assert report.ok, report.to_dict()
    model_dir = zoo.resolve("tiny-splade-v6")
    modules = json.loads((model_dir / "modules.json").read_text())
    assert modules[0]["type"] == "sentence_transformers.base.modules.transformer.Transformer"
    assert {c.name: c for c in report.checks}["encodings"].data["layout"] == "v6"
    assert isinstance(zoo.load("tiny-splade-v6"), SparseEncoder)


def test_bin_only_repo_is_converted_to_safetensors_on_adopt(splade_env):
    import torch
    from safetensors.torch import load_file

    import zoo

    model_dir = zoo.convert("tiny-splade-bin")
    manifest = json.loads((model_dir / "zoo_manifest.json").read_text())
    assert "model.safetensors" in manifest["files"] and "pytorch_model.bin" not in manifest["files"]
    assert not (model_dir / "pytorch_model.bin").exists()
    assert "converted pytorch_model.bin to model.safetensors" in manifest["notes"][0]
    source = torch.load(zoo.pull("tiny-splade-bin") / "pytorch_model.bin", weights_only=True)
    converted = load_file(model_dir / "model.safetensors")
    assert converted.keys() == source.keys()
    assert all(torch.equal(converted[k], source[k]) for k in source)
    report = zoo.verify("tiny-splade-bin")
    assert report.ok, report.to_dict()
