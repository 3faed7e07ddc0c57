"""Impairments: what real radios and real rooms do to the channel before it is reported.

Each is switchable so that tests can look at the physics alone (``Impairments.none()``); evaluation and
training use the defaults, which are all on: a simulator that leaves one out flatters every estimator
that would be hurt by it.

- Per packet, common to every chain of a radio: a random carrier phase (CFO, PLL) and a timing-offset
  slope across tones. Multi-antenna receivers cancel both in conjugate products between chains.
- Per RF chain: a phase offset of its own, random at every boot (each chain's mixer path), drifting slowly
  as a random walk. Conjugate products keep it, so multi-antenna estimators must calibrate it.
- Automatic gain control driven by received power: every packet the AGC keeps its gain unless the
  received power moved further than its hysteresis from the operating point, then re-settles to the nearest
  gain step; now and then it re-settles one step off. The reported CSI therefore hides slow power changes
  (a body on the line of sight) in gain steps, while RSSI, measured before the AGC, keeps them.
- RSSI: received power in whole dB with measurement noise and a per-node calibration offset.
- Thermal noise before the AGC (so shadowed packets are noisier), integer I/Q, the classic ESP32's
  invalid first buffer word, packet loss and timing jitter.
- In the room itself: body echoes via walls, floor and ceiling (``body_bounces``) and a slowly drifting
  background (``background_drift``); the channel model applies them (``channel``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from appliance.csi.simulator.channel import SUBCARRIER_SPACING_HZ, phasor

C64 = npt.NDArray[np.complex64]
F64 = npt.NDArray[np.float64]

# The background drift is an Ornstein-Uhlenbeck process with this time constant, sampled on knots this far
# apart and interpolated in between (so the frames do not depend on how the caller chunks time).
BACKGROUND_DRIFT_TIME_CONSTANT_S = 600.0
BACKGROUND_DRIFT_KNOT_S = 1.0


@dataclass(frozen=True)
class Impairments:
    """Which impairments to apply, and how strongly. The defaults resemble an ESP32 or ath9k in a home."""

    # Residual carrier frequency offset and PLL phase: one random phase per packet, common to all tones.
    common_phase: bool = True
    # Packet-detection (symbol timing) offset: a linear phase slope across tones, uniform in +-this.
    timing_offset_ns: float = 50.0
    # Each RF chain's own phase offset: uniform at boot, then a random walk of this many rad per sqrt(s).
    chain_phase: bool = True
    chain_phase_drift_rad_per_sqrt_s: float = 0.005
    # AGC: gain steps of agc_step_db; re-settles when the received power leaves +-agc_hysteresis_db of the
    # operating point (agc_power_driven), and at random agc_steps_per_minute times one step off.
    agc_power_driven: bool = True
    agc_step_db: float = 1.0
    agc_hysteresis_db: float = 1.5
    agc_steps_per_minute: float = 6.0
    # Thermal noise and estimation error at the simulator's snr_db.
    noise: bool = True
    # Integer CSI as the chips report it: int8 (ESP32) or 10-bit (Atheros) I and Q.
    quantize: bool = True
    # Classic ESP32 chips put garbage in the buffer's first word (subcarriers 0 and 1): drop those columns.
    first_word_invalid: bool = True
    # Fraction of packets a receiver misses (sequence numbers show the gaps).
    packet_loss: float = 0.01
    # Standard deviation of packet timing (channel access contention), in microseconds.
    timing_jitter_us: float = 200.0
    # RSSI: Gaussian measurement noise (dB, before rounding) and each receiving node's offset, uniform in
    # +-rssi_offset_db (antenna, board and calibration differences between nodes).
    rssi_noise_db: float = 1.0
    rssi_offset_db: float = 3.0
    # Body echoes via walls, floor and ceiling (see ``channel``).
    body_bounces: bool = True
    # Slow background drift: each furniture path's complex gain wanders by this relative standard deviation.
    background_drift: float = 0.3

    @classmethod
    def none(cls) -> Impairments:
        """The ideal room and radio: no phase, gain, noise, quantization, format, timing or room artefacts."""
        return cls(
            common_phase=False,
            timing_offset_ns=0.0,
            chain_phase=False,
            chain_phase_drift_rad_per_sqrt_s=0.0,
            agc_power_driven=False,
            agc_step_db=0.0,
            agc_steps_per_minute=0.0,
            noise=False,
            quantize=False,
            first_word_invalid=False,
            packet_loss=0.0,
            timing_jitter_us=0.0,
            rssi_noise_db=0.0,
            rssi_offset_db=0.0,
            body_bounces=False,
            background_drift=0.0,
        )


@dataclass(frozen=True)
class ImpairedPackets:
    """One link's packets as its receiver reports them."""

    values: C64  # (T, pairs, K)
    lost: npt.NDArray[np.bool_]  # (T,)
    rssi_dbm: F64  # (T,) whole dB


class LinkImpairer:
    """Applies the radio impairments to one link's clean channel, packet batch by packet batch.

    The AGC operating point maps the empty room's mean channel power to ``target_amplitude`` counts, which is
    why real captures sit at similar levels whatever the path loss. Noise is set against that level.
    ``rssi_offset_db`` is the receiving node's calibration offset; ``rssi_base_dbm`` converts the channel's
    power (linear, in the channel's units) to dBm.
    """

    def __init__(
        self,
        impairments: Impairments,
        rng: np.random.Generator,
        *,
        subcarriers: npt.NDArray[np.int16],
        chains: tuple[int, int],
        reference_power: float,
        target_amplitude: float,
        full_scale: int,
        snr_db: float,
        rssi_base_dbm: float,
        rssi_offset_db: float,
    ) -> None:
        self._impairments = impairments
        self._rng = rng
        self._subcarriers = subcarriers.astype(np.float32)
        self._scale = target_amplitude / np.sqrt(reference_power)
        self._reference_power = reference_power
        self._full_scale = full_scale
        self._noise_std = math.sqrt(reference_power) * 10 ** (-snr_db / 20) if impairments.noise else 0.0
        self._rssi_base_dbm = rssi_base_dbm
        self._rssi_offset_db = rssi_offset_db
        n_rx, n_tx = chains
        # Chain phases of the receiver's and the transmitter's RF chains; a pair (rx r, tx t) gets their sum.
        self._rx_phase = rng.uniform(0, 2 * np.pi, n_rx) if impairments.chain_phase else np.zeros(n_rx)
        self._tx_phase = rng.uniform(0, 2 * np.pi, n_tx) if impairments.chain_phase else np.zeros(n_tx)
        self._gain_db = 0.0
        self._last_t: float | None = None

    @property
    def chain_phases(self) -> tuple[F64, F64]:
        """The current per-chain phases (receiver chains, transmitter chains), radians: for tests."""
        return self._rx_phase.copy(), self._tx_phase.copy()

    def _agc_gain_db(self, power: F64, resettles: npt.NDArray[np.bool_], signs: F64) -> F64:
        imp = self._impairments
        step = imp.agc_step_db
        gains = np.empty(power.shape[0])
        # The gain that would bring each packet's power to the operating point.
        wanted = -10 * np.log10(np.maximum(power / self._reference_power, 1e-12))
        for i in range(power.shape[0]):
            if imp.agc_power_driven and abs(wanted[i] - self._gain_db) > imp.agc_hysteresis_db:
                self._gain_db = round(wanted[i] / step) * step if step > 0 else float(wanted[i])
            if resettles[i] and step > 0:
                self._gain_db += signs[i] * step
            gains[i] = self._gain_db
        return gains

    def _drift_chain_phases(self, times: F64) -> tuple[F64, F64]:
        """(T, n_rx) and (T, n_tx) chain phases at the packet times, the random walk advanced to each."""
        rate = self._impairments.chain_phase_drift_rad_per_sqrt_s
        if rate <= 0 or times.size == 0:
            return (
                np.broadcast_to(self._rx_phase, (times.size, self._rx_phase.size)),
                np.broadcast_to(self._tx_phase, (times.size, self._tx_phase.size)),
            )
        previous = times[0] if self._last_t is None else self._last_t
        dt = np.maximum(np.diff(np.concatenate([[previous], times])), 0.0)
        steps = np.sqrt(dt)[:, None] * rate
        rx = self._rx_phase + np.cumsum(steps * self._rng.normal(size=(times.size, self._rx_phase.size)), 0)
        tx = self._tx_phase + np.cumsum(steps * self._rng.normal(size=(times.size, self._tx_phase.size)), 0)
        self._rx_phase, self._tx_phase = rx[-1].copy(), tx[-1].copy()
        self._last_t = float(times[-1])
        return rx, tx

    def apply(self, clean: C64, times: F64) -> ImpairedPackets:
        """(T, pairs, K) clean channel at packet ``times`` (s) -> what the receiver reports.

        Pairs are receive-major: pair ``r * n_tx + t`` is receive chain r, transmit chain t.
        """
        packets = int(clean.shape[0])
        imp = self._impairments
        lost: npt.NDArray[np.bool_] = self._rng.random(packets) < imp.packet_loss
        values = clean
        if self._noise_std > 0:
            noise = self._rng.normal(scale=self._noise_std / np.sqrt(2), size=(2, *values.shape))
            values = values + (noise[0] + 1j * noise[1]).astype(np.complex64)
        power = np.mean(np.abs(values[:, 0, :]) ** 2, axis=1).astype(np.float64)
        rssi = self._rssi_base_dbm + 10 * np.log10(np.maximum(power, 1e-30)) + self._rssi_offset_db
        if imp.rssi_noise_db > 0:
            rssi = rssi + self._rng.normal(0, imp.rssi_noise_db, packets)
        resettles = self._rng.random(packets) < imp.agc_steps_per_minute / 60 * _packet_interval(times)
        signs = np.where(self._rng.random(packets) < 0.5, -1.0, 1.0)
        gain = self._scale * 10 ** (self._agc_gain_db(power, resettles, signs) / 20)
        phase = np.zeros((packets, 1), dtype=np.float32)
        if imp.common_phase:
            phase += self._rng.uniform(0, 2 * np.pi, size=(packets, 1)).astype(np.float32)
        if imp.timing_offset_ns > 0:
            offset_s = (
                self._rng.uniform(-imp.timing_offset_ns, imp.timing_offset_ns, size=(packets, 1)) * 1e-9
            )
            phase = (
                phase - (2 * np.pi * SUBCARRIER_SPACING_HZ * offset_s).astype(np.float32) * self._subcarriers
            )
        rotation = gain.astype(np.float32)[:, None] * phasor(phase)
        rx_phase, tx_phase = self._drift_chain_phases(times)
        chains = phasor((rx_phase[:, :, None] + tx_phase[:, None, :]).reshape(packets, -1))
        values = values * rotation[:, None, :] * chains[:, :, None]
        if imp.quantize:
            low, high = -self._full_scale, self._full_scale - 1
            values = (
                np.clip(np.round(values.real), low, high) + 1j * np.clip(np.round(values.imag), low, high)
            ).astype(np.complex64)
        return ImpairedPackets(values.astype(np.complex64, copy=False), lost, np.round(rssi))


def _packet_interval(times: F64) -> F64:
    """Seconds each packet stands for (the interval to the previous one; the median for the first)."""
    if times.size < 2:
        return np.full(times.shape, 0.01)
    gaps = np.diff(times)
    return np.concatenate([[float(np.median(gaps))], gaps])


class BackgroundDrift:
    """Complex multipliers (T, F) of the furniture paths: 1 plus a slow complex Ornstein-Uhlenbeck process
    of relative standard deviation ``std`` (see ``BACKGROUND_DRIFT_TIME_CONSTANT_S``).

    Ask for times in increasing order (as the simulator's clock moves): knots before the earliest time
    asked are forgotten, so a simulation of days keeps a handful.
    """

    def __init__(self, furniture: int, std: float, rng: np.random.Generator) -> None:
        self._std = std
        self._rng = rng
        self._furniture = furniture
        self._first_knot = 0
        self._knots: list[npt.NDArray[np.complex128]] = [self._draw_stationary()]

    def _draw_stationary(self) -> npt.NDArray[np.complex128]:
        parts = self._rng.normal(scale=self._std / np.sqrt(2), size=(2, self._furniture))
        drawn: npt.NDArray[np.complex128] = parts[0] + 1j * parts[1]
        return drawn

    def weights(self, times: F64) -> npt.NDArray[np.complex128]:
        if self._std <= 0 or times.size == 0:
            return np.ones((times.size, self._furniture), np.complex128)
        position = np.clip(times / BACKGROUND_DRIFT_KNOT_S, 0.0, None)
        below = np.maximum(np.floor(position).astype(np.intp), self._first_knot)
        keep = math.exp(-BACKGROUND_DRIFT_KNOT_S / BACKGROUND_DRIFT_TIME_CONSTANT_S)
        while self._first_knot + len(self._knots) < int(below.max()) + 2:
            fresh = self._draw_stationary()
            self._knots.append(keep * self._knots[-1] + math.sqrt(1 - keep * keep) * fresh)
        # Two knots of slack: links of different transmitters ask for slightly earlier times than the last.
        forget = int(below.min()) - 2 - self._first_knot
        if forget > 0:
            del self._knots[:forget]
            self._first_knot += forget
        fraction = np.clip(position - below, 0.0, 1.0)[:, None]
        knots = np.asarray(self._knots)
        index = below - self._first_knot
        weights: npt.NDArray[np.complex128] = 1 + (1 - fraction) * knots[index] + fraction * knots[index + 1]
        return weights
