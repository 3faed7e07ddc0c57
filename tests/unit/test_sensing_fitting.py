"""Fitting the link likelihood's constants recovers the constants of data drawn from the model itself."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.pose.sensing.likelihood import DEGREES_OF_FREEDOM, LinkLikelihood
from appliance.pose.training.likelihood import fit_shadow


def test_fit_shadow_recovers_the_depth_and_the_spread_it_was_drawn_with() -> None:
    rng = np.random.default_rng(5)
    truth = LinkLikelihood(
        shadow_db=1.5, shadow_scale_m=0.1, shadow_sigma_db=0.3, shadow_near_db=2.0, shadow_spread_m=0.2
    )
    excess = rng.exponential(0.8, 40_000)
    mean = -truth.shadow_db * np.exp(-excess / truth.shadow_scale_m)
    rssi_change = mean + truth.shadow_spread(excess) * rng.standard_t(DEGREES_OF_FREEDOM, excess.size)
    fitted = fit_shadow(rssi_change, excess)
    assert fitted.shadow_db == pytest.approx(1.5, rel=0.15)
    assert fitted.shadow_sigma_db == pytest.approx(0.3, rel=0.1)
    assert fitted.shadow_near_db == pytest.approx(2.0, rel=0.15)
    assert fitted.shadow_spread_m == pytest.approx(0.2, rel=0.2)
