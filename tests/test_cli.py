"""The CLI as a user meets it: exit codes, --json, suggestions, registry errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def zoo(*args: str, env: dict[str, str] | None = None, home: Path) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "ZOO_HOME": str(home), "ZOO_REGISTRY": "", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "zoo", *args], capture_output=True, text=True, cwd=ROOT, env=full_env, timeout=120
    )


def test_list_json_lists_exactly_the_twenty(tmp_path):
    result = zoo("list", "--json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 20 and len({r["id"] for r in rows}) == 20
    assert all(r["state"] == {"pulled": False, "converted": False, "verified": False} for r in rows)
    flmr = json.loads(zoo("list", "--family", "flmr", "--json", home=tmp_path).stdout)
    assert {r["id"] for r in flmr} == {"FLMR", "PreFLMR_ViT-B", "PreFLMR_ViT-L", "PreFLMR_ViT-G"}


def test_info_shows_the_drift_table(tmp_path):
    text = zoo("info", "LinWeizheDragon/PreFLMR_ViT-G", home=tmp_path)
    assert text.returncode == 0
    assert "M2KR Infoseek          PR@5       59.6      57.7    -1.9" in text.stdout
    data = json.loads(zoo("info", "PreFLMR_ViT-G", "--json", home=tmp_path).stdout)
    cell = next(r for r in data["drift"] if r["benchmark"] == "M2KR Infoseek" and r["metric"] == "PR@5")
    assert (cell["paper"], cell["converted"]) == (59.6, 57.7) and cell["delta"] == pytest.approx(-1.9)
    assert data["source"]["repo"] == "LinWeizheDragon/PreFLMR_ViT-G"


def test_registry_verbs_load_no_model_stack(tmp_path):
    """`zoo list` and `zoo info` read the registry only: neither torch nor TensorFlow is imported (transformers
    is, lightly: the CLI turns its logging down before any command runs)."""
    code = (
        "import sys\nfrom zoo.cli import main\nassert main(sys.argv[1:]) == 0\n"
        "print(sorted(m for m in ('torch', 'tensorflow') if m in sys.modules))"
    )
    for verb in (["list"], ["info", "PreFLMR_ViT-G"]):
        result = subprocess.run(
            [sys.executable, "-c", code, *verb],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "ZOO_HOME": str(tmp_path), "ZOO_REGISTRY": ""},
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-1] == "[]", verb


@pytest.mark.parametrize("verb", [("info",), ("pull",), ("path",)])
def test_unknown_id_exits_2_with_suggestions(tmp_path, verb):
    result = zoo(*verb, "tapas_nq_retriever_tine", home=tmp_path)
    assert result.returncode == 2
    assert "did you mean: tapas_nq_retriever_tiny" in result.stderr


def test_unknown_id_json_error(tmp_path):
    result = zoo("info", "PreFLMR", "--json", home=tmp_path)
    assert result.returncode == 2
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "UnknownModelError" and error["exit_code"] == 2
    assert any(s.startswith("PreFLMR_ViT-") for s in error["suggestions"])


def test_malformed_user_registry_names_file_entry_field(tmp_path):
    registry = json.loads((ROOT / "registry.json").read_text())
    model = registry["models"][4]
    model["source"]["size"] = -3
    bad = tmp_path / "mine.json"
    bad.write_text(json.dumps({"schema_version": 1, "models": [model]}))
    result = zoo("list", env={"ZOO_REGISTRY": str(bad)}, home=tmp_path)
    assert result.returncode == 2
    assert f"{bad}: entry '{model['id']}': field 'source.size'" in result.stderr


def test_bad_usage_exits_2(tmp_path):
    assert zoo("pull", home=tmp_path).returncode == 2  # neither ids nor --all
    assert zoo("convert", "--from", "x.zip", home=tmp_path).returncode == 2  # no --format/--out
    assert zoo("convert", "--from", "x", "--format", "nope", "--out", "o", home=tmp_path).returncode == 2
    assert zoo("path", "FLMR", home=tmp_path).returncode == 1  # known but not in the cache


def test_only_convert_and_verify_put_idle_openmp_threads_to_sleep():
    """zoo.cli.entry's environment per command line: passive OpenMP waiting where torch runs beside
    TensorFlow and the weights replay; the spinning default where `zoo bench` runs back-to-back ops."""
    from zoo.cli import process_environment

    assert process_environment(["-v", "convert", "--from", "x"])["OMP_WAIT_POLICY"] == "PASSIVE"
    assert process_environment(["verify", "tapas_nq_retriever_tiny"])["OMP_WAIT_POLICY"] == "PASSIVE"
    for argv in (["bench", "tapas_nq_retriever_tiny"], ["list"], ["--version"], []):
        environment = process_environment(argv)
        assert "OMP_WAIT_POLICY" not in environment and environment["TF_USE_LEGACY_KERAS"] == "1", argv


def test_convert_command_checks_its_conversion_without_loading_keras(tmp_path):
    """`zoo convert` as users type it (zoo.cli.entry): the TAPAS conversion and its checks pass, and
    TensorFlow's eager import of Keras (and scikit-learn with it) is skipped in the `zoo` process."""
    from tapas_support import factory

    make = factory()
    make.write_checkpoint(make.CheckpointSpec(kind="retriever"), tmp_path / "ckpt")
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "zoo", "convert", "--from", str(tmp_path / "ckpt")]
        + ["--format", "tapas-retriever", "--out", str(tmp_path / "out"), "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**env, "ZOO_HOME": str(tmp_path / "home")},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    checks = json.loads((tmp_path / "out" / "zoo_manifest.json").read_text())["checks_at_conversion"]
    assert {c["name"]: c["verdict"] for c in checks} == {"weights": "PASS", "encodings": "PASS"}
    lines = result.stderr.splitlines()
    imported = {line.rsplit("|", 1)[-1].strip() for line in lines if line.startswith("import time:")}
    assert "tensorflow.python.framework.ops" in imported and "torch" in imported  # TF's C++ log can split its own line
    assert not {"keras", "keras.src.optimizers", "sklearn"} & imported
