"""``RoomSimulator``: a scripted room turned into the frames its receivers would report, plus ground truth."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from appliance.csi.frame import CsiFrame
from appliance.csi.simulator.body import BodyScatterers, pose
from appliance.csi.simulator.channel import FURNITURE_SCATTERERS, BodyField, MultipathChannel, furniture
from appliance.csi.simulator.impairments import BackgroundDrift, Impairments, LinkImpairer
from appliance.csi.simulator.room import (
    ATHEROS_SUBCARRIERS,
    ESP32_ACTIVE_HALF_WIDTH,
    ESP32_SUBCARRIERS,
    NodeSpec,
    RoomSpec,
    antenna_positions,
)
from appliance.csi.simulator.scenario import PersonState, Scenario

F64 = npt.NDArray[np.float64]

TRUTH_RATE_HZ = 20.0
BANDWIDTH_MHZ = 20
# Link budget for RSSI: an ESP32 soft-AP at full power, small PCB antennas losing a few dB each.
TX_POWER_DBM = 20.0
ANTENNA_LOSS_DB = 10.0
NOISE_FLOOR_DBM = -95.0
# Where each chip's AGC puts the CSI (mean magnitude, counts), and its I/Q full scale.
ESP32_TARGET_AMPLITUDE = 25.0
ESP32_FULL_SCALE = 128
ATHEROS_TARGET_AMPLITUDE = 150.0
ATHEROS_FULL_SCALE = 512
# Receivers' microsecond clocks count from their own boot, anywhere from a second to a couple of weeks ago.
DEVICE_CLOCK_START_US = (1e6, 1e12)
# Jitter is clipped so that packets keep their order.
MAX_JITTER_INTERVALS = 0.4
# A walker moves 5-7 cm in this time: little against a Fresnel zone tens of centimetres wide.
SHADOW_INTERVAL_S = 0.05
# Buffer subcarriers 0 and 1: the first word of a classic ESP32's CSI buffer.
ESP32_FIRST_WORD_SUBCARRIERS = (0, 1)


def _antenna_pairs(tx_antennas: F64, rx_antennas: F64) -> tuple[F64, F64]:
    """Every (tx, rx) antenna pair, receive-major, so that a pair axis reshapes to [n_rx, n_tx]."""
    n_rx, n_tx = rx_antennas.shape[0], tx_antennas.shape[0]
    return np.tile(tx_antennas, (n_rx, 1)), np.repeat(rx_antennas, n_tx, axis=0)


# Independent random streams per purpose, so that e.g. adding a person does not move the furniture.
_FURNITURE_STREAM, _BODY_STREAM, _LINK_STREAM, _SCHEDULE_STREAM, _NODE_STREAM, _DRIFT_STREAM = range(6)


@dataclass(frozen=True)
class PersonTruth:
    id: int
    keypoints: npt.NDArray[np.float64]  # (17, 3) metres, room coordinates
    activity: str


@dataclass(frozen=True)
class SceneTruth:
    t_s: float
    persons: tuple[PersonTruth, ...]

    @property
    def person_count(self) -> int:
        return len(self.persons)


@dataclass(frozen=True)
class SimulatedChunk:
    frames: list[CsiFrame]  # time-ordered across links
    truth: list[SceneTruth]  # every 1 / TRUTH_RATE_HZ on the simulated clock


@dataclass(frozen=True)
class _Link:
    id: str
    tx: NodeSpec
    rx: NodeSpec
    tx_antennas: F64
    rx_antennas: F64
    tones: npt.NDArray[np.int16]  # the subcarriers that carry energy, in the channel's column order
    impairer: LinkImpairer
    active_columns: npt.NDArray[np.intp]  # where the channel's tones go in the full subcarrier row
    n_columns: int
    reported_columns: npt.NDArray[np.intp]
    subcarriers: npt.NDArray[np.int16]  # reported
    first_word_invalid: bool
    clock_start_us: int


class RoomSimulator:
    """Simulates every tx -> rx link of a room while the scenario plays.

    Each transmitter sends ``packet_rate_hz`` packets a second; several transmitters take turns (time
    sharing: transmitter i of n sends at i / n of each packet interval), which is also how ``txrx`` nodes
    share the air. All receivers hear the same transmitted packets, so a transmitter's packet times
    (jitter included) are common to its links; losses, gain, phase and noise are each receiver's own. The
    simulated clock starts at 0 and only ``advance`` moves it. The same seed and the same sequence of calls
    give the same frames, bit for bit. ``host_ts`` of a frame is its simulated time; a live source restamps
    it on emission.
    """

    def __init__(
        self,
        room: RoomSpec,
        scenario: Scenario,
        *,
        seed: int,
        packet_rate_hz: float = 100.0,
        snr_db: float = 30.0,
        impairments: Impairments | None = None,
    ) -> None:
        self.room = room
        self.scenario = scenario
        self.packet_rate_hz = packet_rate_hz
        self.impairments = impairments or Impairments()
        self._scatterers = {
            p.person_id: BodyScatterers(p.body, np.random.default_rng([seed, _BODY_STREAM, p.person_id]))
            for p in scenario.people
        }
        furniture_layout = furniture(room, np.random.default_rng([seed, _FURNITURE_STREAM]))
        node_rng = np.random.default_rng([seed, _NODE_STREAM])
        offset = self.impairments.rssi_offset_db
        self._rssi_offsets = {n.id: float(node_rng.uniform(-offset, offset)) for n in room.nodes}
        self._links = [
            self._make_link(tx, rx, furniture_layout, snr_db, np.random.default_rng([seed, _LINK_STREAM, i]))
            for i, (tx, rx) in enumerate(room.links)
        ]
        self._drift = BackgroundDrift(
            FURNITURE_SCATTERERS,
            self.impairments.background_drift,
            np.random.default_rng([seed, _DRIFT_STREAM]),
        )
        # Links of one transmitter with the same subcarriers are synthesized together: one batch of antenna
        # pairs per group (a transmitter's links share packet times).
        self._groups: list[tuple[MultipathChannel, list[tuple[_Link, slice]]]] = []
        for transmitter in room.transmitters:
            own = [link for link in self._links if link.tx.id == transmitter.id]
            for tones in {link.tones.tobytes(): link.tones for link in own}.values():
                members = [link for link in own if np.array_equal(link.tones, tones)]
                tx, rx, slices, first = [], [], [], 0
                for link in members:
                    pair_tx, pair_rx = _antenna_pairs(link.tx_antennas, link.rx_antennas)
                    tx.append(pair_tx)
                    rx.append(pair_rx)
                    slices.append(slice(first, first + pair_tx.shape[0]))
                    first += pair_tx.shape[0]
                channel = MultipathChannel(
                    np.concatenate(tx),
                    np.concatenate(rx),
                    tones,
                    room,
                    *furniture_layout,
                    echoes=self.impairments.body_bounces,
                )
                self._groups.append((channel, list(zip(members, slices, strict=True))))
        self._transmitter_slot = {node.id: i for i, node in enumerate(room.transmitters)}
        self._shadow_stride = max(1, round(SHADOW_INTERVAL_S * packet_rate_hz))
        self._schedule_rng = np.random.default_rng([seed, _SCHEDULE_STREAM])
        self._next_packet = 0
        self._next_truth = 0
        self._t = 0.0

    def _make_link(
        self,
        tx: NodeSpec,
        rx: NodeSpec,
        furniture_layout: tuple[F64, F64],
        snr_db: float,
        rng: np.random.Generator,
    ) -> _Link:
        tx_antennas, rx_antennas = antenna_positions(tx, self.room), antenna_positions(rx, self.room)
        if rx.kind == "esp32":
            # One RF chain: the ESP32 reports a single stream, from the transmitter's first antenna.
            tx_antennas, rx_antennas = tx_antennas[:1], rx_antennas[:1]
            full = ESP32_SUBCARRIERS
            active = (np.abs(full) <= ESP32_ACTIVE_HALF_WIDTH) & (full != 0)
            drop_first_word = self.impairments.first_word_invalid
            reported = (
                ~np.isin(full, ESP32_FIRST_WORD_SUBCARRIERS) if drop_first_word else np.ones_like(active)
            )
            target, full_scale = ESP32_TARGET_AMPLITUDE, ESP32_FULL_SCALE
        else:
            full = ATHEROS_SUBCARRIERS
            active = reported = np.ones(full.shape, dtype=bool)
            drop_first_word = False
            target, full_scale = ATHEROS_TARGET_AMPLITUDE, ATHEROS_FULL_SCALE
        tones = full[active]
        # The AGC operating point is set by the empty room: a channel of this link alone gives it.
        empty_room = MultipathChannel(
            *_antenna_pairs(tx_antennas, rx_antennas), tones, self.room, *furniture_layout
        )
        impairer = LinkImpairer(
            self.impairments,
            rng,
            subcarriers=tones,
            chains=(rx_antennas.shape[0], tx_antennas.shape[0]),
            reference_power=float(np.mean(np.abs(empty_room.static) ** 2)),
            target_amplitude=target,
            full_scale=full_scale,
            snr_db=snr_db,
            rssi_base_dbm=TX_POWER_DBM - ANTENNA_LOSS_DB,
            rssi_offset_db=self._rssi_offsets[rx.id],
        )
        return _Link(
            id=f"{tx.id}-{rx.id}",
            tx=tx,
            rx=rx,
            tx_antennas=tx_antennas,
            rx_antennas=rx_antennas,
            tones=tones,
            impairer=impairer,
            active_columns=np.flatnonzero(active),
            n_columns=int(full.shape[0]),
            reported_columns=np.flatnonzero(reported),
            subcarriers=full[reported],
            first_word_invalid=drop_first_word,
            clock_start_us=int(rng.uniform(*DEVICE_CLOCK_START_US)),
        )

    @property
    def links(self) -> list[str]:
        return [link.id for link in self._links]

    @property
    def t_s(self) -> float:
        return self._t

    def _body_field(self, states: list[PersonState]) -> BodyField | None:
        present = [s for s in states if s.present.any()]
        if not present:
            return None
        points, rcs, starts, centres, probes, radii, probe_present = [], [], [], [], [], [], []
        limb_rcs, body_starts = [], []
        offset = limbs = 0
        for state in present:
            scatterers = self._scatterers[state.person_id]
            geometry = scatterers.geometry(pose(state.body, state.params), state.breathing)
            points.append(geometry.points)
            rcs.append(scatterers.point_rcs_m2[None, :] * state.present[:, None])
            starts.append(scatterers.limb_starts + offset)
            limb_rcs.append(scatterers.limb_rcs_m2[None, :] * state.present[:, None])
            body_starts.append(limbs)
            offset += scatterers.n_points
            limbs += scatterers.limb_starts.size
            centres.append(geometry.limb_centres)
            probes.append(geometry.probes)
            radii.append(geometry.probe_radii)
            probe_present.append(np.repeat(state.present[:, None], geometry.probes.shape[1], axis=1))
        return BodyField(
            points=np.concatenate(points, axis=1),
            point_rcs_m2=np.concatenate(rcs, axis=1),
            limb_starts=np.concatenate(starts),
            limb_centres=np.concatenate(centres, axis=1),
            limb_rcs_m2=np.concatenate(limb_rcs, axis=1),
            body_starts=np.asarray(body_starts, dtype=np.intp),
            probes=np.concatenate(probes, axis=1),
            probe_radii_m=np.concatenate(radii),
            probe_present=np.concatenate(probe_present, axis=1),
        )

    def advance(self, duration_s: float) -> SimulatedChunk:
        """Move the simulated clock on by ``duration_s`` and return what happened meanwhile."""
        end = self._t + duration_s
        first, stop = self._next_packet, max(self._next_packet, math.ceil(end * self.packet_rate_hz - 1e-9))
        index = np.arange(first, stop)
        n_tx = len(self._transmitter_slot)
        interval = 1.0 / self.packet_rate_hz
        jitter_us = self.impairments.timing_jitter_us
        schedule: dict[str, F64] = {}
        for tx_id, slot in self._transmitter_slot.items():
            times: F64 = (index + slot / n_tx).astype(np.float64) * interval
            if jitter_us > 0 and index.size:
                limit = MAX_JITTER_INTERVALS * interval / n_tx
                jitter = np.clip(self._schedule_rng.normal(0, jitter_us * 1e-6, index.size), -limit, limit)
                times = times + jitter
            schedule[tx_id] = times
        bodies = {
            tx_id: self._body_field(self.scenario.evaluate(times)) if index.size else None
            for tx_id, times in schedule.items()
        }

        frames: list[CsiFrame] = []
        for channel, members in self._groups:
            tx_id = members[0][0].tx.id
            times = schedule[tx_id]
            response = channel.response(
                bodies[tx_id],
                index.size,
                shadow_stride=self._shadow_stride,
                furniture_weights=self._drift.weights(times) if self.impairments.background_drift else None,
            )
            for link, pairs in members:
                frames += self._link_frames(link, response[:, pairs], index, times)
        # Time order across links; a transmitter's links keep the room's link order for the same packet.
        order = {link.id: i for i, link in enumerate(self._links)}
        frames.sort(key=lambda f: (f.host_ts, order[f.link]))

        truth_stop = max(self._next_truth, math.ceil(end * TRUTH_RATE_HZ - 1e-9))
        truth_times = np.arange(self._next_truth, truth_stop) / TRUTH_RATE_HZ
        truth = self._truth(truth_times)
        self._next_packet, self._next_truth, self._t = stop, truth_stop, end
        return SimulatedChunk(frames, truth)

    def _link_frames(
        self, link: _Link, clean: npt.NDArray[np.complex64], index: npt.NDArray[np.int64], times: F64
    ) -> list[CsiFrame]:
        """One link's frames for a batch of packets, without those the receiver missed."""
        packets = link.impairer.apply(clean, times)
        values, lost, rssi = packets.values, packets.lost, packets.rssi_dbm
        n_rx, n_tx = link.rx_antennas.shape[0], link.tx_antennas.shape[0]
        full = np.zeros((index.size, n_rx * n_tx, link.n_columns), np.complex64)
        full[:, :, link.active_columns] = values
        reported = full[:, :, link.reported_columns].reshape(index.size, n_rx, n_tx, -1)
        meta: dict[str, int | float | str | bool] = {
            "tx": link.tx.id,
            "rx": link.rx.id,
            "rx_kind": link.rx.kind,
        }
        if link.first_word_invalid:
            meta["first_word_invalid"] = True
        return [
            CsiFrame(
                link=link.id,
                device_ts_us=link.clock_start_us + round(times[i] * 1e6),
                host_ts=float(times[i]),
                seq=int(index[i]),
                rssi_dbm=float(rssi[i]),
                noise_dbm=NOISE_FLOOR_DBM,
                channel_mhz=self.room.channel_mhz,
                bandwidth_mhz=BANDWIDTH_MHZ,
                csi=reported[i],
                subcarriers=link.subcarriers,
                wire_format="simulated",
                meta={**meta, "sim_t_s": float(times[i])},
            )
            for i in range(index.size)
            if not lost[i]
        ]

    def _truth(self, times: F64) -> list[SceneTruth]:
        if not times.size:
            return []
        persons: list[list[PersonTruth]] = [[] for _ in times]
        for state in self.scenario.evaluate(times):
            if not state.present.any():
                continue
            keypoints = pose(state.body, state.params).keypoints
            for i in np.flatnonzero(state.present):
                persons[i].append(PersonTruth(state.person_id, keypoints[i], state.activities[i]))
        return [SceneTruth(float(t), tuple(p)) for t, p in zip(times, persons, strict=True)]

    def truth_at(self, t_s: float) -> SceneTruth:
        """Who is where, doing what, at simulated time ``t_s`` (any time; the clock does not move)."""
        return self._truth(np.array([t_s]))[0]
