"""A small held-out evaluation of the shipped model through the serving path (simulator -> prep ->
features -> TFLite). Bounded to a few short episodes so that the file runs in well under a minute."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.cli.pose import format_eval
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


def test_the_table_shows_every_metric_beside_its_baselines(result: dict[str, Any]) -> None:
    """``invispose eval pose`` without --json: the numbers of the result, each in its column."""
    lines = format_eval(result).splitlines()
    assert lines[0] == f"*** {result['split']['data']} ***"
    assert f"{result['n_windows']} windows" in lines[1]
    assert lines[3].split() == ["metric", "model", "mean_pose", "centred"]
    rows = {}
    group = ""
    for line in lines[4:]:
        if line.startswith("-- "):
            group = line
        elif line.startswith("  "):
            rows[group, line.split()[0]] = line.split()[1:]
    everyone = f"-- all ({result['n_windows']} windows)"
    mean, centred = result["baselines"]["mean_pose"], result["baselines"]["centred_mean_pose"]
    assert rows[everyone, "pck_0_2"] == [
        f"{result['pck_0_2']:.3f}", f"{mean['pck_0_2']:.3f}", f"{centred['pck_0_2']:.3f}",
    ]  # fmt: skip
    # Millimetres are whole numbers: a 3-decimal error in mm says nothing more.
    assert rows[everyone, "mpjpe_mm"] == [
        f"{result['mpjpe_mm']:.0f}", f"{mean['mpjpe_mm']:.0f}", f"{centred['mpjpe_mm']:.0f}",
    ]  # fmt: skip
    for count, metrics in result["by_person_count"].items():
        label = f"-- {count} person(s) ({metrics['n_windows']} windows)"
        value = metrics["count_accuracy"]
        assert rows[label, "count_accuracy"] == ["-" if value is None else f"{value:.3f}"]
    joints = [key for key in rows if key[0] == "-- per-joint PCK@0.2 (all windows)"]
    assert len(joints) == 17
    assert rows["-- per-joint PCK@0.2 (all windows)", "nose"] == [
        f"{result['per_joint_pck']['nose']:.3f}", f"{centred['per_joint_pck']['nose']:.3f}",
    ]  # fmt: skip
    assert lines[-1].startswith("PCK@0.2: a joint counts when within 0.2 x")
