"""The TAPAS parity gate (zoo/checks/gate.py): faithful conversions pass however much float32 rounding
moves their outputs; each kind of conversion mistake is refused (scripts/parity_evidence.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
pytest.importorskip("tensorflow")

import parity_evidence  # noqa: E402


@pytest.mark.parametrize("shape, std", [("tiny", 0.02), ("tiny", 0.3), ("384x12", 0.3)])
def test_faithful_passes_and_every_mistake_is_refused(shape, std, tmp_path):
    rows = {
        r["variant"]: r
        for r in parity_evidence.evidence(shape, std, tmp_path, ["faithful", *parity_evidence.MUTATIONS])
    }
    assert rows["faithful"]["verdict"] == "PASS", rows["faithful"]["detail"]
    refused = {name: r["verdict"] for name, r in rows.items() if name != "faithful"}
    assert set(refused.values()) == {"FAIL"}, refused
    if shape == "384x12":  # float32 rounding alone exceeds the old fixed 1e-5 bound, yet the conversion is faithful
        assert rows["faithful"]["float32_diff"] > 1e-5 and rows["faithful"]["float64_diff"] < 1e-9


def test_accept_mismatch_keeps_a_failing_conversion_and_says_so(tmp_path, monkeypatch):
    """A converter bug (one square kernel not transposed) is refused; --accept-mismatch keeps it, recorded."""
    import make_tapas_checkpoint as make

    import zoo
    from converters import tapas_retriever
    from converters.rules import Rule

    source = make.write_checkpoint(make.CheckpointSpec(seed=3), tmp_path / "ckpt")
    buggy = tuple(
        Rule(r.pattern, r.target, "identity") if "(query|key|value)/kernel" in r.pattern else r
        for r in tapas_retriever.RULES
    )
    monkeypatch.setattr(tapas_retriever, "RULES", buggy)
    with pytest.raises(zoo.ZooError, match="--accept-mismatch"):
        zoo.convert(source, format="tapas-retriever", out=tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    kept = zoo.convert(source, format="tapas-retriever", out=tmp_path / "kept", accept_mismatch=True)
    manifest = zoo.read_manifest(kept)
    assert manifest["accepted_mismatch"] == ["encodings"]
    assert any("ACCEPTED MISMATCH" in n for n in manifest["notes"])
    assert "ACCEPTED MISMATCH" in (kept / "README.md").read_text()


def test_a_zip_is_extracted_once_per_conversion(tmp_path, monkeypatch):
    """The converter, the weights replay and the TF reference share one extraction of the source zip."""
    import make_tapas_checkpoint as make

    import zoo
    from converters import tapas_checkpoint

    make.write_checkpoint(make.CheckpointSpec(seed=4), tmp_path / "ckpt")
    zipped = make.write_zip(tmp_path / "ckpt", tmp_path / "m.zip")
    calls = []
    real = tapas_checkpoint.safe_extract
    monkeypatch.setattr(tapas_checkpoint, "safe_extract", lambda *a: calls.append(a) or real(*a))
    out = zoo.convert(zipped, format="tapas-retriever", out=tmp_path / "out")
    assert len(calls) == 1
    checks = {c["name"]: c["verdict"] for c in zoo.read_manifest(out)["checks_at_conversion"]}
    assert checks == {"weights": "PASS", "encodings": "PASS"}
    assert json.loads((out / "config.json").read_text())["model_type"] == "zoo_tapas_dual_encoder"
