"""``invispose eval sensing --quick --json``: the evaluation contract's keys, on held-out simulated rooms,
with the trackers clearly ahead of the room-centre guess. One run (about a minute on an idle 2-core box)
serves every assertion."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import REPO

CONTRACT_KEYS = {
    "moving_median_m",
    "moving_p90_m",
    "still_median_m",
    "centre_median_m",
    "zone_accuracy",
    "count_accuracy",
    "count_within_one",
    "presence_f1",
    "still_presence_recall",
    "empty_false_presence",
    "activity_accuracy",
    "fall_recall",
    "false_falls_per_hour",
    "mpjpe_mm",
    "n_windows",
    "n_rooms",
}


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    """The command as a user runs it; its stdout is one JSON array."""
    run = subprocess.run(
        [sys.executable, "-m", "appliance", "eval", "sensing", "--setup", "esp32-1x6", "--quick", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    [one] = json.loads(run.stdout)
    return dict(one)


@pytest.mark.slow
def test_every_contract_key_for_the_setup_on_held_out_simulated_rooms(result: dict[str, Any]) -> None:
    assert set(result) >= CONTRACT_KEYS
    assert result["setup"] == "esp32-1x6"
    assert "SIMULATED" in result["split"]["data"]
    assert result["n_rooms"] == 5 and result["n_windows"] > 1000
    # How many readings each figure rests on: every placed person is either moving or still.
    readings = result["readings"]
    assert readings["moving"] > 0 and readings["still"] > 0
    assert readings["moving"] + readings["still"] == readings["zone"]
    assert result["baselines"]["still_centre_median_m"] > 0


@pytest.mark.slow
def test_trackers_place_moving_people_clearly_better_than_the_room_centre(result: dict[str, Any]) -> None:
    assert result["moving_median_m"] < 0.8 * result["centre_median_m"]
    assert result["zone_accuracy"] > result["baselines"]["zone_accuracy_centre"]


@pytest.mark.slow
def test_presence_still_people_and_the_empty_room(result: dict[str, Any]) -> None:
    assert result["presence_f1"] >= 0.9
    assert result["still_presence_recall"] >= 0.9
    assert result["empty_false_presence"] <= 0.05
    assert result["count_within_one"] >= 0.9
