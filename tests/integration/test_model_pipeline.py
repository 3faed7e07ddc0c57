"""The pipeline's sensing path with the real LiteRT runtime, in process: the shipped int8 model and the
trackers run on the simulated room and their frames say so (``estimator: tracker``, the model named in
``estimators``), with inference times in status, performance and /metrics. Nothing stands in for the
estimator here."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

from appliance.api.keys import HUB, PIPELINE
from appliance.contracts import TRACKER_OUTPUTS, PoseFrame
from appliance.pose.sensing.classifier import DEFAULT_MODEL
from tests.app_support import start

# Each link learns its empty room over the calibration; a short one keeps the test quick.
MODEL_ON = {"sensing.enabled": True, "detector.calibration_s": 4.0}


async def test_the_model_estimates_pose_frames_with_the_real_runtime(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client, admin = await start(aiohttp_client, tmp_path, **MODEL_ON)
    frames = client.app[HUB].subscribe("test-model", ("pose",), maxsize=10_000)
    deadline = time.monotonic() + 60
    model_frames: list[PoseFrame] = []
    while len(model_frames) < 5:
        assert time.monotonic() < deadline, "no model frames within 60 s"
        item = (await asyncio.wait_for(frames.get(), timeout=deadline - time.monotonic())).item
        if isinstance(item, PoseFrame) and item.estimator == "tracker":
            model_frames.append(item)
    assert client.app[PIPELINE].estimator is not None
    for frame in model_frames:
        assert frame.source == "simulated" and frame.model_version
        assert dict(frame.estimators) == TRACKER_OUTPUTS and frame.estimators["person_count"] == "model"
        assert frame.processing_ms > 0

    status = await (await client.get("/api/v1/system/status", headers=admin)).json()
    assert status["current"]["estimator"] == "tracker"
    model = status["model"]
    assert model["loaded"] and model["runtime"] == "ai_edge_litert" and model["version"]
    assert model["links_with_reference"] >= model["min_links"] == 1
    assert model["inference_ms"]["p50"] > 0
    performance = await (await client.get("/api/v1/system/performance", headers=admin)).json()
    assert performance["inference_ms"]["p50"] > 0
    metrics = await (await client.get("/metrics", headers=admin)).text()
    model_count = re.search(r'^invispose_pose_frames_total\{estimator="tracker"\} (\S+)$', metrics, re.M)
    inferences = re.search(r"^invispose_inference_duration_seconds_count (\S+)$", metrics, re.M)
    assert model_count and float(model_count.group(1)) >= 5
    assert inferences and float(inferences.group(1)) >= 5
    assert DEFAULT_MODEL.is_file()
