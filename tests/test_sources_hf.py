"""zoo.sources.hf against the local Hub server: every file hash-verified against the repo's oids,
tampering caught (on the wire and in the cache), offline use without network, one download under
concurrency."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from zoo import cache
from zoo.errors import DownloadError, IntegrityError, OfflineError
from zoo.sources import hf

REPO = "org/tiny-repo"
LFS_FILES = {"model.safetensors", "tokenizer.json", "vocab.txt"}  # weights suffix or > 1 KB
ROOT_DIR = Path(__file__).resolve().parent.parent


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def served_files(repo_dir: Path) -> dict[str, bytes]:
    return {
        p.relative_to(repo_dir).as_posix(): p.read_bytes()
        for p in repo_dir.rglob("*")
        if p.is_file() and ".revisions" not in p.parts
    }


def resolve_gets(server) -> dict[str, int]:
    return {k.split("/", 2)[2]: v for k, v in server.stats()["downloads"].items()}


def blob_of(snapshot: Path, rel: str) -> Path:
    return (snapshot / rel).resolve()


def flip_byte(path: Path, offset: int = 10) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_pull_lands_in_hf_cache_and_every_file_is_verified(hub_server, hub_env, hub_root, hub_entry):
    entry = hub_entry()
    snapshot = hf.pull(entry)
    commit = hub_server.commit(REPO)

    assert snapshot == hf.snapshot_dir(REPO, commit)
    assert snapshot.is_relative_to(Path(hub_env["HF_HUB_CACHE"]).resolve())
    expected = served_files(hub_root / REPO)
    receipt = cache.read_receipt(entry.id)
    assert receipt["kind"] == "hf" and receipt["repo"] == REPO and receipt["commit"] == commit
    assert receipt["revision"] == "main" and receipt["path"] == str(snapshot)
    assert set(receipt["files"]) == set(expected)
    for rel, data in expected.items():
        info = receipt["files"][rel]
        assert (snapshot / rel).read_bytes() == data
        assert info["sha256"] == hashlib.sha256(data).hexdigest() and info["size"] == len(data)
        assert info["lfs"] == (rel in LFS_FILES)
        assert info["oid"] == (hashlib.sha256(data).hexdigest() if rel in LFS_FILES else git_sha1(data))
    assert resolve_gets(hub_server) == dict.fromkeys(expected, 1)
    assert hf.files_check(entry) == [] and hf.cached(entry) == snapshot
    # a branch revision is recorded in refs/ so loading by repo id works with HF_HUB_OFFLINE=1
    assert (snapshot.parent.parent / "refs" / "main").read_text() == commit


def test_second_pull_rehashes_without_network(hub_server, hub_env, hub_entry):
    entry = hub_entry()
    first = hf.pull(entry)
    hub_server.reset_stats()
    assert hf.pull(entry) == first
    assert hub_server.stats()["requests"] == 0


def test_pinned_commit_downloads_that_commit(hub_server, hub_env, hub_root, hub_entry):
    pinned = hub_server.commit(REPO, "v1")
    assert pinned != hub_server.commit(REPO)
    entry = hub_entry(revision=pinned)
    snapshot = hf.pull(entry)

    assert snapshot.name == pinned
    v1 = served_files(hub_root / REPO / ".revisions" / "v1")
    assert {rel: (snapshot / rel).read_bytes() for rel in v1} == v1
    counts = hub_server.stats()["counts"]
    assert "GET model_info" not in counts  # a commit sha needs no resolution
    assert not (snapshot.parent.parent / "refs").exists()  # pinned downloads write no refs
    assert cache.read_receipt(entry.id)["commit"] == pinned


def test_branch_revision_resolves_to_its_commit(hub_server, hub_env, hub_entry):
    entry = hub_entry(revision="v1")
    snapshot = hf.pull(entry)
    assert snapshot.name == hub_server.commit(REPO, "v1")
    assert cache.read_receipt(entry.id)["revision"] == "v1"


@pytest.mark.parametrize("rel, algorithm", [("model.safetensors", "sha256"), ("config.json", "git-sha1")])
def test_tampered_download_is_rejected_and_not_kept(hub_server, hub_env, hub_root, hub_entry, rel, algorithm):
    entry = hub_entry()
    data = (hub_root / REPO / rel).read_bytes()
    good = hashlib.sha256(data).hexdigest() if algorithm == "sha256" else git_sha1(data)
    hub_server.tamper(REPO, rel, offset=len(data) // 2)  # same size and advertised oid: the HF client accepts it

    with pytest.raises(IntegrityError) as err:
        hf.pull(entry)
    assert rel in str(err.value) and algorithm in str(err.value)
    assert err.value.expected == good and err.value.actual != good
    assert cache.read_receipt(entry.id) is None and hf.cached(entry) is None
    snapshot = hf.snapshot_dir(REPO, hub_server.commit(REPO))
    assert not (snapshot / rel).exists()
    corrupt = bytearray(data)
    corrupt[len(data) // 2] ^= 0xFF
    blobs = (snapshot.parent.parent / "blobs").iterdir()
    assert hashlib.sha256(corrupt).hexdigest() not in {hashlib.sha256(b.read_bytes()).hexdigest() for b in blobs}

    hub_server.clear_tampering()
    assert hf.pull(entry) == snapshot
    assert (snapshot / rel).read_bytes() == data


def test_blob_tampered_in_cache_is_detected_by_files_check_and_next_pull(hub_server, hub_env, hub_entry):
    entry = hub_entry()
    snapshot = hf.pull(entry)
    flip_byte(blob_of(snapshot, "model.safetensors"))

    problems = hf.files_check(entry)
    assert len(problems) == 1 and problems[0].startswith("changed: model.safetensors")
    assert hf.files_check(cache.read_receipt(entry.id)) == problems

    with pytest.raises(IntegrityError, match="model.safetensors"):
        hf.pull(entry)
    assert cache.read_receipt(entry.id) is None  # nothing bad is kept as good
    assert not (snapshot / "model.safetensors").exists()

    assert hf.pull(entry) == snapshot  # the next pull downloads the removed file again
    assert hf.files_check(entry) == []
    assert resolve_gets(hub_server)["model.safetensors"] == 2


def test_force_redownloads_a_tampered_cache(hub_server, hub_env, hub_entry):
    entry = hub_entry()
    snapshot = hf.pull(entry)
    flip_byte(blob_of(snapshot, "vocab.txt"))
    flip_byte(blob_of(snapshot, "config.json"), offset=2)
    assert len(hf.files_check(entry)) == 2

    assert hf.pull(entry, force=True) == snapshot
    assert hf.files_check(entry) == []
    assert set(resolve_gets(hub_server).values()) == {2}


def test_files_check_reports_missing_and_unpulled(hub_server, hub_env, hub_entry):
    entry = hub_entry()
    assert hf.files_check(entry) == ["not pulled: no receipt for 'tiny-repo'"]
    snapshot = hf.pull(entry)
    (snapshot / "1_Pooling" / "config.json").unlink()
    assert hf.files_check(entry) == ["missing: 1_Pooling/config.json"]
    assert hf.cached(entry) is None
    hub_server.reset_stats()
    assert hf.pull(entry) == snapshot  # a missing file is simply fetched again ...
    assert hf.files_check(entry) == []
    counts = hub_server.stats()["counts"]  # ... here relinked from its blob after one HEAD
    assert counts["HEAD resolve"] == 1 and "GET resolve" not in counts


def test_unknown_repo_and_revision_are_clear_errors(hub_server, hub_env, hub_entry):
    with pytest.raises(DownloadError, match=r"'org/no-such-repo' not found .*check source.repo"):
        hf.pull(hub_entry(repo="org/no-such-repo", model_id="ghost"))
    with pytest.raises(DownloadError, match="revision 'no-such-branch' not found"):
        hf.pull(hub_entry(revision="no-such-branch"))
    assert cache.read_receipt("ghost") is None


def test_unreachable_endpoint_is_a_download_error(hub_env, hub_entry, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: connection refused
    with pytest.raises(DownloadError, match="cannot reach"):
        hf.pull(hub_entry())


def test_offline_with_nothing_cached_fails_at_once(hub_server, hub_env, hub_entry, monkeypatch):
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(OfflineError, match="org/tiny-repo") as err:
        hf.pull(hub_entry())
    assert time.monotonic() - start < 1.0
    assert err.value.missing == ["org/tiny-repo@main"]
    assert hub_server.stats()["requests"] == 0


def test_offline_with_receipt_needs_no_server(hub_server, hub_env, hub_entry, monkeypatch):
    entry = hub_entry()
    snapshot = hf.pull(entry)
    hub_server.reset_stats()
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert hf.pull(entry) == snapshot
    assert hf.cached(entry) == snapshot
    assert hub_server.stats()["requests"] == 0

    (snapshot / "vocab.txt").unlink()
    with pytest.raises(OfflineError, match="vocab.txt") as err:
        hf.pull(entry)
    assert err.value.missing == ["vocab.txt"]
    assert hub_server.stats()["requests"] == 0


def test_concurrent_pulls_in_threads_download_once(hub_server, hub_env, hub_root, hub_entry):
    entry = hub_entry()
    results: list[Path | BaseException] = []

    def worker() -> None:
        try:
            results.append(hf.pull(entry))
        except BaseException as exc:  # reported below
            results.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 4 and len(set(results)) == 1 and isinstance(results[0], Path)
    assert resolve_gets(hub_server) == dict.fromkeys(served_files(hub_root / REPO), 1)
    assert hub_server.stats()["counts"]["GET model_info"] == 1


def test_concurrent_pulls_in_processes_download_once(hub_server, hub_env, hub_root):
    code = "import zoo, sys; print(zoo.pull('tiny-repo'))"
    env = {**os.environ, "PYTHONPATH": str(ROOT_DIR)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err[-2000:] for _, err in outs]
    paths = {out.strip() for out, _ in outs}
    assert paths == {str(hf.snapshot_dir(REPO, hub_server.commit(REPO)))}
    assert resolve_gets(hub_server) == dict.fromkeys(served_files(hub_root / REPO), 1)
    assert hub_server.stats()["counts"]["GET model_info"] == 1  # the others found the receipt under the lock
    receipt = json.loads(cache.paths("tiny-repo").receipt.read_text())
    assert len(receipt["files"]) == len(served_files(hub_root / REPO))


def test_progress_flag_leaves_global_progress_state_alone(hub_server, hub_env, hub_entry, capsys):
    from huggingface_hub.utils import are_progress_bars_disabled

    before = are_progress_bars_disabled()
    hf.pull(hub_entry())
    assert are_progress_bars_disabled() == before
    assert "Fetching" not in capsys.readouterr().err  # quiet unless progress=True


def test_verify_files_check_reads_the_hf_receipt(hub_server, hub_env, hub_entry, tmp_path):
    from zoo.checks.files import files

    entry = hub_entry()
    snapshot = hf.pull(entry)
    empty = tmp_path / "converted"
    empty.mkdir()
    assert files(empty, {"files": {}}, cache.read_receipt(entry.id)).ok
    flip_byte(blob_of(snapshot, "tokenizer.json"))
    check = files(empty, {"files": {}}, cache.read_receipt(entry.id))
    assert not check.ok and "tokenizer.json" in check.detail


def zoo_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT_DIR), **env}
    return subprocess.run(
        [sys.executable, "-m", "zoo", *args], env=full_env, capture_output=True, text=True, timeout=120
    )


def test_cli_pull_detects_tampering_and_recovers(hub_server, hub_env):
    first = zoo_cli("pull", "tiny-repo", "--json")
    assert first.returncode == 0, first.stderr
    [result] = json.loads(first.stdout)
    snapshot = Path(result["path"])
    assert result["status"] == "downloaded" and snapshot.name == hub_server.commit(REPO)

    flip_byte(blob_of(snapshot, "model.safetensors"))
    tampered = zoo_cli("pull", "tiny-repo")
    assert tampered.returncode == 1 and "model.safetensors" in tampered.stderr

    again = zoo_cli("pull", "tiny-repo", "--json")
    assert again.returncode == 0, again.stderr
    assert (
        json.loads(again.stdout)[0]["status"] == "downloaded" and hf.files_check(cache.read_receipt("tiny-repo")) == []
    )


def test_cli_offline_names_what_is_missing(hub_server, hub_env):
    out = zoo_cli("pull", "tiny-repo", ZOO_OFFLINE="1")
    assert out.returncode == 1 and "org/tiny-repo" in out.stderr and "offline" in out.stderr
    assert hub_server.stats()["requests"] == 0
