"""zoo.conversion: nothing half-written ever looks finished, user directories are never clobbered,
and the card and manifest record provenance and the checks that ran."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from zoo import conversion, manifest
from zoo.errors import InputError

GOLDEN = Path(__file__).parent / "data" / "golden" / "tapas" / "retriever_proj8"
ROOT = Path(__file__).resolve().parent.parent


def test_converted_directory_carries_card_manifest_and_checks(tmp_path):
    out = conversion.convert_local(GOLDEN, "tapas-retriever", tmp_path / "out")
    data = manifest.read(out)
    assert data["format"] == "tapas-retriever" and data["family"] == "tapas"
    assert {c["name"]: c["verdict"] for c in data["checks_at_conversion"]} == {"weights": "PASS", "encodings": "PASS"}
    assert set(data["files"]) >= {"config.json", "model.safetensors", "README.md"}
    assert len(data["mapping"]) == len({m["target"] for m in data["mapping"]})
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers\n")
    assert "| weights | PASS |" in card and "model.ckpt.index" in card
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp directory left beside it


def test_failure_mid_conversion_leaves_nothing(tmp_path, monkeypatch):
    import converters.tapas_retriever as retriever

    def broken(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(retriever, "write_model", broken)
    with pytest.raises(OSError, match="disk full"):
        conversion.convert_local(GOLDEN, "tapas-retriever", tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_failed_check_aborts_before_rename(tmp_path, monkeypatch):
    from zoo.checks import runner
    from zoo.checks.report import Check

    monkeypatch.setattr(
        runner,
        "conversion_checks",
        lambda family, model_dir, draft, early: [Check("weights", ok=False, value="1/2 tensors bit-exact")],
    )
    with pytest.raises(conversion.ConversionError, match="fails verification: weights"):
        conversion.convert_local(GOLDEN, "tapas-retriever", tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_user_directory_is_not_replaced_without_force(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not empty"):
        conversion.convert_local(GOLDEN, "tapas-retriever", out)
    assert (out / "notes.txt").read_text() == "keep me"
    conversion.convert_local(GOLDEN, "tapas-retriever", tmp_path / "model")
    with pytest.raises(InputError, match="already holds a converted model"):
        conversion.convert_local(GOLDEN, "tapas-retriever", tmp_path / "model")
    conversion.convert_local(GOLDEN, "tapas-retriever", tmp_path / "model", force=True)
    assert manifest.read(tmp_path / "model")["format"] == "tapas-retriever"


def test_cli_convert_from_and_verify_with_golden(tmp_path):
    env = {**os.environ, "ZOO_HOME": str(tmp_path / "home"), "ZOO_REGISTRY": ""}
    out = tmp_path / "out"

    def zoo(*args):
        return subprocess.run(
            [sys.executable, "-m", "zoo", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300
        )

    result = zoo("convert", "--from", str(GOLDEN), "--format", "tapas-retriever", "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["path"] == str(out)
    result = zoo("verify", str(out), "--golden", str(GOLDEN), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert [c["name"] for c in report["checks"]] == ["files", "weights", "encodings", "golden"]
    assert report["ok"] and json.loads((out / "zoo_verify.json").read_text())["ok"]
    wrong = zoo("convert", "--from", str(GOLDEN), "--format", "tapas-reader", "--out", str(tmp_path / "r"))
    assert wrong.returncode == 2 and not (tmp_path / "r").exists()


def test_cli_reset_flag_decides_when_there_is_no_meta_graph(tmp_path):
    """The golden reader was run with per-cell reset: without its .meta, only `yes` reproduces it."""
    import shutil

    source = tmp_path / "reader"
    shutil.copytree(GOLDEN.parent / "reader_reset", source)
    (source / "model.ckpt.meta").unlink()
    env = {**os.environ, "ZOO_HOME": str(tmp_path / "home"), "ZOO_REGISTRY": ""}

    def zoo(*args):
        return subprocess.run(
            [sys.executable, "-m", "zoo", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300
        )

    base = ("convert", "--from", str(source), "--format", "tapas-reader")
    missing = zoo(*base, "--out", str(tmp_path / "none"))
    assert missing.returncode == 2 and "--reset-position-index-per-cell yes|no" in missing.stderr
    verdicts = {}
    for flag in ("yes", "no"):
        out = tmp_path / flag
        assert zoo(*base, "--out", str(out), "--reset-position-index-per-cell", flag).returncode == 0
        assert json.loads((out / "config.json").read_text())["reset_position_index_per_cell"] is (flag == "yes")
        verdicts[flag] = zoo("verify", str(out), "--golden", str(GOLDEN.parent / "reader_reset")).returncode
    assert verdicts == {"yes": 0, "no": 1}


def test_registry_id_is_not_shadowed_by_a_same_named_folder(tmp_path, monkeypatch):
    import zoo
    from zoo.errors import FormatError, UnknownModelError

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    (tmp_path / "tapas_nq_retriever_tiny").mkdir()  # e.g. the user's own unzipped download
    with pytest.raises(zoo.ZooError, match="ZOO_OFFLINE"):  # looked up in the registry, not read as a dir
        zoo.load("tapas_nq_retriever_tiny")
    (tmp_path / "not_an_id").mkdir()
    with pytest.raises(FormatError, match="not a zoo model directory"):
        zoo.verify("not_an_id")
    with pytest.raises(UnknownModelError):
        zoo.load("no_such_model")
    out = conversion.convert_local(GOLDEN, "tapas-retriever", tmp_path / "converted")
    assert type(zoo.load(out)).__name__ == "TapasDualEncoder"
    assert type(zoo.load("converted")).__name__ == "TapasDualEncoder"  # a zoo dir named by string


@pytest.mark.parametrize(
    ("src", "fmt", "options"),
    [
        (GOLDEN, "tapas-retriever", {}),
        (GOLDEN.parent / "reader_reset", "tapas-reader", {}),
        (GOLDEN.parent.parent / "flmr" / "preflmr" / "legacy.ckpt", "flmr-legacy", {"config": "hf"}),
    ],
)
def test_every_converter_announces_the_config_and_options_it_then_writes(tmp_path, src, fmt, options):
    """The early reference is computed from what on_config says; it must be what the conversion records."""
    from converters import load_format

    options = {k: str(src.parent / v) for k, v in options.items()}
    announced: list[tuple[dict, dict, bool]] = []
    out = tmp_path / "out"
    out.mkdir()

    def on_config(config, resolved):
        announced.append((dict(config), dict(resolved), any(out.glob("*.safetensors"))))

    result = load_format(fmt).convert(src, out, options, False, on_config=on_config)
    [(config, resolved, weights_existed)] = announced
    assert not weights_existed  # announced before the weights are written
    assert resolved == result.options
    assert config == result.config
    written = {k: v for k, v in json.loads((out / "config.json").read_text()).items() if k != "transformers_version"}
    assert written and {k: config[k] for k in written} == written


def test_the_tf_reference_runs_while_the_weights_are_written(tmp_path, monkeypatch):
    import converters.tapas_retriever as retriever
    from zoo.checks import tapas

    events: list[str] = []
    real_probe, real_write = tapas.source_probe, retriever.write_model

    def probe(*args):
        events.append("reference started")
        return real_probe(*args)

    def write(*args):
        found = real_write(*args)
        events.append("weights written")
        return found

    monkeypatch.setattr(tapas, "source_probe", probe)
    monkeypatch.setattr(retriever, "write_model", write)
    out = conversion.convert_local(GOLDEN, "tapas-retriever", tmp_path / "out")
    assert events.index("reference started") < events.index("weights written"), events
    assert events.count("reference started") == 1  # the encodings check used it: no second reference run
    checks = {c["name"]: c for c in manifest.read(out)["checks_at_conversion"]}
    assert checks["encodings"]["verdict"] == "PASS"
    assert "TensorFlow reference (float64) on retriever_proj8 (sha256 " in checks["encodings"]["detail"]


def test_the_early_reference_equals_the_one_verify_runs_later(tmp_path):
    """The probe stored at conversion (started early from the converter's announcement) is what verify's
    encodings check computes afresh from the converted directory and its manifest."""
    import numpy as np

    from zoo.checks import reference, tapas

    out = conversion.convert_local(GOLDEN, "tapas-retriever", tmp_path / "out")
    stored = reference.load(out)
    fresh = tapas.reference_probe(out, manifest.read(out))
    assert stored is not None and not isinstance(fresh, str)
    assert stored.reference == fresh.reference and "sha256" in stored.reference
    assert str(tmp_path) not in stored.reference  # a name and a hash, never a local path
    assert stored.inputs.keys() == fresh.inputs.keys() and stored.outputs.keys() == fresh.outputs.keys()
    for key in stored.inputs:
        assert np.array_equal(stored.inputs[key], fresh.inputs[key]), key
    for key in stored.outputs:
        assert np.array_equal(stored.outputs[key], fresh.outputs[key]), key


def test_a_failed_write_waits_for_the_early_reference_and_leaves_nothing(tmp_path, monkeypatch):
    """The reference reads the zip's extraction: it finishes before the extraction is removed and
    before convert_local returns, also when the conversion fails."""
    import tempfile
    import time

    from tapas_support import factory

    import converters.tapas_retriever as retriever
    from zoo.checks import tapas

    def broken(*args, **kwargs):
        raise OSError("disk full (simulated)")

    finished: list[str] = []
    real_probe = tapas.source_probe

    def slow_probe(*args):
        time.sleep(0.5)  # still running when the write fails
        probe = real_probe(*args)
        finished.append(probe.reference)
        return probe

    monkeypatch.setattr(tapas, "source_probe", slow_probe)
    monkeypatch.setattr(retriever, "write_model", broken)
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    archive = factory().write_zip(GOLDEN, tmp_path / "src.zip", "inner")
    with pytest.raises(OSError, match="disk full"):
        conversion.convert_local(archive, "tapas-retriever", tmp_path / "out")
    assert finished == ["the TensorFlow reference (float64)"]  # it ran to the end on the extracted files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.zip", "temp"]
    assert list(temp.iterdir()) == []  # and the extraction is gone
