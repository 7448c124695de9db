"""`zoo cache ls/rm/prune/verify`, state from disk, concurrency without windows, and hostile or faulty
inputs, against the local GCS-like and Hub servers with the real zoo CLI and API (and the real `hf` CLI).

The TAPAS model is the bundled demo zip (a real TAPAS retriever checkpoint in the GCS release
layout), served by the GCS-like server; the Hub model is the tiny repo of tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import io
import json
import os
import pty
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import HUB_REPO, HUB_REPO_ID, hub_registry_entry

import zoo
from zoo import cache, constants
from zoo.errors import BadResponseError, CacheBusyError, DownloadError
from zoo.sources import hf, http

ROOT = Path(__file__).resolve().parent.parent
DEMO_ZIP = ROOT / "scripts" / "demo_data" / "tapas_nq_retriever_tiny.zip"
GOOD = "/bucket/good.zip"


# --- set-up -------------------------------------------------------------------------------------


@pytest.fixture()
def store(hub_server: Any, hub_env: dict[str, Path], gcs_server: Any, url_entry: Callable, tmp_path: Path, monkeypatch):
    """A private ZOO_HOME and HF cache; `t_good` (the demo TAPAS zip on the GCS-like server) and
    `tiny-repo` (the Hub server) in a user registry; `store.add(entry)` adds URL entries to it."""
    monkeypatch.delenv("ZOO_MIRRORS", raising=False)
    monkeypatch.setattr(constants, "BACKOFF_BASE_S", 0.01)
    monkeypatch.setattr(constants, "BACKOFF_MAX_S", 0.02)
    publish(gcs_server, GOOD, DEMO_ZIP.read_bytes())
    registry = tmp_path / "store_registry.json"
    entries: dict[str, Any] = {}

    def add(*new: Any) -> None:
        entries.update({e.id: e for e in new})
        models = [e.to_dict() for e in entries.values()] + [hub_registry_entry(HUB_REPO_ID, HUB_REPO)]
        registry.write_text(json.dumps({"schema_version": 1, "models": models}))

    add(url_entry("t_good", gcs_server.url(GOOD)))
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    return SimpleNamespace(
        home=hub_env["ZOO_HOME"], hf=hub_env["HF_HUB_CACHE"], gcs=gcs_server, hub=hub_server, add=add, tmp=tmp_path
    )


def publish(server: Any, name: str, data: bytes) -> bytes:
    target = server.root / name.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    os.utime(target, ns=(time.time_ns(), time.time_ns()))  # a new generation (ETag stays the md5)
    return data


def random_zip(size: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("slow/blob.bin", os.urandom(size))
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def drop_write_override() -> None:
    """In the child: give up root's power to ignore file permissions, so read-only means read-only."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER (from the bounding set)
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run_zoo(*args: str, readonly: bool = False, timeout: float = 180, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run(
        [sys.executable, "-m", "zoo", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        preexec_fn=drop_write_override if readonly else None,
    )


def start_zoo(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "zoo", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def as_json(result: subprocess.CompletedProcess) -> Any:
    assert result.stdout, result.stderr
    return json.loads(result.stdout)


def flip_byte(path: Path, offset: int = -1) -> None:
    data = bytearray(path.read_bytes())
    data[offset if offset >= 0 else len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def disk_bytes(*roots: Path) -> int:
    """Bytes of regular files under `roots`, each inode once (hard links and HF symlinks counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root in roots:
        for dirpath, _, names in os.walk(root):
            for name in names:
                st = os.lstat(os.path.join(dirpath, name))
                if (st.st_dev, st.st_ino) not in seen and not os.path.islink(os.path.join(dirpath, name)):
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_size
    return total


def wait_for(predicate: Callable[[], bool], proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"process ended first: {proc.communicate()[1][-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


@pytest.fixture()
def readonly_ok(tmp_path: Path) -> None:
    """Skip where a child process cannot be made to respect file permissions."""
    probe = tmp_path / "ro-probe"
    probe.mkdir()
    probe.chmod(0o555)
    code = f"open({str(probe / 'x')!r}, 'w')"
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, preexec_fn=drop_write_override)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot drop write permissions here: {exc}")
    finally:
        probe.chmod(0o755)
    if proc.returncode == 0:
        pytest.skip("this process ignores file permissions")


@contextlib.contextmanager
def read_only(*roots: Path) -> Iterator[None]:
    modes = []
    for root in roots:
        for path in [root, *root.rglob("*")]:
            if not path.is_symlink():
                modes.append((path, path.stat().st_mode))
                path.chmod(path.stat().st_mode & ~0o222)
    try:
        yield
    finally:
        for path, mode in reversed(modes):
            path.chmod(mode)


def answer_on_tty(args: list[str], answer: str) -> subprocess.CompletedProcess:
    """Run zoo with a terminal as stdin and type `answer` into it."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "zoo", *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.write(master, answer.encode())
        out, err = proc.communicate(timeout=120)
    finally:
        os.close(slave)
        os.close(master)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def tapas_zip(tmp_path: Path, seed: int) -> bytes:
    """Another real TAPAS retriever zip (scripts/make_tapas_checkpoint.py), other weights than the demo's."""
    folder = tmp_path / f"tapas_seed{seed}"
    script = ROOT / "scripts" / "make_tapas_checkpoint.py"
    made = subprocess.run(
        [sys.executable, str(script), str(folder), "--zip", "--seed", str(seed)], capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr[-3000:]
    return folder.with_suffix(".zip").read_bytes()


# --- cache verify ---------------------------------------------------------------------------------


def test_cache_verify_names_a_flipped_byte_in_each_kind_of_file(store: Any) -> None:
    zoo.convert("t_good")
    zoo.convert("tiny-repo")  # a Hub repo: adopted, its converted files hard-linked to the snapshot's blobs
    checks = {c.id: c for c in zoo.cache_verify()}
    assert all(c.ok for c in checks.values()), [str(p) for c in checks.values() for p in c.problems]
    assert set(checks["t_good"].checked) == {"archive", "raw", "converted"}
    assert set(checks["tiny-repo"].checked) == {"snapshot", "converted"}

    p = cache.paths("t_good")
    raw = Path(cache.read_receipt("t_good")["path"])
    ckpt = next(raw.rglob("model.ckpt.data-*"))
    snapshot = hf.snapshot_dir(HUB_REPO, store.hub.commit(HUB_REPO))
    flip_byte(p.download_dir / "good.zip")  # the archive
    flip_byte(ckpt)  # a raw file
    flip_byte(p.converted_dir / "model.safetensors")  # converted weights
    flip_byte((snapshot / "model.safetensors").resolve())  # an LFS file of the snapshot (sha256 oid)
    flip_byte((snapshot / "config.json").resolve(), offset=3)  # a plain git blob (git-sha1 oid)
    next(raw.rglob("vocab.txt")).unlink()
    (p.converted_dir / "stray.bin").write_bytes(b"x")

    found = {(c.id, pr.part, pr.kind, pr.path.name) for c in zoo.cache_verify() for pr in c.problems}
    assert {
        ("t_good", "archive", "changed", "good.zip"),
        ("t_good", "raw", "changed", ckpt.name),
        ("t_good", "raw", "missing", "vocab.txt"),
        ("t_good", "converted", "changed", "model.safetensors"),
        ("t_good", "converted", "extra", "stray.bin"),
        ("tiny-repo", "snapshot", "changed", "model.safetensors"),
        ("tiny-repo", "snapshot", "changed", "config.json"),
    } <= found

    cli = run_zoo("cache", "verify", "t_good", "--json")
    assert cli.returncode == 1, cli.stderr
    [report] = as_json(cli)
    assert not report["ok"] and str(ckpt) in {pr["path"] for pr in report["problems"]}
    text = run_zoo("cache", "verify")
    assert text.returncode == 1 and "FAILED" in text.stdout and "model.safetensors" in text.stdout
    assert zoo.state("t_good")["verified"] is False


def test_a_corrupt_receipt_or_manifest_is_named_never_a_traceback(store: Any) -> None:
    zoo.convert("t_good")
    zoo.convert("tiny-repo")
    receipt = cache.paths("t_good").receipt
    manifest_file = cache.paths("tiny-repo").converted_dir / constants.MANIFEST_FILENAME
    receipt.write_text('{"url": "cut short')
    manifest_file.write_text("not json at all")
    result = run_zoo("cache", "verify", "--json")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    problems = {(pr["path"], pr["kind"]) for c in as_json(result) for pr in c["problems"]}
    assert {(str(receipt), "corrupt"), (str(manifest_file), "corrupt")} <= problems
    listing = run_zoo("list", "--json")
    assert listing.returncode == 0 and "Traceback" not in listing.stderr
    states = {r["id"]: r["state"] for r in as_json(listing)}
    assert states["t_good"]["pulled"] is False and states["tiny-repo"]["converted"] is False
    for verb in (("cache", "ls"), ("info", "t_good"), ("cache", "prune", "--dry-run")):
        out = run_zoo(*verb)
        assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr


def test_a_tampered_hub_receipt_never_becomes_a_path(store: Any) -> None:
    zoo.pull("tiny-repo")
    receipt = cache.paths("tiny-repo").receipt
    data = json.loads(receipt.read_text())
    receipt.write_text(json.dumps({**data, "commit": "../../../../outside"}))
    assert zoo.state("tiny-repo")["pulled"] is False
    [check] = zoo.cache_verify(["tiny-repo"])
    assert [(p.part, p.kind) for p in check.problems] == [("receipt", "corrupt")]
    receipt.write_text(json.dumps({**data, "files": {**data["files"], "../escape.txt": {"size": 1, "sha256": "0"}}}))
    assert zoo.state("tiny-repo")["pulled"] is False
    assert zoo.pull("tiny-repo") == hf.snapshot_dir(HUB_REPO, store.hub.commit(HUB_REPO))  # pulled again, cleanly
    assert not list(store.tmp.rglob("escape.txt")) and not list(store.tmp.rglob("outside"))


# --- killed runs and prune ------------------------------------------------------------------------


def test_killed_pull_and_killed_conversion_then_prune(store: Any, url_entry: Callable) -> None:
    slow = publish(store.gcs, "/bucket/slow.zip", random_zip(3_000_000))
    store.add(url_entry("t_slow", store.gcs.url("/bucket/slow.zip"), size=len(slow)))
    zoo.convert("t_good")
    converted = cache.paths("t_good").converted_dir

    def temp_dirs() -> list[Path]:
        return [p for p in converted.parent.iterdir() if p.name.startswith(".t_good.") and p.name.endswith(".partial")]

    conversion = start_zoo("convert", "t_good", "--force")  # killed while writing its temp directory
    wait_for(lambda: bool(temp_dirs()), conversion, 120)
    conversion.send_signal(signal.SIGKILL)
    conversion.communicate(timeout=30)
    store.gcs.set_faults(throttle=2_000_000)
    pull = start_zoo("pull", "t_slow")  # killed mid-download
    part = http.layout(zoo.get("t_slow")).part
    wait_for(lambda: part.is_file() and part.stat().st_size > len(slow) // 4, pull)
    pull.send_signal(signal.SIGKILL)
    pull.communicate(timeout=30)
    store.gcs.set_faults(throttle=None)
    [temp] = temp_dirs()
    assert part.stat().st_size < len(slow)
    before = sorted(store.home.rglob("*"))

    dry = run_zoo("cache", "prune", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    plan = as_json(dry)
    by_id: dict[str, list[dict[str, Any]]] = {}
    for item in plan["removed"]:
        by_id.setdefault(item["id"], []).append(item)
    assert plan["dry_run"] is True and set(by_id) == {"t_slow", "t_good"}
    assert {item["path"] for item in by_id["t_slow"]} >= {str(part), f"{part}.json"}
    assert sum(item["size_bytes"] for item in by_id["t_slow"]) >= part.stat().st_size
    assert [(item["part"], item["path"]) for item in by_id["t_good"]] == [("temp", str(temp))]
    assert sorted(store.home.rglob("*")) == before  # a dry run deletes nothing
    text = run_zoo("cache", "prune", "--dry-run")
    assert "t_slow: partial" in text.stdout and "would free" in text.stdout

    done = run_zoo("cache", "prune", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    assert as_json(done)["freed_bytes"] == plan["freed_bytes"]
    assert not part.exists() and not temp.exists()
    assert not cache.paths("t_slow").lock_file.exists()  # nothing else was left of it: its lock went too
    assert "t_slow" not in {e["id"] for e in as_json(run_zoo("cache", "ls", "--json"))}
    good = run_zoo("cache", "verify", "t_good", "--json")
    assert good.returncode == 0 and as_json(good)[0]["ok"], good.stdout
    assert zoo.state("t_good") == {"pulled": True, "converted": True, "verified": False}
    assert zoo.verify("t_good").ok
    assert run_zoo("cache", "prune", "--dry-run").stdout.strip() == "nothing to prune"


def test_prune_archives_keeps_the_extraction_and_leaves_running_pulls_alone(store: Any) -> None:
    zoo.pull("t_good")
    archive = cache.paths("t_good").download_dir / "good.zip"
    assert zoo.cache_prune(dry_run=True) == []
    with cache.locked("t_good"):  # a pull holds the lock: its files are not touched
        assert zoo.cache_prune(archives=True) == []
    removed = zoo.cache_prune(archives=True)
    assert {r.path for r in removed} == {archive, archive.with_name("good.zip.json")}
    assert sum(r.size_bytes for r in removed) >= len(DEMO_ZIP.read_bytes())
    assert not archive.exists() and zoo.state("t_good")["pulled"]
    assert zoo.cache_verify(["t_good"])[0].ok


# --- ls, rm, state from disk ----------------------------------------------------------------------


def test_ls_adds_up_rm_frees_and_state_follows_the_disk(store: Any) -> None:
    zoo.convert("t_good")
    assert zoo.verify("t_good").ok
    zoo.convert("tiny-repo")
    commit = store.hub.commit(HUB_REPO)

    listing = run_zoo("cache", "ls", "--json")
    assert listing.returncode == 0, listing.stderr
    entries = as_json(listing)
    assert [e["id"] for e in entries] == ["t_good", "tiny-repo"]
    # files of the caches as a whole belong to no model: pins.json, locations.json, the HF cache's CACHEDIR.TAG
    shared = sum(p.stat().st_size for root in (store.home, store.hf) for p in root.iterdir() if p.is_file())
    assert sum(e["size_bytes"] for e in entries) == disk_bytes(store.home, store.hf) - shared
    good, hub = entries
    assert {p["part"] for p in good["parts"]} == {"archive", "raw", "converted", "metadata"}
    assert good["state"] == {"pulled": True, "converted": True, "verified": True}
    assert all(p["size_bytes"] > 0 for p in good["parts"] if p["part"] != "metadata")
    hub_parts = {p["part"]: p for p in hub["parts"]}
    assert hub_parts["snapshot"]["size_bytes"] > 0 and hub_parts["converted"]["linked_bytes"] > 0  # hard links
    assert hub["state"] == {"pulled": True, "converted": True, "verified": False}
    text = run_zoo("cache", "ls")
    assert text.stdout.splitlines()[-1].startswith("total ") and "snapshot" in text.stdout

    # the HF cache loses the repo (the real `hf` CLI): zoo no longer says pulled
    hf_cli = Path(sys.executable).with_name("hf")
    removed = subprocess.run([str(hf_cli), "cache", "rm", f"model/{HUB_REPO}", "--yes"], capture_output=True, text=True)
    assert removed.returncode == 0, removed.stderr
    assert not hf.snapshot_dir(HUB_REPO, commit).exists()
    states = {r["id"]: r["state"] for r in as_json(run_zoo("list", "--json"))}
    assert states["tiny-repo"]["pulled"] is False and states["tiny-repo"]["verified"] is False
    assert states["t_good"] == {"pulled": True, "converted": True, "verified": True}
    assert as_json(run_zoo("info", "tiny-repo", "--json"))["state"]["pulled"] is False
    gone = run_zoo("cache", "verify", "tiny-repo")
    assert gone.returncode == 1 and "no longer in the HF cache" in gone.stdout

    # rm of one part, then of everything: frees what ls said, and the state follows
    only = as_json(run_zoo("cache", "rm", "t_good", "--converted", "--yes", "--json"))
    assert [r["part"] for r in only["removed"]] == ["converted"]
    assert zoo.state("t_good") == {"pulled": True, "converted": False, "verified": False}
    assert run_zoo("path", "t_good").stdout.strip() == cache.read_receipt("t_good")["path"]
    size_now = as_json(run_zoo("cache", "ls", "t_good", "--json"))[0]["size_bytes"]
    everything = run_zoo("cache", "rm", "t_good", "--yes", "--json")
    assert everything.returncode == 0, everything.stderr
    assert as_json(everything)["freed_bytes"] == size_now
    assert not any((store.home / d / "t_good").exists() for d in ("downloads", "raw", "converted"))
    rows = {r["id"]: r["state"] for r in as_json(run_zoo("list", "--json"))}
    assert rows["t_good"] == {"pulled": False, "converted": False, "verified": False}
    assert run_zoo("path", "t_good").returncode == 1

    # a Hub model: its snapshot leaves the HF cache too, and zoo says so
    zoo.pull("tiny-repo")
    dry = run_zoo("cache", "rm", "tiny-repo", "--dry-run")
    assert dry.returncode == 0 and hf.snapshot_dir(HUB_REPO, commit).is_dir()
    hub_rm = run_zoo("cache", "rm", "tiny-repo", "--yes")
    assert hub_rm.returncode == 0, hub_rm.stderr
    assert "removed from the Hugging Face cache too" in hub_rm.stdout and "freed" in hub_rm.stdout
    assert not hf.snapshot_dir(HUB_REPO, commit).exists()
    assert zoo.state("tiny-repo") == {"pulled": False, "converted": False, "verified": False}
    assert as_json(run_zoo("cache", "ls", "--json")) == []


def test_rm_refuses_while_locked_and_asks_on_a_terminal(store: Any) -> None:
    zoo.pull("t_good")
    with cache.locked("t_good"):
        busy = run_zoo("cache", "rm", "t_good", "--yes", "--json")
    assert busy.returncode == 1 and as_json(busy)["error"]["type"] == "CacheBusyError", busy.stdout
    with cache.locked("t_good" + cache.CONVERT_LOCK_SUFFIX), pytest.raises(CacheBusyError, match="conversion"):
        zoo.cache_remove(["t_good"])
    assert zoo.state("t_good")["pulled"]

    no_terminal = run_zoo("cache", "rm", "t_good")
    assert no_terminal.returncode == 2 and "--yes" in no_terminal.stderr
    declined = answer_on_tty(["cache", "rm", "t_good"], "n\n")
    assert declined.returncode == 1 and "nothing was removed" in declined.stderr
    assert zoo.state("t_good")["pulled"]
    accepted = answer_on_tty(["cache", "rm", "t_good"], "y\n")
    assert accepted.returncode == 0, accepted.stderr
    assert "[y/N]" in accepted.stderr and "freed" in accepted.stdout
    assert not zoo.state("t_good")["pulled"]
    unknown = run_zoo("cache", "rm", "t_goood", "--yes")
    assert unknown.returncode == 2 and "did you mean: t_good" in unknown.stderr


# --- concurrency ----------------------------------------------------------------------------------


def test_pull_force_during_a_conversion_never_swaps_its_source(store: Any) -> None:
    v1 = DEMO_ZIP.read_bytes()
    v2 = tapas_zip(store.tmp, seed=5)
    zoo.pull("t_good")
    v1_dir = cache.paths("t_good").raw_version(sha256(v1))
    v1_files = cache.hash_tree(v1_dir)
    converted = cache.paths("t_good").converted_dir
    conversion = start_zoo("convert", "t_good", "--json")
    wait_for(lambda: converted.parent.is_dir() and any(converted.parent.glob(".t_good.*.partial")), conversion, 120)

    publish(store.gcs, GOOD, v2)  # upstream changes while the conversion reads v1
    pull = run_zoo("pull", "t_good", "--force", "--repin", "--json")
    assert pull.returncode == 0, pull.stderr
    assert conversion.poll() is None, "the pull should have finished while the conversion still ran"
    assert Path(as_json(pull)[0]["path"]) == cache.paths("t_good").raw_version(sha256(v2))
    assert cache.hash_tree(v1_dir) == v1_files  # the conversion's source was not touched
    _, err = conversion.communicate(timeout=300)
    assert conversion.returncode == 0, err[-3000:]

    assert zoo.read_manifest(converted)["source"]["origin"]["sha256"] == sha256(v1)
    report = zoo.verify("t_good")  # weights replayed on the source it was converted from (v1), bit for bit
    assert report.ok, [(c.name, c.value, c.detail) for c in report.checks]
    assert cache.read_receipt("t_good")["sha256"] == sha256(v2)
    [entry] = zoo.cache_list(["t_good"])
    assert [p.paths for p in entry.parts if p.part == "stale"] == [[v1_dir]]
    assert {r.path for r in zoo.cache_prune() if r.part == "stale"} == {v1_dir}
    assert not v1_dir.exists() and zoo.cache_verify(["t_good"])[0].ok


# --- hostile and faulty servers -------------------------------------------------------------------

BAD_OID = "a" * 40


@pytest.mark.parametrize(
    "lie",
    [
        {"tree_extra": [{"type": "file", "path": "../../evil.txt", "size": 5, "oid": BAD_OID}]},
        {"tree_extra": [{"type": "file", "path": "docs/../../../evil.txt", "size": 5, "oid": BAD_OID}]},
        {"tree_extra": [{"type": "file", "path": "/tmp/evil.txt", "size": 5, "oid": BAD_OID}]},
        {"tree_extra": [{"type": "file", "path": "config.json", "size": 5, "oid": BAD_OID}]},  # listed twice
        {"tree_extra": [{"type": "file", "path": "evil.txt", "size": 5, "oid": "../x"}]},
        {
            "tree_extra": [
                {"type": "file", "path": "evil.bin", "size": 5, "oid": BAD_OID, "lfs": {"oid": "../../x", "size": 5}}
            ]
        },
        {"commit": "../../../../evil"},
        {"commit": "1234"},
        {"commit": "G" * 40},
    ],
)
def test_hostile_hub_answers_are_refused_before_they_become_paths(store: Any, lie: dict[str, Any]) -> None:
    store.hub.hostile(HUB_REPO, **lie)
    with pytest.raises(BadResponseError, match="refused") as err:
        zoo.pull("tiny-repo")
    assert err.value.exit_code == 1
    assert cache.read_receipt("tiny-repo") is None
    assert not (store.hf / "models--org--tiny-repo").exists()  # not a byte downloaded
    assert not list(store.tmp.rglob("evil*")) and not list(Path("/tmp").glob("evil*"))


def test_hostile_hub_answer_on_the_command_line(store: Any) -> None:
    store.hub.hostile(HUB_REPO, tree_extra=[{"type": "file", "path": "../evil.txt", "size": 5, "oid": BAD_OID}])
    result = run_zoo("pull", "tiny-repo", "--json")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    error = as_json(result)["error"]
    assert error["type"] == "BadResponseError" and "'../evil.txt'" in error["message"]
    store.hub.clear_tampering()
    assert run_zoo("pull", "tiny-repo").returncode == 0


def test_412_forever_gives_up_with_backoff_and_says_why(store: Any) -> None:
    store.gcs.set_faults(fail_if_match=True)
    with pytest.raises(DownloadError) as err:
        zoo.pull("t_good")
    message = str(err.value)
    assert "412" in message and f"gave up after {constants.DOWNLOAD_RESTARTS + 1} attempts" in message
    gets = [r for r in store.gcs.stats()["requests"] if r["method"] == "GET"]
    assert [r["status"] for r in gets] == [412] * (constants.DOWNLOAD_RESTARTS + 1)
    p = cache.paths("t_good")
    assert cache.read_receipt("t_good") is None and not p.raw_dir.exists() and list(p.download_dir.iterdir()) == []
    cli = run_zoo("pull", "t_good", "--json")
    assert cli.returncode == 1 and as_json(cli)["error"]["type"] == "DownloadError"
    assert "412" in as_json(cli)["error"]["message"]
    store.gcs.set_faults(fail_if_match=False)
    assert zoo.pull("t_good") == p.raw_version(sha256(DEMO_ZIP.read_bytes()))


def test_garbled_hash_headers_are_a_bad_response_and_the_next_source_is_tried(
    store: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from gcs_server import GCSServer  # scripts/ is on sys.path (gcs_server fixture)

    store.gcs.set_faults(garble_hash=True)
    with pytest.raises(BadResponseError, match="malformed x-goog-hash") as err:
        zoo.pull("t_good")
    assert err.value.exit_code == 1 and cache.read_receipt("t_good") is None and cache.read_pin("t_good") is None
    mirror_root = tmp_path / "mirror"
    publish(SimpleNamespace(root=mirror_root), GOOD, DEMO_ZIP.read_bytes())
    with GCSServer(mirror_root) as mirror:
        mirror.set_faults(garble_hash=True)
        monkeypatch.setenv("ZOO_MIRRORS", mirror.base_url)  # a garbling mirror first, then the origin
        store.gcs.set_faults(garble_hash=False)
        assert zoo.pull("t_good") == cache.paths("t_good").raw_version(sha256(DEMO_ZIP.read_bytes()))
    assert cache.read_pin("t_good")["fetched_from"] == store.gcs.url(GOOD)


def test_unresolvable_host_fails_at_once_and_a_mirror_pin_says_so(
    store: Any, url_entry: Callable, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    origin = "http://zoo-origin.invalid/bucket/good.zip"
    store.add(url_entry("t_dns", origin))
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r"cannot resolve the host name 'zoo-origin.invalid'.*not retried"):
        zoo.pull("t_dns")
    assert time.monotonic() - start < 10  # one lookup, not 7 with backoff (17.5 s of sleeping)

    monkeypatch.setenv("ZOO_MIRRORS", f"http://zoo-mirror.invalid {store.gcs.base_url}")
    with caplog.at_level("WARNING", logger="zoo.sources.http"):
        zoo.pull("t_dns")
    pin = cache.read_pin("t_dns")
    assert pin["url"] == origin and pin["sha256"] == sha256(DEMO_ZIP.read_bytes())
    assert pin["fetched_from"] == store.gcs.url(GOOD) and pin["mirror"] == store.gcs.base_url
    assert any("pinned from the mirror" in r.getMessage() for r in caplog.records)


def test_truncated_archive_says_it_is_corrupt(store: Any, url_entry: Callable, tmp_path: Path) -> None:
    cut = DEMO_ZIP.read_bytes()[:100_000]
    publish(store.gcs, "/bucket/cut.zip", cut)
    store.add(url_entry("t_cut", store.gcs.url("/bucket/cut.zip")))
    pulled = run_zoo("pull", "t_cut", "--json")
    assert pulled.returncode == 2 and "corrupt zip archive" in as_json(pulled)["error"]["message"]
    assert cache.read_receipt("t_cut") is None and cache.read_pin("t_cut") is None
    local = tmp_path / "cut.zip"
    local.write_bytes(cut)
    out = str(tmp_path / "out")
    converted = run_zoo("convert", "--from", str(local), "--format", "tapas-retriever", "--out", out, "--json")
    assert converted.returncode == 2 and "corrupt archive" in as_json(converted)["error"]["message"]
    missing = run_zoo("convert", "--from", str(tmp_path / "nope.zip"), "--format", "tapas-retriever", "--out", out)
    assert missing.returncode == 2 and "no such file" in missing.stderr


# --- read-only and unwritable places --------------------------------------------------------------


def test_unwritable_out_is_exit_2_before_any_download(store: Any, tmp_path: Path) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    store.gcs.reset_stats()
    for out in ("/proc/zoo-out", str(a_file), str(a_file / "below")):
        result = run_zoo("convert", "t_good", "--out", out, "--json")
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        error = as_json(result)["error"]
        assert error["type"] == "OutputError" and error["exit_code"] == 2 and out.split("/")[-1] in error["message"]
    assert store.gcs.stats()["requests"] == []  # refused before pulling


def test_a_read_only_cache_can_be_listed_and_verified(store: Any, readonly_ok: None) -> None:
    zoo.convert("t_good")
    zoo.pull("tiny-repo")
    with read_only(store.home, store.hf):
        listing = run_zoo("list", "--json", readonly=True)
        assert listing.returncode == 0, listing.stderr
        states = {r["id"]: r["state"] for r in as_json(listing)}
        assert states["t_good"]["converted"] and states["tiny-repo"]["pulled"]
        assert run_zoo("cache", "ls", "--json", readonly=True).returncode == 0
        checked = run_zoo("cache", "verify", "--json", readonly=True)
        assert checked.returncode == 0 and all(c["ok"] for c in as_json(checked))
        assert run_zoo("pull", "t_good", readonly=True).returncode == 0  # cached: nothing to write
        assert run_zoo("path", "t_good", readonly=True).returncode == 0
        refused = run_zoo("cache", "rm", "t_good", "--yes", "--json", readonly=True)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
        assert as_json(refused)["error"]["type"] == "OutputError"
        assert as_json(run_zoo("cache", "prune", "--yes", "--json", readonly=True))["removed"] == []
        pulled = run_zoo("pull", "t_good", "--force", "--json", readonly=True)
        assert pulled.returncode == 2 and as_json(pulled)["error"]["type"] == "OutputError"
    assert zoo.state("t_good")["pulled"] and zoo.cache_verify(["t_good"])[0].ok


def test_verify_works_on_a_read_only_model_directory(store: Any, readonly_ok: None) -> None:
    out = zoo.convert("t_good")
    with read_only(out):
        result = run_zoo("verify", str(out), "--json", readonly=True)
    assert result.returncode == 0 and as_json(result)["ok"], result.stderr[-2000:]
