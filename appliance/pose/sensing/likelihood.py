"""How likely the links' cues are for a body at a floor position moving at a velocity.

``LinkLikelihood.score`` is, up to a constant, log p(cues | state) summed over links, for many candidate
states at once (the tracker's particles). It is a physical model with a handful of constants, each fitted
by regression on simulated training rooms (``appliance.pose.training.likelihood``), never on the rooms
the evaluation uses:

- **Shadow.** A body near a link's line of sight changes its power: the RSSI change against the empty
  room is -A exp(-excess / lambda) dB on average, but either way by several dB near the link (the body
  blocks one path and adds or takes away others), so its spread is sigma_r + sigma_n s / (excess + s):
  a few tenths of a dB for a body far from the link, several on its line of sight. Measured on the
  training rooms (``bench/cue_localisation.py``), the size of the change says how near a body is far
  better than its sign.
- **Echo.** A moving body's echo arrives with power proportional to 1 / (d_tx^2 d_rx^2) (bistatic radar
  equation). Its absolute level depends on the body and how it moves, so only the pattern across links
  counts: the links' echo powers (dBm) less a * 10 log10(1 / (d_tx^2 d_rx^2)), each less their mean over
  the links that hear the echo, spread sigma_e.
- **Doppler.** A moving body's echo beats at its bistatic Doppler |v . (e_tx + e_rx)| / lambda_radio; the
  frequency below which half the link's Doppler excess lies is k times that, spread sigma_f.
- **Angle of arrival** (multi-antenna receivers). The moving residual's covariance across the receive
  chains, with each chain's phase offset calibrated away on the line of sight (``chain_phases``), is
  steered towards the state: the Bartlett beam power P (1 when the echo comes from there alone) enters as
  w log P, w fitted so that it is a calibrated likelihood over the floor.

Errors are Student-t (a few links always disagree: a limb, a multipath null), so one wild link never
vetoes a state. Links are independent given the state, so their terms add: any number of links.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from appliance.pose.sensing.cues import (
    ABSOLUTE_CENTRE_DBM,
    ABSOLUTE_SCALE_DB,
    DOPPLER_SCALE_HZ,
    LOG_SCALE,
    RSSI_SCALE_DB,
)

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_LIKELIHOOD = MODELS_DIR / "link-likelihood-v1.json"
# Student-t degrees of freedom of every term.
DEGREES_OF_FREEDOM = 4.0

# Columns of ``cues.cue_vectors`` and ``geometry.state_features`` this model reads.
_RSSI_CHANGE, _BEAT, _ECHO, _F50 = 0, 2, 3, 9
_EXCESS, _LOG_TX, _LOG_RX, _DOPPLER = 0, 3, 4, 6


class LikelihoodUnavailableError(Exception):
    """The likelihood constants are missing or unreadable."""


@dataclass(frozen=True)
class LinkLikelihood:
    """The model's constants (see the module docstring)."""

    shadow_db: float = 1.5
    shadow_scale_m: float = 0.15
    shadow_sigma_db: float = 1.0
    shadow_near_db: float = 0.0
    shadow_spread_m: float = 0.1
    echo_slope: float = 1.0
    echo_sigma_db: float = 4.0
    # Links whose beat power is at least this many times the empty room's hear the echo.
    echo_min_beat: float = 2.0
    doppler_slope: float = 1.0
    doppler_sigma_hz: float = 4.0
    aoa_weight: float = 5.0
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def load(cls, path: Path = DEFAULT_LIKELIHOOD) -> LinkLikelihood:
        try:
            document = json.loads(path.read_text())
            return cls(**document["constants"], provenance=document.get("provenance", {}))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LikelihoodUnavailableError(f"{path}: {exc}") from exc

    def save(self, path: Path) -> None:
        constants = {k: round(v, 5) for k, v in asdict(self).items() if k != "provenance"}
        path.write_text(json.dumps({"constants": constants, "provenance": self.provenance}, indent=1) + "\n")

    def terms(self, cue_vectors: F32, state_features: F32) -> tuple[F64, F64, F64]:
        """The three (N,) log-likelihood terms (shadow, echo, Doppler) for N states against L links:
        ``cue_vectors`` [L, N_CUE_FEATURES], ``state_features`` [N, L, N_STATE_FEATURES]."""
        cues = cue_vectors.astype(np.float64)
        states = state_features.astype(np.float64)
        rssi_change = cues[:, _RSSI_CHANGE] * RSSI_SCALE_DB
        excess = states[..., _EXCESS]
        expected = -self.shadow_db * np.exp(-excess / self.shadow_scale_m)
        sigma = self.shadow_spread(excess)
        # The spread depends on the state, so its normalization does too.
        shadow = (_student(rssi_change - expected, sigma) - np.log(sigma)).sum(axis=-1)

        beat = np.exp(cues[:, _BEAT] * LOG_SCALE)
        hears = beat >= self.echo_min_beat
        echo = np.zeros(states.shape[0])
        if int(hears.sum()) >= 2:
            power = cues[hears, _ECHO] * ABSOLUTE_SCALE_DB + ABSOLUTE_CENTRE_DBM
            spreading = -20.0 / np.log(10.0) * (states[:, hears, _LOG_TX] + states[:, hears, _LOG_RX])
            residual = power - self.echo_slope * spreading
            residual -= residual.mean(axis=-1, keepdims=True)
            echo = _student(residual, self.echo_sigma_db).sum(axis=-1)

        f50 = cues[:, _F50] * DOPPLER_SCALE_HZ
        measured = f50 > 0
        doppler = np.zeros(states.shape[0])
        if measured.any():
            predicted = self.doppler_slope * states[:, measured, _DOPPLER] * DOPPLER_SCALE_HZ
            doppler = _student(f50[measured] - predicted, self.doppler_sigma_hz).sum(axis=-1)
        return shadow, echo, doppler

    def shadow_spread(self, excess: F64) -> F64:
        """The RSSI change's spread (dB) for a body whose path via it is ``excess`` m longer."""
        spread: F64 = self.shadow_sigma_db + self.shadow_near_db * self.shadow_spread_m / (
            excess + self.shadow_spread_m
        )
        return spread

    def score(self, cue_vectors: F32, state_features: F32) -> F64:
        """(N,) log-likelihood (up to a constant) of N states; see ``terms``."""
        shadow, echo, doppler = self.terms(cue_vectors, state_features)
        total: F64 = shadow + echo + doppler
        return total

    def angle(
        self,
        covariance: npt.NDArray[np.complexfloating],
        static_covariance: npt.NDArray[np.complexfloating],
        steering: npt.NDArray[np.complex128],
        los_steering: npt.NDArray[np.complex128],
    ) -> F64:
        """(N,) angle-of-arrival term of one multi-antenna link for N states, whose steering vectors
        (``geometry.steering``) are the rows of ``steering``; ``los_steering`` is the transmitter's."""
        return self.aoa_weight * np.log(
            np.maximum(beam_power(covariance, static_covariance, steering, los_steering), AOA_FLOOR)
        )


# Beam powers below this are "not from here" alike.
AOA_FLOOR = 1e-3


def chain_phases(
    static_covariance: npt.NDArray[np.complexfloating], los_steering: npt.NDArray[np.complex128]
) -> F64:
    """Each receive chain's phase offset, self-calibrated on the line of sight: the empty room's strongest
    arrival is the direct path from the transmitter, whose phases across the array the geometry gives;
    what the principal eigenvector of the static covariance has beyond them is the chains' own."""
    _, vectors = np.linalg.eigh(static_covariance)
    principal = vectors[:, -1]
    offsets: F64 = np.angle(principal * np.conj(los_steering))
    relative: F64 = offsets - offsets[0]
    return relative


def beam_power(
    covariance: npt.NDArray[np.complexfloating],
    static_covariance: npt.NDArray[np.complexfloating],
    steering: npt.NDArray[np.complex128],
    los_steering: npt.NDArray[np.complex128],
) -> F64:
    """(N,) Bartlett beam power, 0..1, of the calibrated residual covariance towards each steering row."""
    calibration = np.exp(-1j * chain_phases(static_covariance, los_steering))
    calibrated = calibration[:, None] * covariance * np.conj(calibration)[None, :]
    total = float(np.real(np.trace(calibrated)))
    if total <= 0:
        return np.ones(steering.shape[0])
    power: F64 = np.real(np.einsum("nk,kj,nj->n", steering.conj(), calibrated, steering)) / (
        steering.shape[1] * total
    )
    return power


def _student(residual: F64, sigma: float | F64) -> F64:
    """Log density of a Student-t residual, up to a constant."""
    z2 = (residual / sigma) ** 2
    log_density: F64 = -0.5 * (DEGREES_OF_FREEDOM + 1) * np.log1p(z2 / DEGREES_OF_FREEDOM)
    return log_density
