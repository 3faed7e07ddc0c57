"""The shipped pose model: loads and runs in every installed runtime, and keeps its tensor contract."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.contracts.coco import ACTIVITIES, N_KEYPOINTS
from appliance.pose.runtime import (
    DEFAULT_MODEL,
    INPUT_SHAPES,
    MAX_SLOTS,
    OUTPUT_SHAPES,
    RUNTIMES,
    PoseModel,
    example_inputs,
    usable_runtimes,
)

MAX_BYTES = 1_000_000
MAX_PARAMETERS = 500_000


@pytest.fixture(scope="module")
def verdicts() -> dict[str, str]:
    return dict(usable_runtimes(DEFAULT_MODEL))


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_model_runs_in_every_usable_runtime(runtime: str, verdicts: dict[str, str]) -> None:
    if verdicts[runtime] != "ok":
        pytest.skip(f"{runtime} is not usable here: {verdicts[runtime]}")
    model = PoseModel(DEFAULT_MODEL, runtime=runtime)  # type: ignore[arg-type]
    out = model.infer(example_inputs())
    assert out.presence.shape == (MAX_SLOTS,)
    assert out.keypoints.shape == (MAX_SLOTS, N_KEYPOINTS, 3)
    assert out.confidence.shape == (MAX_SLOTS, N_KEYPOINTS)
    assert out.activity.shape == (MAX_SLOTS, len(ACTIVITIES))
    assert np.isfinite(out.keypoints).all()
    assert ((out.presence >= 0) & (out.presence <= 1)).all()
    assert ((out.confidence >= 0) & (out.confidence <= 1)).all()
    np.testing.assert_allclose(out.activity.sum(axis=-1), 1.0, atol=0.05)


def test_ai_edge_litert_is_usable_here(verdicts: dict[str, str]) -> None:
    assert verdicts["ai_edge_litert"] == "ok"


def test_tensor_contract_and_size() -> None:
    model = PoseModel(DEFAULT_MODEL)
    info = model.info()
    assert info["bytes"] <= MAX_BYTES
    shapes = {t["role"]: tuple(t["shape"]) for t in info["inputs"]}
    assert shapes == INPUT_SHAPES
    assert {t["role"]: tuple(t["shape"]) for t in info["outputs"]} == OUTPUT_SHAPES
    for tensor in info["inputs"] + info["outputs"]:
        assert tensor["dtype"] == "int8"
        assert tensor["quantization"]["scale"] > 0
    assert "SIMULATED" in info["trained_on"]
    provenance = info["provenance"]
    assert provenance["training"]["parameters"] <= MAX_PARAMETERS
    assert "SIMULATED" in provenance["trained_on"]


def test_quantization_round_trip_is_within_half_a_step() -> None:
    model = PoseModel(DEFAULT_MODEL)
    inputs = example_inputs(seed=3)
    tensor = model._in["csi"]
    quantized = model._quantize(inputs.csi, tensor)
    restored = (quantized.astype(np.float32) - tensor.zero_point) * tensor.scale
    lo = (-128 - tensor.zero_point) * tensor.scale
    hi = (127 - tensor.zero_point) * tensor.scale
    inside = (inputs.csi >= lo) & (inputs.csi <= hi)
    assert inside.mean() > 0.99
    assert np.abs(restored - inputs.csi)[inside].max() <= tensor.scale / 2 + 1e-6


def test_keypoints_are_composed_in_room_metres() -> None:
    model = PoseModel(DEFAULT_MODEL)
    inputs = example_inputs()
    raw = model.infer_raw(inputs.csi, inputs.geometry)
    out = model.infer(inputs)
    size = np.asarray(inputs.room_size_m, np.float32)
    np.testing.assert_allclose(out.centre, raw["centre"] * size, rtol=1e-5)
    np.testing.assert_allclose(out.keypoints, out.centre[:, None, :] + raw["offsets"], rtol=1e-5, atol=1e-5)
    assert model.version.startswith("invispose-pose-v1@")
