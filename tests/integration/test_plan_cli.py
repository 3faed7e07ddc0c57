"""``invispose plan``: a small configured room, big cells, the heatmap written and readable."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.cli import main

CONFIG = """\
room:
  width_m: 3.4
  depth_m: 3.0
  nodes:
    - {id: ap, kind: esp32, role: tx, position: [1.7, 0.05, 1.8]}
    - {id: rx1, kind: esp32, role: rx, position: [0.05, 1.5, 1.2]}
    - {id: rx2, kind: esp32, role: rx, position: [1.7, 2.95, 1.4]}
    - {id: rx3, kind: esp32, role: rx, position: [3.35, 1.5, 1.0]}
sources:
  - type: simulator
"""


@pytest.mark.slow
def test_plan_prints_an_error_per_cell_and_writes_the_heatmap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "appliance.yaml"
    config.write_text(CONFIG)
    png = tmp_path / "plan.png"
    assert main(["plan", "--config", str(config), "--cell", "1.2", "--png", str(png), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["simulated"] is True
    assert len(result["cells_x_m"]) == 2 and len(result["cells_y_m"]) == 2
    errors = np.array(result["error_m"], dtype=float)
    assert errors.shape == (2, 2) and np.isfinite(errors).all()
    assert (errors >= 0).all() and (errors < 3.4).all()
    image = cv2.imread(str(png))
    assert image is not None and image.shape[1] == round(3.4 * 80) + 2 * 40


def test_plan_refuses_a_broken_config_with_its_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "appliance.yaml"
    config.write_text(CONFIG.replace("width_m: 3.4", "width_m: 3.4\n  colour: red"))
    assert main(["plan", "--config", str(config)]) == 1
    assert "room.colour: unknown key" in capsys.readouterr().err
