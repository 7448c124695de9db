"""Rule tables map each source tensor exactly once and name every mismatch."""

from __future__ import annotations

import numpy as np
import pytest

from converters.rules import Rule, check_shapes, plan
from zoo.errors import MappingError

RULES = (
    Rule(r"enc/layer_(\d+)/kernel", r"encoder.layer.\1.weight", "transpose"),
    Rule(r"enc/layer_(\d+)/bias", r"encoder.layer.\1.bias"),
)
SKIP = (r".*/adam_[mv]", r"global_step")


def test_plan_maps_skips_and_orders():
    p = plan(["enc/layer_1/kernel", "enc/layer_1/bias", "enc/layer_1/kernel/adam_m", "global_step"], RULES, SKIP)
    assert {(m.source, m.target, m.transform) for m in p.mapped} == {
        ("enc/layer_1/kernel", "encoder.layer.1.weight", "transpose"),
        ("enc/layer_1/bias", "encoder.layer.1.bias", "identity"),
    }
    assert set(p.skipped) == {"enc/layer_1/kernel/adam_m", "global_step"}
    kernel = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert np.array_equal(p.by_target()["encoder.layer.1.weight"].apply(kernel), kernel.T)


def test_unmatched_name_is_an_error():
    with pytest.raises(MappingError, match="match no rule: enc/extra") as info:
        plan(["enc/layer_0/bias", "enc/extra"], RULES, SKIP)
    assert info.value.exit_code == 2


def test_two_sources_on_one_target_is_an_error():
    rules = RULES + (Rule(r"alias/(\d+)", r"encoder.layer.\1.bias"),)
    with pytest.raises(MappingError, match="both map to"):
        plan(["enc/layer_0/bias", "alias/0"], rules)


def test_check_shapes_reports_missing_unused_and_mismatch():
    p = plan(["enc/layer_0/kernel", "enc/layer_0/bias", "enc/layer_9/bias"], RULES)
    sources = {"enc/layer_0/kernel": (4, 3), "enc/layer_0/bias": (5,), "enc/layer_9/bias": (3,)}
    expected = {"encoder.layer.0.weight": (3, 4), "encoder.layer.0.bias": (3,), "encoder.layer.1.bias": (3,)}
    with pytest.raises(MappingError) as info:
        check_shapes(p, sources, expected)
    message = str(info.value)
    assert "missing from the checkpoint: encoder.layer.1.bias" in message
    assert "not used by the model: enc/layer_9/bias" in message
    assert "shape mismatch: enc/layer_0/bias (5,)" in message
    assert "encoder.layer.0.weight" not in message  # the transposed kernel fits
