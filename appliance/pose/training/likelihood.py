"""Fitting ``LinkLikelihood``'s constants by regression on simulated training episodes.

Every tick with exactly one person in the room gives, per ready link, the cues beside what the true state
is to that link; the echo and Doppler terms' constants are the least-squares fit of the cue on its
physical predictor, and each spread the robust standard deviation (1.4826 MAD) of what is left. The
shadow term, whose spread depends on the state, is fitted by maximum likelihood under its own Student-t.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.stats import spearmanr

from appliance.csi.simulator.room import HALF_WAVELENGTH_2G4_M
from appliance.pose.sensing.cues import (
    ABSOLUTE_CENTRE_DBM,
    ABSOLUTE_SCALE_DB,
    DOPPLER_SCALE_HZ,
    LOG_SCALE,
    RSSI_SCALE_DB,
)
from appliance.pose.sensing.episodes import MAX_CHAINS, EpisodeData
from appliance.pose.sensing.geometry import array_axis, state_features, steering
from appliance.pose.sensing.likelihood import (
    AOA_FLOOR,
    DEGREES_OF_FREEDOM,
    LinkLikelihood,
    beam_power,
)

F64 = npt.NDArray[np.float64]

WAVELENGTH_M = 0.1229  # 2437 MHz, the channel of every simulated room
MOVING_M_S = 0.3
ECHO_MIN_BEAT = 2.0
MIN_ECHO_LINKS = 3


def _robust_sigma(residual: F64) -> float:
    return float(1.4826 * np.median(np.abs(residual - np.median(residual))))


AOA_WEIGHTS = (0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0)
GRID_STEP_M = 0.25


def fit_aoa_weight(episodes: Sequence[EpisodeData]) -> tuple[float, int]:
    """The weight w for which w log P, normalized over a floor grid, gives the true cells the highest
    mean log probability (a calibrated likelihood), over the single-person ticks of multi-antenna
    episodes, moving or still; and how many link readings that used."""
    readings: list[tuple[F64, npt.NDArray[np.int64]]] = []  # (log P per link [links, cells], true cell)
    for data in episodes:
        if not data.covariances.any():
            continue
        width, depth = float(data.room_size[0]), float(data.room_size[1])
        xs, ys = (
            np.arange(GRID_STEP_M / 2, width, GRID_STEP_M),
            np.arange(GRID_STEP_M / 2, depth, GRID_STEP_M),
        )
        cells = np.stack(np.meshgrid(xs, ys, indexing="xy"), axis=-1).reshape(-1, 2)
        vectors = []
        for link in range(len(data.links)):
            axis = np.asarray(array_axis(data.rx[link, 0], data.rx[link, 1], width, depth))
            args = (data.rx[link], axis, MAX_CHAINS, HALF_WAVELENGTH_2G4_M, WAVELENGTH_M)
            vectors.append((steering(cells, *args), steering(data.tx[link][None], *args)[0]))
        for t in np.flatnonzero(data.count == 1):
            hears = [
                link
                for link in range(len(data.links))
                if not np.isnan(data.cues[t, link, 0]) and np.real(np.trace(data.covariances[t, link])) > 0
            ]
            if not hears:
                continue
            logs = np.stack(
                [
                    np.log(
                        np.maximum(
                            beam_power(
                                data.covariances[t, link], data.static_covariances[link], *vectors[link]
                            ),
                            AOA_FLOOR,
                        )
                    )
                    for link in hears
                ]
            )
            true_cell = int(np.argmin(np.linalg.norm(cells - data.positions[t, 0], axis=1)))
            readings.append((logs, np.array([true_cell])))
    if not readings:
        return LinkLikelihood().aoa_weight, 0

    def mean_log_probability(weight: float) -> float:
        total = 0.0
        for logs, true_cell in readings:
            score = weight * logs.sum(axis=0)
            score -= score.max()
            total += float(score[true_cell[0]] - np.log(np.exp(score).sum()))
        return total / len(readings)

    best = max(AOA_WEIGHTS, key=mean_log_probability)
    return best, sum(len(logs) for logs, _ in readings)


def fit_shadow(rssi_change: F64, excess: F64) -> LinkLikelihood:
    """A likelihood whose shadow term (the ``shadow_*`` constants; the rest default) maximizes its
    likelihood of the RSSI changes ``rssi_change`` (dB) of links whose path via the body is ``excess`` m
    longer."""

    def constants(theta: F64) -> LinkLikelihood:
        amplitude, *logs = (float(v) for v in theta)
        scale, sigma, near, spread = np.exp(logs)
        return LinkLikelihood(
            shadow_db=amplitude,
            shadow_scale_m=float(scale),
            shadow_sigma_db=float(sigma),
            shadow_near_db=float(near),
            shadow_spread_m=float(spread),
        )

    def negative_log_likelihood(theta: F64) -> float:
        model = constants(theta)
        expected = -model.shadow_db * np.exp(-excess / model.shadow_scale_m)
        sigma = model.shadow_spread(excess)
        z2 = ((rssi_change - expected) / sigma) ** 2
        log_density = -np.log(sigma) - 0.5 * (DEGREES_OF_FREEDOM + 1) * np.log1p(z2 / DEGREES_OF_FREEDOM)
        return -float(np.mean(log_density))

    start = np.array([1.0, np.log(0.1), np.log(0.5), np.log(2.0), np.log(0.05)])
    result = minimize(negative_log_likelihood, start, method="Nelder-Mead", options={"maxiter": 4000})
    return constants(result.x)


def fit(episodes: Sequence[EpisodeData]) -> LinkLikelihood:
    """The constants that best explain the single-person ticks of ``episodes``."""
    rssi, excess = [], []
    echo_power, echo_spreading = [], []
    f50, doppler = [], []
    for data in episodes:
        for t in np.flatnonzero(data.count == 1):
            ready = ~np.isnan(data.cues[t, :, 0])
            if not ready.any():
                continue
            cues = data.cues[t, ready].astype(np.float64)
            states = state_features(
                data.positions[t, 0][None],
                data.velocities[t, 0][None],
                data.tx[ready],
                data.rx[ready],
                WAVELENGTH_M,
            )[0].astype(np.float64)
            rssi.append(cues[:, 0] * RSSI_SCALE_DB)
            excess.append(states[:, 0])
            if float(np.linalg.norm(data.velocities[t, 0])) < MOVING_M_S:
                continue
            hears = np.exp(cues[:, 2] * LOG_SCALE) >= ECHO_MIN_BEAT
            if int(hears.sum()) >= MIN_ECHO_LINKS:
                power = cues[hears, 3] * ABSOLUTE_SCALE_DB + ABSOLUTE_CENTRE_DBM
                spreading = -20.0 / np.log(10.0) * (states[hears, 3] + states[hears, 4])
                echo_power.append(power - power.mean())
                echo_spreading.append(spreading - spreading.mean())
            measured = cues[:, 9] > 0
            f50.append(cues[measured, 9] * DOPPLER_SCALE_HZ)
            doppler.append(states[measured, 6] * DOPPLER_SCALE_HZ)
    r, e = np.concatenate(rssi), np.concatenate(excess)
    shadow = fit_shadow(r, e)
    p, s = np.concatenate(echo_power), np.concatenate(echo_spreading)
    echo_slope = float(s @ p / (s @ s))
    f, d = np.concatenate(f50), np.concatenate(doppler)
    doppler_slope = float(d @ f / (d @ d))
    aoa_weight, aoa_samples = fit_aoa_weight(episodes)
    counts: dict[str, Any] = {
        "shadow_samples": int(r.size),
        "echo_samples": int(p.size),
        "doppler_samples": int(f.size),
        "aoa_samples": aoa_samples,
    }
    return LinkLikelihood(
        shadow_db=shadow.shadow_db,
        shadow_scale_m=shadow.shadow_scale_m,
        shadow_sigma_db=shadow.shadow_sigma_db,
        shadow_near_db=shadow.shadow_near_db,
        shadow_spread_m=shadow.shadow_spread_m,
        echo_slope=echo_slope,
        echo_sigma_db=max(_robust_sigma(p - echo_slope * s), 0.5),
        echo_min_beat=ECHO_MIN_BEAT,
        doppler_slope=doppler_slope,
        doppler_sigma_hz=max(_robust_sigma(f - doppler_slope * d), 0.5),
        aoa_weight=aoa_weight,
        provenance={
            "fitted_on": counts,
            "correlations": {
                "shadow": round(float(np.corrcoef(r, np.exp(-e / shadow.shadow_scale_m))[0, 1]), 3),
                "shadow_size": round(float(spearmanr(np.abs(r), -e).statistic), 3),
                "echo": round(float(np.corrcoef(p, s)[0, 1]), 3),
                "doppler": round(float(np.corrcoef(f, d)[0, 1]), 3),
            },
        },
    )
