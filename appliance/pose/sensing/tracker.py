"""Where each person is: a particle filter per person on the floor plan, fed every link's cues.

A particle is a state (x, y, vx, vy). Between ticks particles move at their velocity, which wanders
(random acceleration), now and then stops or starts afresh (people stop, turn and set off), and bounces off
the walls. Each tick every particle's weight is multiplied by the likelihood of all links' cues for its
state (``LinkLikelihood``), tempered by ``LIKELIHOOD_TEMPERATURE`` because consecutive ticks share most of
their samples and are not independent evidence. The estimate is the weighted mean; the uncertainty is the
weighted spread, in metres, which is what a joint's confidence follows downstream.

Several people: one filter each. The cues are the room's, so a filter is kept off the others by giving
particles close to another person's estimate a penalty (two bodies are at least a torso apart); the
number of filters is the estimated person count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from appliance.pose.sensing.cues import RoomCues
from appliance.pose.sensing.geometry import RoomGeometry, state_features, steering
from appliance.pose.sensing.likelihood import LinkLikelihood

F64 = npt.NDArray[np.float64]

PARTICLES = 300
# Consecutive readings share nine tenths of their samples (1 s windows every 0.1 s) and every link sees
# the same body, so the summed link terms are not independent evidence: they are tempered. The amplitude
# terms' spreads are fitted per link as if independent, the angle term's weight as a calibrated
# likelihood over the floor, hence two temperatures (chosen on the training episodes held back for
# validation, never on the evaluation's rooms).
LIKELIHOOD_TEMPERATURE = 0.15
ANGLE_TEMPERATURE = 0.5
ACCELERATION_M_S2 = 1.5
# Per second, the chance that a person stops, and that a still person sets off in a new direction.
STOP_RATE_HZ = 0.3
START_RATE_HZ = 0.3
MAX_SPEED_M_S = 1.8
WALL_MARGIN_M = 0.2
# Two people's centres are at least this far apart.
EXCLUSION_M = 0.6
EXCLUSION_PENALTY = 4.0
# Resample when the effective sample size falls below this share; jitter resampled particles this much.
RESAMPLE_SHARE = 0.5
ROUGHENING_M = 0.03
# Share of particles redrawn anywhere at each resampling: a filter that locked onto the wrong place (weak
# cues, a still person) can still find the right one.
REINJECT_SHARE = 0.03


@dataclass(frozen=True, slots=True)
class PositionEstimate:
    """A person's floor position (m), velocity (m/s) and the spread of the belief about it (m)."""

    position: F64
    velocity: F64
    uncertainty_m: float


class ParticleFilter:
    """One person's belief over (x, y, vx, vy)."""

    def __init__(self, geometry: RoomGeometry, rng: np.random.Generator, around: F64 | None = None) -> None:
        self.geometry = geometry
        self._rng = rng
        low = np.array([WALL_MARGIN_M, WALL_MARGIN_M])
        high = np.array([geometry.width_m, geometry.depth_m]) - WALL_MARGIN_M
        self._low, self._high = low, np.maximum(high, low + 1e-3)
        if around is None:
            positions = rng.uniform(self._low, self._high, size=(PARTICLES, 2))
        else:
            positions = np.clip(around + rng.normal(0, 0.5, (PARTICLES, 2)), self._low, self._high)
        heading = rng.uniform(0, 2 * np.pi, PARTICLES)
        speed = np.where(rng.random(PARTICLES) < 0.5, 0.0, rng.uniform(0.2, 1.4, PARTICLES))
        self.positions: F64 = positions
        self.velocities: F64 = speed[:, None] * np.stack([np.cos(heading), np.sin(heading)], axis=1)
        self.log_weights: F64 = np.zeros(PARTICLES)

    def predict(self, dt: float) -> None:
        rng = self._rng
        self.velocities = self.velocities + rng.normal(0, ACCELERATION_M_S2 * math.sqrt(dt), (PARTICLES, 2))
        stop = rng.random(PARTICLES) < STOP_RATE_HZ * dt
        self.velocities[stop] = 0.0
        start = rng.random(PARTICLES) < START_RATE_HZ * dt
        heading = rng.uniform(0, 2 * np.pi, int(start.sum()))
        speed = rng.uniform(0.3, 1.4, heading.size)
        self.velocities[start] = speed[:, None] * np.stack([np.cos(heading), np.sin(heading)], axis=1)
        speed_now = np.linalg.norm(self.velocities, axis=1, keepdims=True)
        self.velocities *= np.minimum(1.0, MAX_SPEED_M_S / np.maximum(speed_now, 1e-9))
        moved = self.positions + self.velocities * dt
        # Walls: reflect the position and turn the velocity round.
        below, above = moved < self._low, moved > self._high
        moved = np.where(below, 2 * self._low - moved, moved)
        moved = np.where(above, 2 * self._high - moved, moved)
        self.velocities = np.where(below | above, -self.velocities, self.velocities)
        self.positions = np.clip(moved, self._low, self._high)

    def update(self, log_likelihood: F64) -> None:
        self.log_weights += LIKELIHOOD_TEMPERATURE * log_likelihood
        self.log_weights -= self.log_weights.max()
        weights = self.weights
        if 1.0 / float(np.sum(weights**2)) < RESAMPLE_SHARE * PARTICLES:
            self._resample(weights)

    @property
    def weights(self) -> F64:
        w = np.exp(self.log_weights - self.log_weights.max())
        normalized: F64 = w / w.sum()
        return normalized

    def _resample(self, weights: F64) -> None:
        positions = (self._rng.random() + np.arange(PARTICLES)) / PARTICLES
        index = np.minimum(np.searchsorted(np.cumsum(weights), positions), PARTICLES - 1)
        self.positions = np.clip(
            self.positions[index] + self._rng.normal(0, ROUGHENING_M, (PARTICLES, 2)), self._low, self._high
        )
        self.velocities = self.velocities[index] + self._rng.normal(0, ROUGHENING_M, (PARTICLES, 2))
        fresh = self._rng.random(PARTICLES) < REINJECT_SHARE
        self.positions[fresh] = self._rng.uniform(self._low, self._high, size=(int(fresh.sum()), 2))
        self.velocities[fresh] = 0.0
        self.log_weights = np.zeros(PARTICLES)

    def estimate(self) -> PositionEstimate:
        w = self.weights
        mean = w @ self.positions
        spread = math.sqrt(float(w @ np.sum((self.positions - mean) ** 2, axis=1)))
        return PositionEstimate(mean, w @ self.velocities, spread)


class MultiTracker:
    """Up to a handful of ``ParticleFilter``s sharing the room's cues; ``count`` filters are kept."""

    def __init__(self, geometry: RoomGeometry, likelihood: LinkLikelihood, seed: int = 0) -> None:
        self.geometry = geometry
        self.likelihood = likelihood
        self._rng = np.random.default_rng(seed)
        self.filters: list[ParticleFilter] = []
        self._t: float | None = None

    def update(self, cues: RoomCues, count: int) -> list[PositionEstimate]:
        """Advance to ``cues.t_s``, keep ``count`` filters (new ones start anywhere; the least certain go
        first), and fold in the cues. Returns each filter's estimate."""
        dt = 0.0 if self._t is None else max(0.0, cues.t_s - self._t)
        self._t = cues.t_s
        while len(self.filters) > count:
            worst = max(range(len(self.filters)), key=lambda i: self.filters[i].estimate().uncertainty_m)
            del self.filters[worst]
        while len(self.filters) < count:
            self.filters.append(ParticleFilter(self.geometry, self._rng))
        if not self.filters:
            return []
        known = [link for link in cues.links if link in self.geometry.links]
        rows = [cues.links.index(link) for link in known]
        tx, rx = self.geometry.ends(known)
        # Multi-antenna links also say from where what changed arrives (a moving body, and a still one's
        # breathing too; an empty room's residual is noise from everywhere alike).
        arrays = [
            c
            for c in cues.cues
            if c.link in self.geometry.links and c.covariance is not None and c.static_covariance is not None
        ]
        estimates = [f.estimate() for f in self.filters]
        for index, particle_filter in enumerate(self.filters):
            if dt > 0:
                particle_filter.predict(dt)
            if not known:
                continue
            features = state_features(
                particle_filter.positions, particle_filter.velocities, tx, rx, self.geometry.wavelength_m
            )
            log_likelihood = self.likelihood.score(cues.vectors[rows], features)
            angle_temperature = ANGLE_TEMPERATURE / LIKELIHOOD_TEMPERATURE
            for link_cues in arrays:
                assert link_cues.covariance is not None and link_cues.static_covariance is not None
                spec = self.geometry.links[link_cues.link]
                centre, axis = np.asarray(spec.rx[:2]), np.asarray(spec.rx_axis)
                args = (centre, axis, spec.rx_antennas, spec.antenna_spacing_m, self.geometry.wavelength_m)
                log_likelihood = log_likelihood + angle_temperature * self.likelihood.angle(
                    link_cues.covariance,
                    link_cues.static_covariance,
                    steering(particle_filter.positions, *args),
                    steering(np.asarray(spec.tx[:2])[None], *args)[0],
                )
            for other, estimate in enumerate(estimates):
                if other == index:
                    continue
                distance = np.linalg.norm(particle_filter.positions - estimate.position, axis=1)
                log_likelihood = (
                    log_likelihood
                    - EXCLUSION_PENALTY
                    * np.clip(1.0 - distance / EXCLUSION_M, 0.0, 1.0)
                    / LIKELIHOOD_TEMPERATURE
                )
            particle_filter.update(log_likelihood)
        return [f.estimate() for f in self.filters]
