"""The simulator's realism switches: each one, alone on top of the ideal room, does what real radios and
rooms do, and is on by default. Golden values come from the physics (image method, Fresnel coefficients,
definitions of the impairments), not from the simulator's code."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from appliance.csi.frame import CsiFrame
from appliance.csi.simulator import Impairments, NodeSpec, RoomSimulator, RoomSpec, Scenario, default_room
from appliance.csi.simulator.channel import BodyField, MultipathChannel
from appliance.csi.simulator.room import SETUPS, setup_nodes, wavelength_m

IDEAL = Impairments.none()


def only(**switches: object) -> Impairments:
    return dataclasses.replace(IDEAL, **switches)  # type: ignore[arg-type]


def _atheros_room() -> RoomSpec:
    return RoomSpec(
        5.0,
        4.0,
        2.7,
        (
            NodeSpec("ap", "atheros", "tx", (2.5, 0.05, 1.8), antennas=1),
            NodeSpec("r1", "atheros", "rx", (4.95, 2.0, 1.2), antennas=3),
        ),
    )


def _stack(frames: list[CsiFrame], link: str | None = None) -> np.ndarray:
    return np.stack([f.csi for f in frames if link is None or f.link == link])


def test_every_realism_switch_is_on_by_default() -> None:
    defaults = Impairments()
    assert defaults.chain_phase and defaults.chain_phase_drift_rad_per_sqrt_s > 0
    assert defaults.agc_power_driven and defaults.body_bounces
    assert defaults.background_drift > 0 and defaults.rssi_noise_db > 0 and defaults.rssi_offset_db > 0


def test_chain_phases_are_fixed_per_boot_drift_slowly_and_differ_between_boots() -> None:
    room = _atheros_room()

    def chain_phase(seed: int, impairments: Impairments, seconds: float) -> np.ndarray:
        sim = RoomSimulator(room, Scenario(room), seed=seed, impairments=impairments)
        csi = _stack(sim.advance(seconds).frames)[:, :, 0, :]  # (T, 3 chains, K)
        # Phase of chain r against chain 0, averaged over tones: the empty room's geometry plus offsets.
        return np.angle(np.sum(csi[:, 1:] * np.conj(csi[:, :1]), axis=2))  # (T, 2)

    ideal = chain_phase(1, IDEAL, 1.0)[0]
    fixed = chain_phase(1, only(chain_phase=True), 1.0)
    other_boot = chain_phase(2, only(chain_phase=True), 1.0)[0]
    offset = np.angle(np.exp(1j * (fixed - ideal)))
    assert np.ptp(offset, axis=0) == pytest.approx(0.0, abs=1e-4)  # without drift: one offset per boot
    assert np.max(np.abs(np.angle(np.exp(1j * (other_boot - ideal)) - offset[0]))) > 0.1
    drifting = chain_phase(1, only(chain_phase=True, chain_phase_drift_rad_per_sqrt_s=0.01), 100.0)
    moved = np.abs(np.angle(np.exp(1j * (drifting[-1] - drifting[0]))))
    assert 0.0 < moved.max() < 0.6  # a random walk of 0.01 rad/sqrt(s) over 100 s: ~0.1 rad
    step = np.abs(np.angle(np.exp(1j * np.diff(drifting, axis=0))))
    assert step.max() < 0.01  # packet to packet it is still


def _los_scenario(room: RoomSpec, x: float, y: float) -> Scenario:
    scenario = Scenario(room)
    scenario.person().enter(0).walk_to(x, y).stand(60)
    return scenario


def test_power_driven_agc_hides_a_shadow_in_the_csi_and_rssi_keeps_it() -> None:
    room = RoomSpec(
        5.0,
        4.0,
        2.7,
        (NodeSpec("tx", "esp32", "tx", (0.05, 2.0, 1.2)), NodeSpec("rx", "esp32", "rx", (4.95, 2.0, 1.2))),
        doors=((2.5, 4.0),),
    )

    def levels(impairments: Impairments, x: float, y: float) -> tuple[float, float]:
        sim = RoomSimulator(room, _los_scenario(room, x, y), seed=1, impairments=impairments)
        sim.advance(15.0)
        frames = sim.advance(2.0).frames
        csi_db = 10 * np.log10(np.mean([np.mean(np.abs(f.csi) ** 2) for f in frames]))
        return float(csi_db), float(np.mean([f.rssi_dbm for f in frames]))

    agc = only(agc_power_driven=True, agc_step_db=1.0)
    csi_shadowed, rssi_shadowed = levels(agc, 2.5, 2.0)
    csi_clear, rssi_clear = levels(agc, 2.5, 0.8)
    assert rssi_shadowed - rssi_clear < -3.0  # the body on the line of sight takes several dB
    # ... which the AGC gives back to the CSI, to within its hysteresis
    assert abs(csi_shadowed - csi_clear) < agc.agc_hysteresis_db
    no_agc_shadowed, _ = levels(IDEAL, 2.5, 2.0)
    no_agc_clear, _ = levels(IDEAL, 2.5, 0.8)
    assert no_agc_shadowed - no_agc_clear < -3.0


def test_rssi_has_per_node_offsets_and_noise_in_whole_db() -> None:
    room = default_room()
    frames = RoomSimulator(room, Scenario(room), seed=3, impairments=IDEAL).advance(5.0).frames
    noisy = (
        RoomSimulator(room, Scenario(room), seed=3, impairments=only(rssi_noise_db=1.0, rssi_offset_db=3.0))
        .advance(5.0)
        .frames
    )
    for link in {f.link for f in frames}:
        clean = np.array([f.rssi_dbm for f in frames if f.link == link])
        measured = np.array([f.rssi_dbm for f in noisy if f.link == link])
        assert np.all(measured == np.round(measured))
        assert 0.7 < np.std(measured) < 1.4  # N(0, 1 dB), rounded
        assert abs(np.mean(measured - clean)) <= 3.3  # the node's offset, within +-3 dB
    offsets = {
        link: np.mean([f.rssi_dbm for f in noisy if f.link == link])
        - np.mean([f.rssi_dbm for f in frames if f.link == link])
        for link in {f.link for f in frames}
    }
    assert np.ptp(list(offsets.values())) > 0.5  # nodes differ


def test_body_echoes_are_the_image_method_paths_off_every_surface() -> None:
    """A point target's echoes: with the surfaces on, the channel gains, for each of the six surfaces, the
    target seen from the receiver mirrored in it and from the mirrored transmitter, weighted by the
    surface's normal-incidence Fresnel coefficient (image method + bistatic radar equation)."""
    width, depth, height = 6.0, 5.0, 3.0
    room = RoomSpec(
        width,
        depth,
        height,
        (NodeSpec("t", "esp32", "tx", (1, 1, 1)), NodeSpec("r", "esp32", "rx", (5, 4, 1))),
    )
    target, rcs = np.array([2.0, 3.5, 1.2]), 0.5
    bodies = BodyField(
        points=target[None, None, :],
        point_rcs_m2=np.array([[rcs]]),
        limb_starts=np.zeros(1, np.intp),
        limb_centres=target[None, None, :],
        probes=target[None, None, :],
        probe_radii_m=np.zeros(1),
        probe_present=np.zeros((1, 1), bool),
        limb_rcs_m2=np.array([[rcs]]),
        body_starts=np.zeros(1, np.intp),
    )
    tones = np.arange(-26, 27, dtype=np.int16)
    layout = (np.zeros((0, 3)), np.zeros(0))
    tx, rx = np.array([[1.0, 1.0, 1.0]]), np.array([[5.0, 4.0, 1.0]])
    plain = MultipathChannel(tx, rx, tones, room, *layout).response(bodies, 1)[0, 0]
    echoed = MultipathChannel(tx, rx, tones, room, *layout, echoes=True).response(bodies, 1)[0, 0]

    wavelength = wavelength_m(room.channel_mhz)
    freq = room.channel_mhz * 1e6 + tones * 312_500.0

    def fresnel(permittivity: float) -> float:
        return (1 - np.sqrt(permittivity)) / (1 + np.sqrt(permittivity))

    expected = np.zeros(tones.size, complex)
    for axis, plane, permittivity in (
        (0, 0.0, 5.0),
        (0, width, 5.0),
        (1, 0.0, 5.0),
        (1, depth, 5.0),
        (2, 0.0, 5.0),
        (2, height, 2.5),
    ):
        for mirrored in ("tx", "rx"):
            image = (tx[0] if mirrored == "tx" else rx[0]).copy()
            image[axis] = 2 * plane - image[axis]
            a, b = (image, rx[0]) if mirrored == "tx" else (tx[0], image)
            d1, d2 = np.linalg.norm(target - a), np.linalg.norm(target - b)
            amplitude = fresnel(permittivity) * np.sqrt(rcs) * wavelength / (4 * np.pi) ** 1.5 / (d1 * d2)
            expected += amplitude * np.exp(-2j * np.pi * freq * (d1 + d2) / 299_792_458.0)
    np.testing.assert_allclose(echoed - plain, expected, rtol=2e-3, atol=1e-3 * np.abs(expected).max())


def test_background_drifts_slowly_and_does_not_depend_on_chunking() -> None:
    room = default_room()
    drift = only(background_drift=Impairments().background_drift)

    def run(chunks: list[float]) -> np.ndarray:
        sim = RoomSimulator(room, Scenario(room), seed=4, impairments=drift)
        return np.concatenate([_stack(sim.advance(c).frames, "ap-rx1") for c in chunks])

    whole, pieces = run([20.0]), run([0.3, 7.7, 12.0])
    np.testing.assert_allclose(whole, pieces, rtol=1e-5, atol=1e-5)
    change = np.abs(whole - whole[0]).mean(axis=(1, 2, 3)) / np.abs(whole[0]).mean()
    assert change[100] < 0.01  # after 1 s: still
    # One packet a second is enough to watch half an hour go by.
    long = RoomSimulator(room, Scenario(room), seed=4, impairments=drift, packet_rate_hz=1.0)
    first = long.advance(1.0).frames
    long.advance(1800.0)
    later = long.advance(1.0).frames
    moved = [
        np.abs(_stack(later, link)[0] - _stack(first, link)[0]).mean() / np.abs(_stack(first, link)[0]).mean()
        for link in long.links
    ]
    assert np.mean(moved) > 0.02  # after half an hour the empty room has moved about as much as a person


def test_transmitters_take_turns_and_transceivers_make_links_among_themselves() -> None:
    room = RoomSpec(
        5.0,
        4.0,
        2.7,
        (
            NodeSpec("a", "esp32", "txrx", (0.05, 1.0, 1.2)),
            NodeSpec("b", "esp32", "txrx", (4.95, 3.0, 1.2)),
            NodeSpec("c", "esp32", "txrx", (2.5, 3.95, 1.2)),
        ),
    )
    assert room.link_ids == ["a-b", "a-c", "b-a", "b-c", "c-a", "c-b"]
    sim = RoomSimulator(room, Scenario(room), seed=0, impairments=IDEAL, packet_rate_hz=30.0)
    frames = sim.advance(1.0).frames
    assert [f.host_ts for f in frames] == sorted(f.host_ts for f in frames)
    starts = {link: min(f.host_ts for f in frames if f.link == link) for link in room.link_ids}
    assert starts["a-b"] == pytest.approx(0.0)
    assert starts["b-a"] == pytest.approx(1 / 90)  # the second of three takes the second third
    assert starts["c-b"] == pytest.approx(2 / 90)
    # Reciprocity: a -> b and b -> a cross the same air.
    ab, ba = _stack(frames, "a-b")[0], _stack(frames, "b-a")[0]
    np.testing.assert_allclose(np.abs(ab), np.abs(ba), rtol=1e-4)


@pytest.mark.parametrize("setup", sorted(SETUPS))
def test_setups_spread_their_nodes_round_the_walls(setup: str) -> None:
    kind, n_tx, n_rx = SETUPS[setup]
    nodes = setup_nodes(setup, 5.0, 4.0, 2.7, np.random.default_rng(0))
    room = RoomSpec(5.0, 4.0, 2.7, nodes)
    assert len(room.transmitters) == n_tx and len(room.receivers) == n_rx
    assert len(room.link_ids) == n_tx * n_rx
    assert {n.kind for n in nodes} == {kind}
    for node in nodes:
        x, y, z = node.position
        assert min(x, 5.0 - x, y, 4.0 - y) == pytest.approx(0.05)
        assert 0.5 < z < 2.7
    assert wavelength_m(room.channel_mhz) == pytest.approx(0.1229, abs=1e-3)
