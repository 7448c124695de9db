"""zoo push end to end: each family's tiny model converted, pushed to the local Hub server, downloaded
with the real clients, and loaded where zoo cannot be imported; cards, offline verify, hostile uploads."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import ModelCard, snapshot_download

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "data" / "golden"
SPLADE_GOLDEN = json.loads((ROOT / "tests" / "data" / "splade_tiny_golden.json").read_text())

# Run a script where `import zoo` fails: the model must load from its own repository.
NO_ZOO = "import sys\nsys.modules['zoo'] = None\nsys.modules['converters'] = None\n"
# ... and where nothing beyond torch, transformers, huggingface_hub and safetensors (and what they need) imports
HUB_STACK_ONLY = NO_ZOO + "".join(
    f"sys.modules[{name!r}] = None\n"
    for name in ("tensorflow", "pandas", "sentence_transformers", "scipy", "sklearn", "ray", "ir_measures")
)
BLOCK_TF = (
    "import sys\nsys.modules['tensorflow'] = None\nfrom zoo.cli import main\nraise SystemExit(main(sys.argv[1:]))\n"
)


@pytest.fixture()
def hub(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    from hub_server import HubServer

    with HubServer(tmp_path / "hub") as server:
        yield server


@pytest.fixture()
def env(tmp_path, hub) -> dict[str, str]:
    values = {
        "ZOO_HOME": str(tmp_path / "zoo"),
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_CACHE": str(tmp_path / "hf" / "hub"),
        "HF_ENDPOINT": hub.url,
        "HF_TOKEN": "test-token",
        "HF_HUB_DISABLE_XET": "1",
        "ZOO_REGISTRY": "",
        "PYTHONPATH": str(ROOT),
    }
    return {**{k: v for k, v in os.environ.items() if k not in ("ZOO_OFFLINE", "HF_HUB_OFFLINE")}, **values}


def run(env: dict[str, str], *args: str, code: str | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "zoo", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, cwd=cwd, timeout=600)


def push(env: dict[str, str], target: Path | str, repo: str, *extra: str) -> dict:
    result = run(env, "push", str(target), "--repo", repo, "--json", *extra)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def download(env: dict[str, str], repo: str, tmp_path: Path) -> Path:
    return Path(snapshot_download(repo, endpoint=env["HF_ENDPOINT"], cache_dir=str(tmp_path / "downloads")))


def snippets(readme: Path) -> dict[str, str]:
    """The card's two usage blocks: with zoo and without zoo."""
    text = readme.read_text()
    with_zoo = re.search(r"With zoo.*?```python\n(.*?)```", text, re.S)
    without = re.search(r"Without zoo:\s*```python\n(.*?)```", text, re.S)
    assert with_zoo and without, text
    return {"zoo": with_zoo.group(1), "plain": without.group(1)}


def assert_portable_card(model_dir: Path, local_roots: list[Path]) -> ModelCard:
    """ModelCard.load works, the metadata a Hub user expects is there, no local path anywhere."""
    card = ModelCard.load(model_dir / "README.md")
    assert card.data.license and card.data.library_name and "zoo" in card.data.tags
    for name in ("README.md", "zoo_manifest.json"):
        text = (model_dir / name).read_text()
        for root in local_roots:
            assert str(root) not in text, f"{name} leaks the local path {root}"
    return card


def run_snippets(env: dict[str, str], readme: Path, tmp_path: Path) -> None:
    blocks = snippets(readme)
    plain = run(env, code=NO_ZOO + blocks["plain"], cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr[-3000:]
    with_zoo = run(env, code=blocks["zoo"], cwd=tmp_path)
    assert with_zoo.returncode == 0, with_zoo.stderr[-3000:]
    assert "True" in with_zoo.stdout


def verify_offline(env: dict[str, str], model_dir: Path) -> dict:
    """zoo verify on a downloaded copy with TensorFlow unimportable; the report as data."""
    result = run(env, "verify", str(model_dir), "--json", code=BLOCK_TF)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["files"]["verdict"] == "PASS" and checks["reference"]["verdict"] == "PASS", checks
    return checks


# --- TAPAS ----------------------------------------------------------------------------------------

TAPAS_PROBE = r"""
import json, sys, numpy as np, torch
from transformers import AutoConfig, AutoModel
path, golden = sys.argv[1], sys.argv[2]
config = AutoConfig.from_pretrained(path, trust_remote_code=True)
model = AutoModel.from_pretrained(path, trust_remote_code=True).eval()
i, o = np.load(golden + "/inputs.npz"), np.load(golden + "/outputs.npz")
names = ("segment_ids", "column_ids", "row_ids", "prev_label_ids", "column_ranks", "inv_column_ranks",
         "numeric_relations")
types = torch.tensor(np.stack([i[k] for k in names], -1)).long()
ids, mask = torch.tensor(i["input_ids"]).long(), torch.tensor(i["input_mask"]).long()
diffs = {}
with torch.no_grad():
    if "query_rep" in o.files:
        q = model.encode_questions(torch.tensor(i["question_input_ids"]).long(),
                                   torch.tensor(i["question_input_mask"]).long())
        t = model.encode_tables(ids, mask, types)
        diffs = {"query_rep": float(abs(q.numpy() - o["query_rep"]).max()),
                 "table_rep": float(abs(t.numpy() - o["table_rep"]).max())}
    else:
        out = model(ids, mask, types)
        diffs = {"logits_cls": float(abs(out.logits_cls.numpy() - o["logits_cls"]).max()),
                 "span_logits": float(abs(out.span_logits.numpy() - o["span_logits"]).max()),
                 "token_probabilities": float(abs(out.token_probabilities.numpy() - o["probabilities"]).max()),
                 "span_indexes": float(abs(out.span_indexes.numpy() - o["span_indexes"][0]).max())}
print(json.dumps({"class": type(model).__name__, "module": type(model).__module__, "config": type(config).__name__,
                  "diffs": diffs}))
"""


@pytest.mark.parametrize("name, fmt", [("retriever_proj8", "tapas-retriever"), ("reader_reset", "tapas-reader")])
def test_tapas_pushed_downloaded_and_loaded_without_zoo(env, tmp_path, name, fmt):
    source = tmp_path / "src" / name
    shutil.copytree(GOLDEN / "tapas" / name, source)
    out = tmp_path / "converted"
    converted = run(env, "convert", "--from", str(source), "--format", fmt, "--out", str(out), "--json")
    assert converted.returncode == 0, converted.stderr
    first = push(env, out, f"org/{name}")
    assert first["changed"] and first["verified"] and re.fullmatch(r"[0-9a-f]{40}", first["commit"])
    again = push(env, out, f"org/{name}")
    assert not again["changed"] and again["commit"] == first["commit"]  # nothing new: no commit

    copy = download(env, f"org/{name}", tmp_path)
    result = run(env, str(copy), str(GOLDEN / "tapas" / name), code=HUB_STACK_ONLY + TAPAS_PROBE, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["module"].startswith("transformers_modules.") and loaded["class"] in (
        "TapasDualEncoder",
        "TapasReader",
    )
    assert all(d <= 1e-5 for d in loaded["diffs"].values()), loaded

    card = assert_portable_card(copy, [tmp_path, ROOT])
    assert card.data.license == "other" and card.data.library_name == "transformers" and "tapas" in card.data.tags
    run_snippets(env, copy / "README.md", tmp_path)

    shutil.rmtree(source)  # the raw source is gone, TensorFlow cannot be imported: the stored proof still checks
    checks = verify_offline(env, copy)
    assert checks["encodings"]["verdict"] == "SKIP"  # needs the source: the stored reference stands in
    assert checks["weights"]["verdict"] == "PASS", checks  # against the source digests the manifest recorded

    hf_copy = tmp_path / "hf-cli"
    cli = subprocess.run(
        [str(Path(sys.executable).parent / "hf"), "download", f"org/{name}", "--local-dir", str(hf_copy)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cli.returncode == 0, cli.stderr
    assert (hf_copy / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()


# --- FLMR -----------------------------------------------------------------------------------------

FLMR_PROBE = r"""
import json, sys, torch
from transformers import AutoModel, AutoTokenizer
path, golden = sys.argv[1], sys.argv[2]
model = AutoModel.from_pretrained(path, trust_remote_code=True).eval()
qt = AutoTokenizer.from_pretrained(path, subfolder="query_tokenizer", trust_remote_code=True)
ct = AutoTokenizer.from_pretrained(path, subfolder="context_tokenizer", trust_remote_code=True)
i = torch.load(golden + "/inputs.pt", weights_only=True)
o = torch.load(golden + "/outputs.pt", weights_only=True)
q, d = qt(i["query_texts"]), ct(i["doc_texts"])
with torch.no_grad():
    Q = model.query(q["input_ids"], q["attention_mask"], pixel_values=i["pixel_values"]).late_interaction_output
    D = model.doc(d["input_ids"], d["attention_mask"])
    S = torch.stack([model.score(Q[k:k + 1], D.late_interaction_output, D.context_mask) for k in range(len(Q))])
print(json.dumps({
    "module": type(model).__module__,
    "ids": torch.equal(q["input_ids"], i["query_input_ids"]) and torch.equal(d["input_ids"], i["doc_input_ids"]),
    "queries": float((Q - o["query_embeddings"]).abs().max()),
    "docs": float((D.late_interaction_output - o["doc_embeddings"]).abs().max()),
    "mask": torch.equal(D.context_mask.bool(), o["doc_mask"].bool()),
    "scores": float((S - o["scores"]).abs().max()),
}))
"""


def test_flmr_legacy_pushed_downloaded_and_loaded_without_zoo(env, tmp_path):
    golden = GOLDEN / "flmr" / "preflmr"
    checkpoint, config = tmp_path / "src" / "legacy.ckpt", tmp_path / "src" / "hub"
    shutil.copytree(golden / "hf", config)
    shutil.copyfile(golden / "legacy.ckpt", checkpoint)
    out = tmp_path / "converted"
    converted = run(
        env,
        "convert",
        "--from",
        str(checkpoint),
        "--format",
        "flmr-legacy",
        "--config",
        str(config),
        "--out",
        str(out),
        "--json",
    )
    assert converted.returncode == 0, converted.stderr
    assert {c["name"]: c["verdict"] for c in json.loads(converted.stdout)["checks"]} == {
        "weights": "PASS",
        "encodings": "PASS",
    }  # vs the hub model given as --config
    push(env, out, "org/preflmr-tiny")

    copy = download(env, "org/preflmr-tiny", tmp_path)
    result = run(env, str(copy), str(golden), code=HUB_STACK_ONLY + FLMR_PROBE, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert got["module"].startswith("transformers_modules.") and got["ids"] and got["mask"]
    assert max(got["queries"], got["docs"], got["scores"]) <= 1e-5, got

    card = assert_portable_card(copy, [tmp_path, ROOT])
    assert "flmr" in card.data.tags and card.data.pipeline_tag
    run_snippets(env, copy / "README.md", tmp_path)
    shutil.rmtree(tmp_path / "src")
    verify_offline(env, copy)


# --- SPLADE ---------------------------------------------------------------------------------------

SPLADE_PROBE = r"""
import json, sys
from sentence_transformers import SparseEncoder
path, query, documents = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
model = SparseEncoder(path)
scores = model.similarity(model.encode_query([query]), model.encode_document(documents))
print(json.dumps([float(s) for s in scores[0]]))
"""


def test_splade_pushed_downloaded_and_loaded_without_zoo(env, tmp_path, hub, splade_repos):
    from test_splade import registry_entry, tiny_golden

    shutil.copytree(splade_repos["v5"], Path(hub.index.root) / "org" / "tiny-splade")
    registry = tmp_path / "registry.json"
    entry = registry_entry("tiny-splade", "org/tiny-splade", tiny_golden())
    registry.write_text(json.dumps({"schema_version": 1, "models": [entry]}))
    env = {**env, "ZOO_REGISTRY": str(registry)}
    converted = run(env, "convert", "tiny-splade", "--json")
    assert converted.returncode == 0, converted.stderr
    pushed = push(env, "tiny-splade", "org/splade-pushed")
    assert pushed["verified"]

    copy = download(env, "org/splade-pushed", tmp_path)
    result = run(
        env,
        str(copy),
        SPLADE_GOLDEN["query"],
        json.dumps(SPLADE_GOLDEN["documents"]),
        code=NO_ZOO + SPLADE_PROBE,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    assert max(abs(a - b) for a, b in zip(scores, SPLADE_GOLDEN["similarities"], strict=True)) <= 1e-5

    card = assert_portable_card(copy, [tmp_path, ROOT])
    assert card.data.license == "apache-2.0" and card.data.library_name == "sentence-transformers"
    assert card.data.base_model == "org/tiny-splade"
    run_snippets(env, copy / "README.md", tmp_path)


# --- refusals and hostile or faulty uploads --------------------------------------------------------


@pytest.fixture()
def converted_tapas(env, tmp_path) -> Path:
    out = tmp_path / "converted"
    result = run(
        env,
        "convert",
        "--from",
        str(GOLDEN / "tapas" / "retriever_proj8"),
        "--format",
        "tapas-retriever",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    return out


def test_push_refuses_a_model_that_fails_verify_unless_forced(env, tmp_path, converted_tapas):
    weights = converted_tapas / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    refused = run(env, "push", str(converted_tapas), "--repo", "org/broken", "--json")
    assert refused.returncode == 1 and "files" in refused.stderr and "--force" in refused.stderr
    forced = push(env, converted_tapas, "org/broken", "--force")
    assert not forced["verified"]
    card = download(env, "org/broken", tmp_path) / "README.md"
    assert "Unverified upload" in card.read_text()


def test_push_without_a_token_is_a_clear_error(env, tmp_path, hub, converted_tapas):
    no_token = {k: v for k, v in env.items() if k != "HF_TOKEN"}
    result = run(no_token, "push", str(converted_tapas), "--repo", "org/anonymous", "--json")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "UploadError" and error["status"] == 401 and "HF_TOKEN" in error["message"]
    assert not (Path(hub.index.root) / "org" / "anonymous").exists()


def test_upload_paths_are_validated(hub, tmp_path):
    headers = {"Authorization": "Bearer t"}
    created = httpx2.post(
        f"{hub.url}/api/repos/create", json={"name": "target", "organization": "org"}, headers=headers
    )
    assert created.status_code == 200
    for path in ("../escape.txt", "/etc/passwd", "a/../../x", ".revisions/b/x", "a\\b"):
        line = json.dumps({"key": "file", "value": {"path": path, "content": "eA==", "encoding": "base64"}})
        body = json.dumps({"key": "header", "value": {"summary": "x"}}) + "\n" + line
        answer = httpx2.post(
            f"{hub.url}/api/models/org/target/commit/main",
            content=body.encode(),
            headers={**headers, "Content-Type": "application/x-ndjson"},
        )
        assert answer.status_code == 400, (path, answer.text)
        pre = httpx2.post(
            f"{hub.url}/api/models/org/target/preupload/main",
            json={"files": [{"path": path, "size": 1, "sample": "eA=="}]},
            headers=headers,
        )
        assert pre.status_code == 400, (path, pre.text)
    unauthorized = httpx2.post(f"{hub.url}/api/repos/create", json={"name": "x", "organization": "org"})
    assert unauthorized.status_code == 401
    root = Path(hub.index.root)
    assert not (root.parent / "escape.txt").exists() and not list((root / "org" / "target").rglob("*"))


def test_a_dropped_lfs_upload_leaves_no_commit_and_a_rerun_succeeds(env, tmp_path, hub, converted_tapas):
    hub.drop_lfs_uploads(100)  # every attempt, retries included, is hung up half-way
    failed = run(env, "push", str(converted_tapas), "--repo", "org/dropped", "--json")
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert json.loads(failed.stdout)["error"]["type"] == "UploadError"
    root = Path(hub.index.root)
    assert not [p for p in (root / "org" / "dropped").rglob("*") if p.is_file()]  # no partial commit
    assert not list((root / ".lfs").glob("*.incomplete"))  # no half-written object
    hub.drop_lfs_uploads(0)
    pushed = push(env, converted_tapas, "org/dropped")
    copy = download(env, "org/dropped", tmp_path)
    assert (
        pushed["changed"]
        and (copy / "model.safetensors").read_bytes() == (converted_tapas / "model.safetensors").read_bytes()
    )
