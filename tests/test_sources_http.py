"""URL/GCS source against the local GCS-like server: resume, retries, integrity, pins, offline,
mirrors, unsafe archives, and (as `zoo pull` subprocesses) kill-and-resume and concurrent pulls."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from zoo import cache, constants
from zoo.errors import DownloadError, IntegrityError, OfflineError, UnsafeArchiveError
from zoo.sources import http
from zoo.sources.base import RemoteInfo

REPO_ROOT = Path(__file__).resolve().parents[1]
OBJECT = "/bucket/t_tiny.zip"


@pytest.fixture(autouse=True)
def _fast_backoff(gcs_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "BACKOFF_BASE_S", 0.01)
    monkeypatch.setattr(constants, "BACKOFF_MAX_S", 0.02)


def publish(
    server: Any,
    *,
    payload: int = 200_000,
    seed: int = 0,
    extra: tuple[tuple[str | zipfile.ZipInfo, bytes], ...] = (),
    name: str = OBJECT,
) -> bytes:
    """Write a TAPAS-like zip (stored, so its size is about `payload`) where the server serves `name`."""
    rng = random.Random(seed)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("tapas_tiny/model.ckpt.data-00000-of-00001", rng.randbytes(payload))
        zf.writestr("tapas_tiny/model.ckpt.index", f"index {seed}".encode())
        zf.writestr("tapas_tiny/vocab.txt", b"[PAD]\n[UNK]\n")
        for member, data in extra:
            zf.writestr(member, data)
    target = server.root / name.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(buf.getvalue())
    os.utime(target, ns=(time.time_ns(), time.time_ns() + seed))  # a new generation per version
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def requests_of(server: Any, method: str = "GET") -> list[dict[str, Any]]:
    return [r for r in server.stats()["requests"] if r["method"] == method and r["path"] == OBJECT]


def served(server: Any) -> int:
    return server.stats()["bytes_served"].get(OBJECT, 0)


def assert_nothing_kept(home: Path, model_id: str = "t_tiny") -> None:
    """No extracted dir, receipt, archive or part: nothing that could pass for a good download."""
    p = cache.paths(model_id, home)
    assert not p.raw_dir.exists() and not p.receipt.exists()
    assert sorted(x.name for x in p.download_dir.glob("*")) == []
    assert not (home / "raw").exists() or list((home / "raw").iterdir()) == []


def assert_extracted(raw_dir: Path, data: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            assert (raw_dir / info.filename).read_bytes() == zf.read(info)


# --- downloads, resume and retries ------------------------------------------------------


def test_pull_survives_two_dropped_connections(gcs_server: Any, url_entry: Callable, gcs_env: Path) -> None:
    data = publish(gcs_server)
    gcs_server.set_faults(drop_after=len(data) // 3, drop_times=2)
    entry = url_entry("t_tiny", gcs_server.url(OBJECT), size=len(data), sha256=sha256(data))
    raw_dir = http.pull(entry)
    assert raw_dir == cache.paths("t_tiny").raw_version(sha256(data))  # content-addressed by the archive
    assert_extracted(raw_dir, data)
    receipt = cache.read_receipt("t_tiny")
    assert receipt["sha256"] == sha256(data) and receipt["size"] == len(data)
    assert set(receipt["files"]) == {
        "tapas_tiny/model.ckpt.data-00000-of-00001",
        "tapas_tiny/model.ckpt.index",
        "tapas_tiny/vocab.txt",
    }
    gets = requests_of(gcs_server)
    assert [g["range"] for g in gets] == [None, f"bytes={len(data) // 3}-", f"bytes={2 * (len(data) // 3)}-"]
    assert all(g["if_match"] == gets[0]["if_match"] and g["if_match"] for g in gets)
    assert served(gcs_server) == len(data)  # resumed, never restarted
    assert http.cached(entry) == raw_dir


def break_midway(server: Any, entry: Any, cut: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """One pull that loses its connection after `cut` bytes, with retries off, so it leaves a part file."""
    retries = constants.DOWNLOAD_RETRIES
    server.set_faults(drop_after=cut, drop_times=1)
    monkeypatch.setattr(constants, "DOWNLOAD_RETRIES", 0)
    with pytest.raises(DownloadError, match="gave up"):
        http.pull(entry)
    monkeypatch.setattr(constants, "DOWNLOAD_RETRIES", retries)


def test_broken_run_leaves_a_part_that_the_next_run_resumes(
    gcs_server: Any, url_entry: Callable, gcs_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = publish(gcs_server)
    cut = len(data) // 2
    entry = url_entry("t_tiny", gcs_server.url(OBJECT), sha256=sha256(data))
    break_midway(gcs_server, entry, cut, monkeypatch)
    lay = http.layout(entry)
    assert lay.part.stat().st_size == cut and json.loads(lay.part_record.read_text())["etag"]
    assert http.cached(entry) is None and not lay.paths.raw_dir.exists()
    assert_extracted(http.pull(entry), data)
    assert requests_of(gcs_server)[-1]["range"] == f"bytes={cut}-"
    assert served(gcs_server) == len(data)
    assert not lay.part.exists() and not lay.part_record.exists()


def test_changed_object_restarts_instead_of_splicing(
    gcs_server: Any, url_entry: Callable, gcs_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = publish(gcs_server, seed=1)
    entry = url_entry("t_tiny", gcs_server.url(OBJECT))
    break_midway(gcs_server, entry, len(old) // 2, monkeypatch)
    new = publish(gcs_server, seed=2)
    gcs_server.reset_stats()
    raw_dir = http.pull(entry)
    assert cache.read_receipt("t_tiny")["sha256"] == sha256(new)
    assert_extracted(raw_dir, new)
    assert [g["range"] for g in requests_of(gcs_server)] == [None]


def test_412_from_if_match_restarts_from_zero(
    gcs_server: Any, url_entry: Callable, gcs_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = publish(gcs_server, seed=1)
    entry = url_entry("t_tiny", gcs_server.url(OBJECT))
    break_midway(gcs_server, entry, len(old) // 2, monkeypatch)
    stale = json.loads(http.layout(entry).part_record.read_text())
    new = publish(gcs_server, seed=2)
    real_head, heads = http._head, []

    def stale_then_real(client: Any, url: str) -> RemoteInfo:  # the object changes right after HEAD
        heads.append(url)
        if len(heads) == 1:
            return RemoteInfo(url=url, size=stale["size"], etag=stale["etag"])
        return real_head(client, url)

    monkeypatch.setattr(http, "_head", stale_then_real)
    gcs_server.reset_stats()
    http.pull(entry)
    gets = requests_of(gcs_server)
    assert [(g["range"], g["status"]) for g in gets] == [(f"bytes={len(old) // 2}-", 412), (None, 200)]
    assert cache.read_receipt("t_tiny")["sha256"] == sha256(new)


def test_server_ignoring_range_restarts_cleanly(gcs_server: Any, url_entry: Callable, gcs_env: Path) -> None:
    data = publish(gcs_server)
    gcs_server.set_faults(drop_after=len(data) // 2, drop_times=1, ignore_range=True)
    entry = url_entry("t_tiny", gcs_server.url(OBJECT), sha256=sha256(data))
    assert_extracted(http.pull(entry), data)
    assert [(g["range"] is not None, g["status"]) for g in requests_of(gcs_server)] == [(False, 200), (True, 200)]


def test_503_first_then_success_with_a_progress_bar(
    gcs_server: Any, url_entry: Callable, gcs_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = publish(gcs_server)
    gcs_server.set_faults(fail_first=3)
    entry = url_entry("t_tiny", gcs_server.url(OBJECT), size=len(data), sha256=sha256(data))
    assert_extracted(http.pull(entry, progress=True), data)
    statuses = [r["status"] for r in gcs_server.stats()["requests"]]
    assert statuses == [503, 503, 503, 200, 200]
    assert "t_tiny" in capsys.readouterr().err  # the tqdm bar


def test_persistent_5xx_gives_up_with_download_error(
    gcs_server: Any, url_entry: Callable, gcs_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(gcs_server)
    gcs_server.set_faults(fail_first=1000)
    monkeypatch.setattr(constants, "DOWNLOAD_RETRIES", 2)
    entry = url_entry("t_tiny", gcs_server.url(OBJECT))
    with pytest.raises(DownloadError, match="HTTP 503") as info:
        http.pull(entry)
    assert info.value.exit_code == 1
    assert len(gcs_server.stats()["requests"]) == 3
    assert_nothing_kept(gcs_env)


# --- integrity --------------------------------------------------------------------------


@pytest.mark.parametrize(("omit_md5", "caught_by"), [(False, "md5"), (True, "crc32c")])
def test_corrupt_byte_fails_and_keeps_nothing(
    gcs_server: Any, url_entry: Callable, gcs_env: Path, omit_md5: bool, caught_by: str
) -> None:
    data = publish(gcs_server)
    gcs_server.set_faults(corrupt_offset=len(data) // 2, omit_md5=omit_md5)
    entry = url_entry("t_tiny", gcs_server.url(OBJECT), size=len(data), sha256=sha256(data))
    with pytest.raises(IntegrityError, match=f"{caught_by} mismatch.*x-goog-hash") as info:
        http.pull(entry)
    assert info.value.exit_code == 1 and info.value.source == gcs_server.url(OBJECT)
    assert info.value.expected != info.value.actual
    assert_nothing_kept(gcs_env)


def test_goog_md5_mismatch_detected_when_registry_hash_is_null(
    gcs_server: Any, url_entry: Callable, gcs_env: Path
) -> None:
    data = publish(gcs_server)
    gcs_server.set_faults(corrupt_offset=10)
    entry = url_entry("t_tiny", gcs_server.url(OBJECT))
    with pytest.raises(IntegrityError, match="md5 mismatch.*x-goog-hash"):
        http.pull(entry)
    assert_nothing_kept(gcs_env)
    assert cache.read_pin("t_tiny") is None  # a corrupt download is never pinned
    gcs_server.set_faults(corrupt_offset=None)
    assert_extracted(http.pull(entry), data)


def test_registry_sha256_mismatch_keeps_nothing(gcs_server: Any, url_entry: Callable, gcs_env: Path) -> None:
    data = publish(gcs_server)
    entry = url_entry("t_tiny", gcs_server.url(OBJECT), sha256="0" * 64)
    with pytest.raises(IntegrityError, match="sha256 mismatch") as info:
        http.pull(entry)
    assert (info.value.expected, info.value.actual) == ("0" * 64, sha256(data))
    assert_nothing_kept(gcs_env)


def test_registry_size_mismatch_fails_before_downloading(gcs_server: Any, url_entry: Callable, gcs_env: Path) -> None:
    data = publish(gcs_server)
    entry = url_entry("t_tiny", gcs_server.url(OBJECT), size=len(data) + 1)
    with pytest.raises(IntegrityError, match="size mismatch"):
        http.pull(entry)
    assert requests_of(gcs_server) == [] and served(gcs_server) == 0
    assert_nothing_kept(gcs_env)


def test_null_hash_is_pinned_and_an_upstream_change_needs_repin(
    gcs_server: Any, url_entry: Callable, gcs_env: Path
) -> None:
    old = publish(gcs_server, seed=1)
    entry = url_entry("t_tiny", gcs_server.url(OBJECT))
    raw_dir = http.pull(entry)
    pin = cache.read_pin("t_tiny")
    assert (pin["sha256"], pin["size"], pin["url"]) == (sha256(old), len(old), entry.source.url)
    assert pin["etag"] and pin["md5"] and pin["crc32c"] and pin["pinned_at"]
    assert json.loads(cache.pins_file().read_text())["t_tiny"] == pin

    new = publish(gcs_server, seed=2)
    gcs_server.reset_stats()
    assert http.pull(entry) == raw_dir and gcs_server.stats()["requests"] == []  # cached: no network
    with pytest.raises(IntegrityError) as info:
        http.pull(entry, force=True)
    message = str(info.value)
    assert "changed since it was pinned" in message and "zoo pull t_tiny --force --repin" in message
    assert (info.value.expected, info.value.actual) == (sha256(old), sha256(new))
    assert cache.read_pin("t_tiny") == pin
    assert http.cached(entry) == raw_dir  # the earlier verified pull stays usable
    assert_extracted(raw_dir, old)
    assert sorted(p.name for p in http.layout(entry).archive.parent.iterdir()) == []

    assert_extracted(http.pull(entry, force=True, repin=True), new)
    assert cache.read_pin("t_tiny")["sha256"] == sha256(new)
    assert cache.read_receipt("t_tiny")["sha256"] == sha256(new)
    assert not raw_dir.exists()  # the superseded version goes when no conversion holds the model's lock


def test_unsafe_archive_from_server_is_refused(gcs_server: Any, url_entry: Callable, gcs_env: Path) -> None:
    publish(gcs_server, extra=(("../../evil.txt", b"pwned"),))
    entry = url_entry("t_tiny", gcs_server.url(OBJECT))
    with pytest.raises(UnsafeArchiveError, match="'../../evil.txt'.*'..'") as info:
        http.pull(entry)
    assert info.value.exit_code == 2
    assert_nothing_kept(gcs_env)
    assert cache.read_pin("t_tiny") is None
    assert not list(gcs_env.parent.rglob("evil.txt"))


# --- offline, mirrors, decisions ----------------------------------------------------------


def test_offline_with_nothing_cached_fails_at_once(
    gcs_server: Any, url_entry: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(gcs_server)
    entry = url_entry("t_tiny", gcs_server.url(OBJECT))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(OfflineError) as info:
        http.pull(entry)
    assert time.monotonic() - start < 2.0
    assert "t_tiny" in str(info.value) and entry.source.url in str(info.value)
    assert any("receipt" in m for m in info.value.missing)
    assert gcs_server.stats()["requests"] == []


def test_offline_with_everything_cached_needs_no_server(
    gcs_server: Any, url_entry: Callable, gcs_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = publish(gcs_server)
    entry = url_entry("t_tiny", gcs_server.url(OBJECT))
    raw_dir = http.pull(entry)
    gcs_server.reset_stats()
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert http.pull(entry) == raw_dir
    cache.drop_receipt("t_tiny")  # e.g. killed while extracting: the verified archive is re-extracted
    shutil.rmtree(raw_dir)
    assert_extracted(http.pull(entry), data)
    assert cache.read_receipt("t_tiny")["sha256"] == sha256(data)
    with pytest.raises(OfflineError, match="--force needs the network"):
        http.pull(entry, force=True)
    assert gcs_server.stats()["requests"] == []


def test_mirrors_are_tried_in_order_before_the_origin(
    gcs_server: Any, url_entry: Callable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gcs_server import GCSServer  # importable: the gcs_server fixture put scripts/ on sys.path

    empty_root, mirror_root = tmp_path / "empty", tmp_path / "mirror"
    empty_root.mkdir()
    mirror_root.mkdir()
    data = publish(gcs_server)
    (mirror_root / "bucket").mkdir()
    (mirror_root / OBJECT.lstrip("/")).write_bytes(data)
    with GCSServer(empty_root) as empty, GCSServer(mirror_root) as mirror:
        monkeypatch.setenv("ZOO_MIRRORS", os.pathsep.join([empty.base_url + "/", mirror.base_url]))
        entry = url_entry("t_tiny", gcs_server.url(OBJECT), sha256=sha256(data))
        assert http.candidate_urls(entry.source.url) == [empty.url(OBJECT), mirror.url(OBJECT), entry.source.url]
        assert_extracted(http.pull(entry), data)
        assert [r["status"] for r in empty.stats()["requests"]] == [404]
        assert mirror.stats()["bytes_served"][OBJECT] == len(data)
    assert gcs_server.stats()["requests"] == []
    receipt = cache.read_receipt("t_tiny")
    assert receipt["url"] == entry.source.url and receipt["fetched_from"] == mirror.url(OBJECT)


def test_decisions_are_pure() -> None:
    assert http.decide(receipt_ok=True, archive_ok=True, force=False) == "reuse"
    assert http.decide(receipt_ok=False, archive_ok=True, force=False) == "extract"
    assert http.decide(receipt_ok=False, archive_ok=False, force=False) == "fetch"
    assert http.decide(receipt_ok=True, archive_ok=True, force=True) == "fetch"
    remote = RemoteInfo(url="u", size=100, etag='"abc"')
    record = http.PartRecord(url="u", etag='"abc"', generation=None, size=100)
    assert http.resume_offset(record, 40, remote) == 40
    assert http.resume_offset(record, 0, remote) == 0
    assert http.resume_offset(record, 101, remote) == 0
    assert http.resume_offset(None, 40, remote) == 0
    assert http.resume_offset(record, 40, RemoteInfo(url="u", size=100, etag='"def"')) == 0
    assert http.resume_offset(record, 40, RemoteInfo(url="u", size=101, etag='"abc"')) == 0
    weak = http.PartRecord(url="u", etag='W/"abc"', generation=None, size=100)
    assert http.resume_offset(weak, 40, RemoteInfo(url="u", size=100, etag='W/"abc"')) == 0


def test_cached_follows_the_registry(gcs_server: Any, url_entry: Callable, gcs_env: Path) -> None:
    data = publish(gcs_server)
    entry = url_entry("t_tiny", gcs_server.url(OBJECT), sha256=sha256(data))
    assert http.cached(entry) is None
    raw_dir = http.pull(entry)
    assert http.cached(entry) == raw_dir
    assert http.cached(url_entry("t_tiny", gcs_server.url(OBJECT), sha256="1" * 64)) is None


# --- `zoo pull` as separate processes -------------------------------------------------------


def zoo_pull(model_id: str, *flags: str, **popen: Any) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen(
        [sys.executable, "-m", "zoo", "pull", model_id, *flags],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def test_cli_killed_midway_resumes_on_the_next_run(
    gcs_server: Any, url_entry: Callable, url_registry: Callable, gcs_env: Path
) -> None:
    data = publish(gcs_server, payload=3_000_000)
    entry = url_entry("t_tiny", gcs_server.url(OBJECT), size=len(data), sha256=sha256(data))
    url_registry(entry)
    gcs_server.set_faults(throttle=2_000_000)
    first = zoo_pull("t_tiny")
    deadline = time.monotonic() + 20
    while served(gcs_server) < len(data) // 3 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=10)
    assert first.returncode == -signal.SIGKILL
    part = http.layout(entry).part
    kept = part.stat().st_size
    assert 0 < kept < len(data)
    gcs_server.set_faults(throttle=None)
    second = zoo_pull("t_tiny", "--json")
    out, err = second.communicate(timeout=30)
    assert second.returncode == 0, err
    assert json.loads(out)[0]["path"] == str(cache.paths("t_tiny").raw_version(sha256(data)))
    gets = requests_of(gcs_server)
    assert gets[-1]["range"] == f"bytes={kept}-" and gets[-1]["if_match"]
    assert served(gcs_server) < 2 * len(data)
    assert cache.read_receipt("t_tiny")["sha256"] == sha256(data)


def test_cli_four_concurrent_pulls_download_once(
    gcs_server: Any, url_entry: Callable, url_registry: Callable, gcs_env: Path
) -> None:
    data = publish(gcs_server, payload=1_000_000)
    entry = url_entry("t_tiny", gcs_server.url(OBJECT), sha256=sha256(data))
    url_registry(entry)
    gcs_server.set_faults(throttle=2_000_000)  # ~0.5 s: the other three arrive while it runs
    procs = [zoo_pull("t_tiny", "--json") for _ in range(4)]
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in results]
    assert {json.loads(out)[0]["path"] for out, _ in results} == {str(cache.paths("t_tiny").raw_version(sha256(data)))}
    assert served(gcs_server) == len(data)
    assert len(requests_of(gcs_server)) == 1
    assert_extracted(cache.paths("t_tiny").raw_version(sha256(data)), data)


@pytest.mark.parametrize(
    ("fault", "exit_code", "message"),
    [
        ({"corrupt_offset": 100}, 1, "md5 mismatch"),
        ({}, 2, "symbolic link"),
    ],
)
def test_cli_exit_codes(
    gcs_server: Any,
    url_entry: Callable,
    url_registry: Callable,
    gcs_env: Path,
    fault: dict[str, Any],
    exit_code: int,
    message: str,
) -> None:
    link = zipfile.ZipInfo("tapas_tiny/link")
    link.create_system, link.external_attr = 3, (0o120777 << 16)
    publish(gcs_server, extra=() if fault else ((link, b"/etc/passwd"),))
    gcs_server.set_faults(**fault)
    url_registry(url_entry("t_tiny", gcs_server.url(OBJECT)))
    proc = zoo_pull("t_tiny")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == exit_code and message in err, err
    assert_nothing_kept(gcs_env)


def test_server_cli_prints_its_port_and_takes_faults_at_runtime(tmp_path: Path) -> None:
    import urllib.error
    import urllib.request

    (tmp_path / "bucket").mkdir()
    (tmp_path / "bucket" / "o.bin").write_bytes(b"0123456789")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "gcs_server.py"),
            "--root",
            str(tmp_path),
            "--port",
            "0",
            "--fail-first",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{int(proc.stdout.readline())}"
        with pytest.raises(urllib.error.HTTPError, match="503"):
            urllib.request.urlopen(f"{base}/bucket/o.bin", timeout=5)
        request = urllib.request.Request(f"{base}/bucket/o.bin", headers={"Range": "bytes=4-"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert (response.status, response.read()) == (206, b"456789")
            assert response.headers["Content-Range"] == "bytes 4-9/10"
            assert response.headers["ETag"] == f'"{hashlib.md5(b"0123456789").hexdigest()}"'
        faults = urllib.request.Request(f"{base}/_faults", data=b'{"omit_md5": true}', method="POST")
        assert json.loads(urllib.request.urlopen(faults, timeout=5).read())["omit_md5"] is True
        head = urllib.request.Request(f"{base}/bucket/o.bin", method="HEAD")
        assert urllib.request.urlopen(head, timeout=5).headers.get_all("x-goog-hash")[0].startswith("crc32c=")
        assert len(urllib.request.urlopen(head, timeout=5).headers.get_all("x-goog-hash")) == 1
        stats = json.loads(urllib.request.urlopen(f"{base}/_stats", timeout=5).read())
        assert stats["bytes_served"] == {"/bucket/o.bin": 6}
        assert [r["status"] for r in stats["requests"]] == [503, 206, 200, 200]
    finally:
        proc.kill()
        proc.wait()
