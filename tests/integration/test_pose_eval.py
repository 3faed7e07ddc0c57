"""A small held-out evaluation of the shipped model through the serving path (simulator -> prep ->
features -> TFLite). Bounded to a few short episodes so that the file runs in well under a minute."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.pose.evaluation import evaluate
from appliance.pose.runtime import DEFAULT_MODEL

EPISODES, DURATION_S = 4, 30.0


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return evaluate(DEFAULT_MODEL, episodes=EPISODES, duration_s=DURATION_S, seed=100, workers=2)


def test_result_has_the_documented_keys(result: dict[str, Any]) -> None:
    assert set(result) == {
        "pck_0_2",
        "mpjpe_mm",
        "per_joint_pck",
        "count_accuracy",
        "presence_f1",
        "activity_accuracy",
        "fall_recall",
        "false_falls_per_hour",
        "by_person_count",
        "n_windows",
        "split",
        "baselines",
    }
    assert set(result["by_person_count"]) == {"1", "2", "3"}
    assert set(result["baselines"]) == {"mean_pose", "centred_mean_pose"}
    assert "SIMULATED" in result["split"]["data"]
    assert result["n_windows"] > 100


def test_model_places_people_better_than_the_mean_pose_at_the_room_centre(result: dict[str, Any]) -> None:
    assert result["mpjpe_mm"] < result["baselines"]["mean_pose"]["mpjpe_mm"]


def test_presence_is_detected(result: dict[str, Any]) -> None:
    assert result["presence_f1"] >= 0.8


# The project's targets. The shipped model misses them (MODEL_CARD.md, "Evaluation"); strict xfail keeps
# the gap visible and turns into a failure, to be promoted to a plain test, once a model meets them.
@pytest.mark.xfail(strict=True, reason="shipped v1 model: PCK@0.2 ~0.002 vs centred mean pose ~0.12")
def test_model_beats_the_centred_mean_pose(result: dict[str, Any]) -> None:
    assert result["pck_0_2"] > result["baselines"]["centred_mean_pose"]["pck_0_2"]


@pytest.mark.xfail(strict=True, reason="shipped v1 model: person count right in ~36 % of windows")
def test_count_far_above_chance(result: dict[str, Any]) -> None:
    assert result["count_accuracy"] >= 0.7
