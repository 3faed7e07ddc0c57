"""Receiver impairments: what real radios do to the channel before they report it.

Each is switchable so that tests can look at the physics alone (``Impairments.none()``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from appliance.csi.simulator.channel import SUBCARRIER_SPACING_HZ, phasor

C64 = npt.NDArray[np.complex64]

# AGC bounds its gain steps around the operating point it settled on for the empty room.
AGC_RANGE_DB = 3.0


@dataclass(frozen=True)
class Impairments:
    """Which impairments to apply, and how strongly. The defaults resemble an ESP32 or ath9k in a home."""

    # Residual carrier frequency offset and PLL phase: one random phase per packet, common to all tones.
    common_phase: bool = True
    # Packet-detection (symbol timing) offset: a linear phase slope across tones, uniform in +-this.
    timing_offset_ns: float = 50.0
    # Automatic gain control re-settling now and then: gain steps of this size, at this mean rate.
    agc_step_db: float = 1.0
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

    @classmethod
    def none(cls) -> Impairments:
        """The clean channel: no phase, gain, noise, quantization, format or timing artefacts."""
        return cls(
            common_phase=False,
            timing_offset_ns=0.0,
            agc_step_db=0.0,
            agc_steps_per_minute=0.0,
            noise=False,
            quantize=False,
            first_word_invalid=False,
            packet_loss=0.0,
            timing_jitter_us=0.0,
        )


class LinkImpairer:
    """Applies the impairments to one link's clean channel, packet batch by packet batch.

    The AGC operating point maps the empty room's mean channel power to ``target_amplitude`` counts, which is
    why real captures sit at similar levels whatever the path loss. Noise is set against that level.
    """

    def __init__(
        self,
        impairments: Impairments,
        rng: np.random.Generator,
        *,
        subcarriers: npt.NDArray[np.int16],
        reference_power: float,
        target_amplitude: float,
        full_scale: int,
        snr_db: float,
        packet_rate_hz: float,
    ) -> None:
        self._impairments = impairments
        self._rng = rng
        self._subcarriers = subcarriers.astype(np.float32)
        self._scale = target_amplitude / np.sqrt(reference_power)
        self._full_scale = full_scale
        self._noise_std = target_amplitude * 10 ** (-snr_db / 20) if impairments.noise else 0.0
        self._agc_step_probability = impairments.agc_steps_per_minute / 60 / packet_rate_hz
        self._gain_db = 0.0

    def _agc_gain_db(self, packets: int) -> npt.NDArray[np.float64]:
        step = self._impairments.agc_step_db
        gains = np.empty(packets)
        steps = self._rng.random(packets) < self._agc_step_probability
        signs = np.where(self._rng.random(packets) < 0.5, -1.0, 1.0)
        for i in range(packets):
            if steps[i] and step > 0:
                change = signs[i] * step
                if abs(self._gain_db + change) > AGC_RANGE_DB:
                    change = -change
                self._gain_db += change
            gains[i] = self._gain_db
        return gains

    def apply(self, clean: C64) -> tuple[C64, npt.NDArray[np.bool_]]:
        """(T, pairs, K) clean channel -> (reported values, lost packet mask (T,))."""
        packets = int(clean.shape[0])
        imp = self._impairments
        lost: npt.NDArray[np.bool_] = self._rng.random(packets) < imp.packet_loss
        gain = self._scale * 10 ** (self._agc_gain_db(packets) / 20)
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
        values: C64 = clean * rotation[:, None, :]
        if self._noise_std > 0:
            noise = self._rng.normal(scale=self._noise_std / np.sqrt(2), size=(2, *values.shape))
            values = values + (noise[0] + 1j * noise[1]).astype(np.complex64)
        if imp.quantize:
            low, high = -self._full_scale, self._full_scale - 1
            values = (
                np.clip(np.round(values.real), low, high) + 1j * np.clip(np.round(values.imag), low, high)
            ).astype(np.complex64)
        return values, lost
