"""`zoo bench` on the command line: judging OK / documented drift / FAIL with a user registry, exit
codes, resume after an interruption, and the Ray engine's options (tests/test_bench_ray.py runs it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bench_support import DATA, metric, registry_entry, run_lists, write_registry

from zoo.cli import main

ROOT = Path(__file__).resolve().parent.parent
M2KR = DATA / "m2kr"
MODEL = Path(__file__).resolve().parent / "data" / "golden" / "flmr" / "preflmr" / "hf"
BENCH = "M2KR OKVQA"


def _bench(capsys, *args: str) -> tuple[int, dict]:
    code = main(["bench", str(MODEL), "--data", str(M2KR), "--chunk-size", "3", "--batch-size", "2", "--json", *args])
    out = capsys.readouterr().out
    return code, json.loads(out[out.index("{") :])


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> tuple[Path, dict]:
    from zoo.benchmarks import BenchOptions, run

    work = tmp_path_factory.mktemp("work")
    result = run(str(MODEL), M2KR, BenchOptions(work=work, chunk_size=3, batch_size=2))
    return work, {s.benchmark: s.metrics for s in result.sections}


def test_judging_ok_drift_and_fail(measured, tmp_path: Path, monkeypatch, capsys) -> None:
    work, numbers = measured
    r5, pr5 = numbers[BENCH]["R@5"] * 100, numbers[BENCH]["PR@5"] * 100
    write_registry(
        tmp_path / "registry.json",
        [
            registry_entry("tiny_ok", "flmr", "late-interaction", [metric(BENCH, "R@5", r5, "converted")]),
            registry_entry(
                "tiny_drift",
                "flmr",
                "late-interaction",
                [
                    metric(BENCH, "PR@5", pr5 - 1.2, "paper"),
                    metric(BENCH, "PR@5", pr5 + 0.2, "converted"),
                    metric(BENCH, "R@5", r5, "converted"),
                ],
            ),
            registry_entry(
                "tiny_fail",
                "flmr",
                "late-interaction",
                [metric(BENCH, "R@5", r5 + 5, "paper"), metric(BENCH, "R@5", r5 + 5, "converted")],
            ),
        ],
    )
    monkeypatch.setenv("ZOO_REGISTRY", str(tmp_path / "registry.json"))
    verdicts = {}
    for model_id, expected_code in (("tiny_ok", 0), ("tiny_drift", 0), ("tiny_fail", 1)):
        code, out = _bench(capsys, "--work", str(work), "--judge-as", model_id)
        assert code == expected_code and out["ok"] == (expected_code == 0)
        verdicts[model_id] = {(j["metric"], j["verdict"]) for j in out["judgements"]}
    assert verdicts["tiny_ok"] == {("R@5", "OK")}
    assert verdicts["tiny_drift"] == {("PR@5", "OK (documented drift)"), ("R@5", "OK")}
    assert verdicts["tiny_fail"] == {("R@5", "FAIL")}


def test_text_output_and_bad_input(measured, capsys) -> None:
    work, _ = measured
    assert main(["bench", str(MODEL), "--data", str(M2KR), "--work", str(work), "--chunk-size", "3"]) == 0
    text = capsys.readouterr().out
    assert "M2KR OKVQA: 5 queries, 7 documents" in text and "PR@5" in text
    assert main(["bench", str(MODEL), "--data", str(M2KR), "--judge-as", "no_such_model"]) == 2
    assert main(["bench", str(MODEL), "--data", str(DATA / "nothing")]) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shard", "0/2"], "unrecognized arguments: --shard"),  # Ray replaced shards and merging
        (["--merge-from", "x"], "unrecognized arguments: --merge-from"),
        (["--workers", "2"], "--workers: only with --engine ray"),
        (["--ray-address", "auto", "--gpus-per-worker", "1"], "--ray-address, --gpus-per-worker: only with"),
        (["--engine", "ray", "--workers", "0"], "need at least one worker"),
        (["--engine", "ray", "--gpus-per-worker", "-1"], "must be >= 0"),
        (["--engine", "ray", "--backend", "tf"], "--backend tf runs in the single-process engine only"),
        (["--engine", "spark"], "invalid choice: 'spark'"),
    ],
)
def test_engine_options_are_checked_before_any_work(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    code = main(["bench", str(MODEL), "--data", str(M2KR), "--work", str(tmp_path), "--json", *args])
    error = json.loads(capsys.readouterr().out)["error"]
    assert code == 2 and message in error["message"], error
    assert not list(tmp_path.iterdir())  # refused before a store was made


def test_api_refuses_the_removed_shard_options(tmp_path: Path) -> None:
    import zoo
    from zoo.errors import InputError

    for option in ({"shard": "0/2"}, {"merge_from": [str(tmp_path)]}):
        with pytest.raises(InputError, match="unexpected keyword argument"):
            zoo.bench(str(MODEL), M2KR, work=tmp_path, **option)


def test_a_missing_ray_extra_is_a_clear_error(tmp_path: Path) -> None:
    """Without ray installed (`import ray` fails), --engine ray names the extra to install (exit 2)."""
    code = "import sys\nsys.modules['ray'] = None\nfrom zoo.cli import main\nraise SystemExit(main(sys.argv[1:]))\n"
    args = ["bench", str(MODEL), "--data", str(M2KR), "--work", str(tmp_path), "--chunk-size", "3", "--engine", "ray"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code, *args, "--json"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300
    )
    assert result.returncode == 2, result.stderr
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "MissingDependencyError" and error["extra"] == "ray" and error["module"] == "ray"
    assert "zoo bench --engine ray needs the Python package 'ray'" in error["message"]
    assert "pip install 'zoo[ray]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_interrupted_encoding_resumes_to_the_same_numbers(measured, tmp_path: Path, monkeypatch, capsys) -> None:
    from zoo.benchmarks import flmr

    real, calls = flmr._documents, []

    def dies_on_the_third_chunk(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(flmr, "_documents", dies_on_the_third_chunk)
    assert main(["bench", str(MODEL), "--data", str(M2KR), "--work", str(tmp_path), "--chunk-size", "3"]) == 130
    assert len(list(tmp_path.rglob("chunk-*.safetensors"))) == 2
    monkeypatch.setattr(flmr, "_documents", real)
    _, out = _bench(capsys, "--work", str(tmp_path))
    assert {s["benchmark"]: s["metrics"] for s in out["sections"]} == measured[1]
    for section in out["sections"]:
        reference = measured[0] / Path(section["files"]["run"]).relative_to(tmp_path)
        assert run_lists(section["files"]["run"]) == run_lists(str(reference))
