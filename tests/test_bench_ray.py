"""`zoo bench --engine ray` on real Ray (2 CPUs), for each family (TAPAS tables, SPLADE documents,
FLMR passages) on a synthetic corpus of a few hundred items:

- joining a cluster started with `ray start --head`, the stored embeddings equal the single-process
  engine's (1e-6) and the metrics are identical; the cluster keeps running;
- `zoo bench --engine ray` (its own local Ray instance) interrupted with Ctrl-C exits 130 and leaves
  no Ray process; run again it encodes only the chunks that were not stored, ends with the
  single-process engine's embeddings and metrics, and again leaves no Ray process;
- once every chunk is stored, a rerun starts no Ray at all.

Ray processes are recognised by a marker in their environment (they inherit it from the zoo
process that started them), so the cluster of this module never counts as a leftover.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray.data")

ROOT = Path(__file__).resolve().parent.parent
FLMR_MODEL = ROOT / "tests" / "data" / "golden" / "flmr" / "preflmr" / "hf"
RAY_CLI = Path(sys.executable).parent / "ray"
MARK = "ZOO_TEST_RAY_MARK"


@dataclass(frozen=True)
class Case:
    family: str
    model: Path
    data: Path
    chunk_size: int
    batch_size: int

    def options(self) -> dict:
        return {"chunk_size": self.chunk_size, "batch_size": self.batch_size}

    def cli(self, work: Path, *extra: str) -> list[str]:
        return [
            *("bench", str(self.model), "--data", str(self.data), "--work", str(work)),
            *("--chunk-size", str(self.chunk_size), "--batch-size", str(self.batch_size), "--engine", "ray"),
            *extra,
        ]


# --- synthetic corpora ------------------------------------------------------------------------


def _words(vocab: list[str], n: int, rng: random.Random) -> str:
    return " ".join(rng.choice(vocab) for _ in range(n))


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _tapas(root: Path) -> Case:
    pytest.importorskip("tensorflow")
    from tapas_support import factory

    from zoo.conversion import convert_local

    make = factory()
    make.write_checkpoint(make.CheckpointSpec(kind="retriever", seed=3), root / "ckpt")
    model = convert_local(root / "ckpt", "tapas-retriever", root / "converted")
    words = [w for w in make.vocab(make.CheckpointSpec()) if w.isalpha() and not w.startswith("w")]
    rng = random.Random(0)
    tables = [
        {
            "table_id": f"t{i}",
            "document_title": _words(words, 2, rng),
            "columns": [_words(words, 1, rng) for _ in range(3)],
            "rows": [[_words(words, 1, rng) for _ in range(3)] for _ in range(2)],
        }
        for i in range(240)
    ]
    _jsonl(root / "nq" / "tables.jsonl", tables)
    questions = [{"id": f"q{i}", "question": _words(words, 5, rng), "table_ids": [f"t{i * 11}"]} for i in range(20)]
    _jsonl(root / "nq" / "test.jsonl", questions)
    return Case("tapas", model, root / "nq", chunk_size=4, batch_size=2)


def _splade(root: Path) -> Case:
    pytest.importorskip("sentence_transformers")
    from splade_factory import WORDS, write_repo

    model = write_repo(root / "repo")
    rng = random.Random(0)
    for name, size in (("NanoSciFact", 130), ("NanoFiQA2018", 110)):
        folder = root / "beir" / name
        _jsonl(
            folder / "corpus.jsonl",
            [{"_id": f"d{i}", "title": "", "text": _words(WORDS, 12, rng)} for i in range(size)],
        )
        _jsonl(folder / "queries.jsonl", [{"_id": f"q{i}", "text": _words(WORDS, 4, rng)} for i in range(15)])
        (folder / "qrels").mkdir()
        lines = ["query-id\tcorpus-id\tscore"] + [f"q{i}\td{rng.randrange(size)}\t{1 + i % 2}" for i in range(15)]
        (folder / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n")
    return Case("splade", model, root / "beir", chunk_size=4, batch_size=2)


def _flmr(root: Path) -> Case:
    from zoo.models.flmr import FLMRQueryEncoderTokenizer

    words = [
        w for w in FLMRQueryEncoderTokenizer.from_pretrained(FLMR_MODEL / "query_tokenizer").get_vocab() if w.isalpha()
    ]
    rng = random.Random(0)
    for name, size in (("OKVQA", 120), ("WIT", 100)):
        passages = [{"passage_id": f"{name}{i}", "passage_content": _words(words, 10, rng)} for i in range(size)]
        _jsonl(root / "m2kr" / f"{name}_passages" / "test_passages.jsonl", passages)
        queries = [
            {
                "question_id": f"{name}q{i}",
                "instruction": "extract documents linked to the question",
                "question": _words(words, 5, rng),
                "img_path": None,
                "pos_item_ids": [f"{name}{rng.randrange(size)}"],
                "answers": [rng.choice(words)],
            }
            for i in range(12)
        ]
        _jsonl(root / "m2kr" / f"{name}_data" / "test.jsonl", queries)
    return Case("flmr", FLMR_MODEL, root / "m2kr", chunk_size=4, batch_size=2)


@pytest.fixture(scope="module", params=["tapas", "splade", "flmr"])
def case(request, tmp_path_factory) -> Case:
    build = {"tapas": _tapas, "splade": _splade, "flmr": _flmr}[request.param]
    return build(tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="module")
def single(case: Case, tmp_path_factory) -> tuple[Path, dict]:
    """The single-process engine's store and metrics: the reference for the Ray engine."""
    import zoo

    work = tmp_path_factory.mktemp(f"{case.family}-single")
    result = zoo.bench(str(case.model), case.data, work=work, **case.options())
    return work, {s.benchmark: s.metrics for s in result.sections}


# --- comparing stores ---------------------------------------------------------------------------


def _chunks(work: Path) -> dict[str, Path]:
    return {str(p.relative_to(work)): p for p in sorted(work.rglob("chunk-*.safetensors"))}


def _dense(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """SPLADE chunks are CSR: compare them as dense matrices (a value at the zero threshold may move)."""
    if "indptr" not in arrays:
        return arrays
    dense = np.zeros(tuple(arrays["shape"]), dtype=np.float64)
    for row in range(dense.shape[0]):
        span = slice(arrays["indptr"][row], arrays["indptr"][row + 1])
        dense[row, arrays["indices"][span]] = arrays["values"][span]
    return {"dense": dense}


def assert_same_embeddings(work: Path, reference: Path) -> None:
    from safetensors.numpy import load_file

    got, want = _chunks(work), _chunks(reference)
    assert got.keys() == want.keys() and want
    for name, path in want.items():
        a, b = _dense(load_file(str(got[name]))), _dense(load_file(str(path)))
        assert a.keys() == b.keys(), name
        for key in a:
            assert a[key].shape == b[key].shape, (name, key)
            # float32 rounding only: two workers on two CPUs run one thread each, the single process two,
            # and torch's CPU attention kernel blocks its sums by thread count (~1e-7 per call)
            np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6, err_msg=f"{name} {key}")


def _metrics(result: dict) -> dict:
    return {s["benchmark"]: s["metrics"] for s in result["sections"]}


def _encoded_now(notes: list[str]) -> int:
    """Chunks the Ray workers encoded in this run, from the note the engine adds."""
    counts = [int(m.group(1)) for n in notes if (m := re.search(r": (\d+) chunks encoded by \d+ Ray workers", n))]
    return sum(counts)


# --- a cluster as a user starts one, and Ray processes by marker ----------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def marked(marker: str) -> list[int]:
    """Processes whose environment carries `marker`: everything a zoo or ray process started."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if f"{MARK}={marker}".encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue  # gone, or not ours to read
    return found


def no_process_left(marker: str, grace: float = 10) -> list[int]:
    deadline = time.monotonic() + grace
    while (left := marked(marker)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@dataclass(frozen=True)
class Cluster:
    address: str
    head: subprocess.Popen


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    """`ray start --head --num-cpus 2 --block`: one cluster for the module, stopped by signalling its head.

    With token authentication, as Ray 2.60 runs a cluster started where ~/.ray/auth_token exists; zoo
    finds the token there as `ray start` does (`ray status` is told with RAY_AUTH_MODE=token).
    """
    marker = uuid.uuid4().hex
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("RAY_ADDRESS", raising=False)
        patch.delenv("RAY_AUTH_MODE", raising=False)  # restored afterwards: joining sets it in this process
        env = {**os.environ, "PYTHONPATH": str(ROOT), MARK: marker, "RAY_AUTH_MODE": "token"}
        subprocess.run([str(RAY_CLI), "get-auth-token", "--generate"], env=env, capture_output=True, check=True)
        port = _free_port()
        log = (tmp_path_factory.mktemp("cluster") / "head.log").open("w")
        head = subprocess.Popen(
            [str(RAY_CLI), "start", "--head", f"--port={port}", "--num-cpus=2", "--num-gpus=0"]
            + ["--include-dashboard=false", "--disable-usage-stats", "--block"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        address = f"127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            status = [str(RAY_CLI), "status", f"--address={address}"]
            while subprocess.run(status, env=env, capture_output=True).returncode:
                assert head.poll() is None and time.monotonic() < deadline, Path(log.name).read_text()
                time.sleep(1)
            yield Cluster(address, head)
        finally:
            os.killpg(head.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                head.wait(timeout=10)
            for pid in marked(marker):  # a test cluster need not wind down gracefully: its processes, by pid
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            head.wait(timeout=30)
            log.close()
            assert no_process_left(marker) == []


# --- the tests ------------------------------------------------------------------------------------


def test_joined_cluster_equals_single_process(
    case: Case, single, cluster: Cluster, tmp_path: Path, monkeypatch
) -> None:
    """Three ways to name the cluster: an address, `auto` via RAY_ADDRESS, a process already connected."""
    import ray

    import zoo

    work = tmp_path / "ray"
    connected_before = case.family == "flmr"
    if case.family == "tapas":
        how = {"ray_address": cluster.address}
    elif case.family == "splade":
        monkeypatch.setenv("RAY_ADDRESS", cluster.address)
        how = {"ray_address": "auto"}
    else:
        from zoo.benchmarks.ray_engine import _token_like_ray_start

        _token_like_ray_start()  # what `RAY_AUTH_MODE=token python ...` would do, in a process that imported ray
        ray.init(address=cluster.address, log_to_driver=False, logging_level=logging.WARNING)
        how = {}
    try:
        result = zoo.bench(str(case.model), case.data, work=work, engine="ray", workers=2, **how, **case.options())
        assert ray.is_initialized() == connected_before  # zoo leaves a connection it did not open
    finally:
        ray.shutdown()
    reference, metrics = single
    assert_same_embeddings(work, reference)
    assert {s.benchmark: s.metrics for s in result.sections} == metrics
    assert _encoded_now(list(result.notes)) == len(_chunks(reference))
    assert any("by 2 Ray workers" in n for n in result.notes), result.notes
    assert cluster.head.poll() is None  # the cluster keeps running


def test_ctrl_c_leaves_no_ray_process_and_the_rerun_resumes(case: Case, single, tmp_path: Path) -> None:
    work = tmp_path / "work"
    marker = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update({"PYTHONPATH": str(ROOT), MARK: marker})
    total = len(_chunks(single[0]))

    # 1. Ctrl-C (SIGINT to the whole process group, as a terminal sends it) once chunks are being stored
    proc = subprocess.Popen(
        [sys.executable, "-m", "zoo", *case.cli(work)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    while not _chunks(work) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "zoo: interrupted" in err, err[-3000:]
    assert no_process_left(marker) == []
    stored = {name: (p.stat().st_ino, p.stat().st_mtime_ns) for name, p in _chunks(work).items()}
    assert 0 < len(stored) < total

    # 2. the same command again: only the missing chunks are encoded; the stored files are untouched
    start = time.monotonic()
    rerun = subprocess.run(
        [sys.executable, "-m", "zoo", *case.cli(work), "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    seconds = time.monotonic() - start
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    result = json.loads(rerun.stdout)
    assert _encoded_now(result["notes"]) == total - len(stored)
    assert {
        name: (p.stat().st_ino, p.stat().st_mtime_ns) for name, p in _chunks(work).items() if name in stored
    } == stored
    assert no_process_left(marker) == []
    reference, metrics = single
    assert_same_embeddings(work, reference)
    assert _metrics(result) == metrics

    # 3. everything stored: no Ray is started, and the run is quicker than one that encodes
    start = time.monotonic()
    again = subprocess.run(
        [sys.executable, "-m", "zoo", *case.cli(work), "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    result = json.loads(again.stdout)
    assert _metrics(result) == metrics and not any("Ray" in note for note in result["notes"])
    assert time.monotonic() - start < seconds
    assert marked(marker) == []


def test_bad_input_in_a_worker_comes_back_typed(tmp_path: Path) -> None:
    """The callable class Ray Data runs: bad input becomes an error row the driver raises as zoo's error."""
    import pickle

    from zoo.benchmarks.ray_engine import ChunkEncoder
    from zoo.benchmarks.splade import DocumentEncoder
    from zoo.errors import FormatError

    batch = {"job": np.array([0]), "chunk": np.array([3]), "items": np.array([pickle.dumps(["a b"])], dtype=object)}
    for model, message in ((tmp_path / "gone", "same path on every node"), (tmp_path, "no modules.json")):
        out = ChunkEncoder(DocumentEncoder(model, 2), "cpu", None)(batch)
        error = pickle.loads(out["error"][0])
        assert type(error) is FormatError and message in str(error), error
        assert out["data"][0] == b"" and out["chunk"][0] == 3
