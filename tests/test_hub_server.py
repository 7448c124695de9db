"""scripts/hub_server.py speaks enough of the Hub for huggingface_hub 2.x: model info, tree with
git/LFS oids, resolve with the Hub's headers and Range, the Hub's error codes, and the test hooks."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import RemoteEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.hf_api import RepoFile, RepoFolder

REPO = "org/tiny-repo"
ROOT_DIR = Path(__file__).resolve().parent.parent


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def request(url: str, method: str = "GET", headers: dict[str, str] | None = None):
    """(status, headers, body) without raising on 4xx."""
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def test_huggingface_hub_downloads_against_the_server(hub_server, hub_root, tmp_path):
    url = hub_server.url
    files = {
        p.relative_to(hub_root / REPO).as_posix(): p.read_bytes()
        for p in (hub_root / REPO).rglob("*")
        if p.is_file() and ".revisions" not in p.parts
    }

    snapshot = Path(snapshot_download(REPO, endpoint=url, cache_dir=tmp_path / "c1"))
    assert snapshot.name == hub_server.commit(REPO)
    assert {rel: (snapshot / rel).read_bytes() for rel in files} == files

    one = hf_hub_download(REPO, "docs/deep/notes.txt", revision="v1", endpoint=url, cache_dir=tmp_path / "c2")
    assert Path(one).read_text() == "revision seed 1\n"
    assert Path(one).parent.parent.parent.name == hub_server.commit(REPO, "v1")


def test_tree_lists_git_and_lfs_oids(hub_server, hub_root):
    api = HfApi(endpoint=hub_server.url)
    tree = list(api.list_repo_tree(REPO, recursive=True))
    folders = sorted(f.path for f in tree if isinstance(f, RepoFolder))
    assert folders == ["1_Pooling", "docs", "docs/deep"]
    by_path = {f.path: f for f in tree if isinstance(f, RepoFile)}
    weights = (hub_root / REPO / "model.safetensors").read_bytes()
    lfs = by_path["model.safetensors"].lfs
    assert lfs is not None and lfs.sha256 == hashlib.sha256(weights).hexdigest() and lfs.size == len(weights)
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{lfs.sha256}\nsize {len(weights)}\n"
    assert lfs.pointer_size == len(pointer) and by_path["model.safetensors"].blob_id == git_sha1(pointer.encode())
    config = (hub_root / REPO / "config.json").read_bytes()
    assert by_path["config.json"].lfs is None and by_path["config.json"].blob_id == git_sha1(config)
    assert by_path["tokenizer.json"].lfs is not None  # above the 1 KB threshold

    top = {f.path for f in api.list_repo_tree(REPO)}
    assert "docs" in top and "docs/deep" not in top and "config.json" in top
    nested = list(api.list_repo_tree(REPO, path_in_repo="docs/deep", expand=True))
    assert [f.path for f in nested] == ["docs/deep/notes.txt"] and nested[0].last_commit is not None

    info = api.model_info(REPO, files_metadata=True)
    assert info.sha == hub_server.commit(REPO) and {s.rfilename for s in info.siblings} == set(by_path)
    assert api.model_info(REPO, revision="v1").sha == hub_server.commit(REPO, "v1")
    assert {b.name for b in api.list_repo_refs(REPO).branches} == {"main", "v1"}


def test_errors_carry_the_hub_error_codes(hub_server):
    api = HfApi(endpoint=hub_server.url)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("org/missing")
    with pytest.raises(RevisionNotFoundError):
        api.model_info(REPO, revision="nope")
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(REPO, "absent.bin", endpoint=hub_server.url, cache_dir="/nonexistent-never-written")
    status, headers, _ = request(f"{hub_server.url}/{REPO}/resolve/main/absent.txt", "HEAD")
    assert status == 404 and headers["X-Error-Code"] == "EntryNotFound"
    assert headers["X-Repo-Commit"] == hub_server.commit(REPO)
    status, headers, _ = request(f"{hub_server.url}/api/models/{REPO}/tree/main/no/such/dir")
    assert status == 404 and headers["X-Error-Code"] == "EntryNotFound"


def test_resolve_headers_and_range(hub_server, hub_root):
    weights = (hub_root / REPO / "model.safetensors").read_bytes()
    url = f"{hub_server.url}/{REPO}/resolve/main/model.safetensors"
    status, headers, body = request(url, "HEAD")
    assert status == 200 and body == b""
    sha = hashlib.sha256(weights).hexdigest()
    assert headers["ETag"] == f'"{sha}"' and headers["X-Linked-Etag"] == f'"{sha}"'
    assert headers["X-Linked-Size"] == headers["Content-Length"] == str(len(weights))
    assert headers["X-Repo-Commit"] == hub_server.commit(REPO) and "X-Xet-Hash" not in headers

    status, headers, body = request(url, headers={"Range": "bytes=100-"})
    assert status == 206 and body == weights[100:]
    assert headers["Content-Range"] == f"bytes 100-{len(weights) - 1}/{len(weights)}"
    assert request(url, headers={"Range": "bytes=-10"})[2] == weights[-10:]
    assert request(url, headers={"Range": f"bytes={len(weights)}-"})[0] == 416

    status, headers, _ = request(f"{hub_server.url}/{REPO}/resolve/main/config.json", "HEAD")
    config = (hub_root / REPO / "config.json").read_bytes()
    assert headers["ETag"] == f'"{git_sha1(config)}"' and "X-Linked-Etag" not in headers


def test_tamper_hook_flips_one_byte_and_keeps_the_advertised_oid(hub_server, hub_root):
    weights = (hub_root / REPO / "model.safetensors").read_bytes()
    url = f"{hub_server.url}/{REPO}/resolve/main/model.safetensors"
    head_before = request(url, "HEAD")[1]["ETag"]
    hub_server.tamper(REPO, "model.safetensors", offset=7)
    status, headers, body = request(url)
    assert status == 200 and headers["ETag"] == head_before and len(body) == len(weights)
    assert [i for i, (a, b) in enumerate(zip(body, weights, strict=False)) if a != b] == [7]
    hub_server.clear_tampering()
    assert request(url)[2] == weights


def test_stats_count_requests_and_downloads(hub_server):
    hub_server.reset_stats()
    request(f"{hub_server.url}/api/models/{REPO}")
    request(f"{hub_server.url}/{REPO}/resolve/main/config.json")
    request(f"{hub_server.url}/{REPO}/resolve/main/config.json", "HEAD")
    stats = json.loads(request(f"{hub_server.url}/_stats")[2])
    assert stats == hub_server.stats()
    assert stats["counts"] == {"GET model_info": 1, "GET resolve": 1, "HEAD resolve": 1}
    assert stats["downloads"] == {f"{REPO}/config.json": 1} and len(stats["log"]) == 3


def test_commit_sha_is_derived_from_the_tree(hub_server, hub_root):
    other = type(hub_server)(hub_root)  # a second server over the same directory
    try:
        before = hub_server.commit(REPO)
        assert other.commit(REPO) == before != other.commit(REPO, "v1")
        assert other.url.startswith("http://127.0.0.1:") and other.port != hub_server.port
        (hub_root / REPO / "config.json").write_text("{}")
        assert other.commit(REPO) == hub_server.commit(REPO) != before
    finally:
        other.stop()


def test_cli_binds_loopback_and_prints_its_port(hub_root):
    proc = subprocess.Popen(
        [sys.executable, str(ROOT_DIR / "scripts" / "hub_server.py"), str(hub_root), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line
        url = line.split()[-1]
        status, _, body = request(f"{url}/api/models/{REPO}")
        assert status == 200 and json.loads(body)["id"] == REPO
    finally:
        proc.terminate()
        proc.wait(10)


SPLADE_SCRIPT = """
import sys, tempfile
from pathlib import Path
from sentence_transformers import SparseEncoder
from sentence_transformers.sparse_encoder.models import MLMTransformer, SpladePooling
from transformers import AutoTokenizer, BertTokenizerFast, DistilBertConfig, DistilBertForMaskedLM

tmp = Path(tempfile.mkdtemp())
(tmp / "vocab.txt").write_text("\\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world"]))
BertTokenizerFast(vocab_file=str(tmp / "vocab.txt")).save_pretrained(tmp / "mlm")
DistilBertForMaskedLM(DistilBertConfig(vocab_size=7, dim=8, hidden_dim=16, n_layers=1, n_heads=2,
                                       max_position_embeddings=16)).save_pretrained(tmp / "mlm")
SparseEncoder(modules=[MLMTransformer(str(tmp / "mlm")), SpladePooling("max")]).save_pretrained(sys.argv[1])

model = SparseEncoder("org/tiny-splade")  # by repo id, through HF_ENDPOINT
assert model.encode(["hello world"]).shape == (1, 7)
AutoTokenizer.from_pretrained("org/tiny-splade")
print("loaded")
"""


def test_sentence_transformers_and_transformers_load_by_repo_id(hub_server, hub_root, tmp_path):
    env = {
        **os.environ,
        "HF_ENDPOINT": hub_server.url,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }
    env.pop("HF_HUB_CACHE", None)
    env.pop("HF_HUB_OFFLINE", None)
    out = subprocess.run(
        [sys.executable, "-c", SPLADE_SCRIPT, str(hub_root / "org" / "tiny-splade")],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0 and "loaded" in out.stdout, out.stderr[-3000:]
    statuses = {(e["method"], e["kind"], e["status"]) for e in hub_server.stats()["log"]}
    assert ("HEAD", "resolve", 404) in statuses  # optional files probed and answered EntryNotFound
    assert all(status in (200, 404) for _, _, status in statuses)


def test_hf_cli_download_and_cache_verify(hub_server, tmp_path):
    hf_cli = Path(sys.executable).with_name("hf")
    if not hf_cli.exists():
        pytest.skip("the hf CLI is not installed next to this interpreter")
    env = {**os.environ, "HF_ENDPOINT": hub_server.url, "HF_HOME": str(tmp_path / "hf")}
    env.pop("HF_HUB_CACHE", None)
    env.pop("HF_HUB_OFFLINE", None)
    for args in (["download", REPO], ["cache", "verify", REPO]):
        out = subprocess.run([str(hf_cli), *args], env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
    assert "checksums match" in out.stdout.lower() or "verified" in out.stdout.lower()
