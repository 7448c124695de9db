"""A converted directory carries its proof: without the source, `weights` checks every tensor against the
sha256 its source tensor had at conversion, and `reference` against the stored reference outputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import zoo
from zoo.checks.runner import verify_dir

GOLDEN = Path(__file__).resolve().parent / "data" / "golden"


def test_legacy_flmr_without_an_official_model_still_verifies_offline(tmp_path):
    config = tmp_path / "config"
    shutil.copytree(GOLDEN / "flmr" / "preflmr" / "hf", config)
    (config / "model.safetensors").unlink()  # config and tokenizers only: no official model to compare with
    checkpoint = tmp_path / "legacy.ckpt"
    shutil.copyfile(GOLDEN / "flmr" / "preflmr" / "legacy.ckpt", checkpoint)
    out = zoo.convert(checkpoint, format="flmr-legacy", out=tmp_path / "out", config=str(config))
    recorded = zoo.read_manifest(out)["source_tensor_sha256"]
    assert len(recorded) == 169
    shutil.rmtree(config)
    checkpoint.unlink()

    moved = shutil.copytree(out, tmp_path / "moved")
    report = verify_dir(moved)
    verdicts = {c.name: c.verdict for c in report.checks}
    assert report.ok and verdicts["files"] == "PASS" and verdicts["weights"] == "PASS", report
    assert "match their source" in next(c.value for c in report.checks if c.name == "weights")

    weights = moved / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01  # the last tensor's bytes
    weights.write_bytes(bytes(data))
    broken = {c.name: c for c in verify_dir(moved).checks}
    assert broken["weights"].verdict == "FAIL" and "differs from its source" in broken["weights"].detail
    assert broken["files"].verdict == "FAIL"
