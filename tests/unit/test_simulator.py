"""The room simulator: physics (shadowing, Doppler, stationarity, noise), formats, scripts and the source."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest

from appliance.contracts.coco import ACTIVITIES, KEYPOINT_INDEX
from appliance.csi.frame import CsiFrame
from appliance.csi.simulator import (
    Body,
    Impairments,
    NodeSpec,
    RoomSimulator,
    RoomSpec,
    Scenario,
    default_room,
)
from appliance.csi.simulator.body import BodyScatterers, pose, standing
from appliance.csi.simulator.channel import BodyField, MultipathChannel, furniture
from appliance.csi.simulator.room import wavelength_m
from appliance.csi.sources.simulated import SimulatedSource

NOSE = KEYPOINT_INDEX["nose"]


def _frames_of(frames: list[CsiFrame], link: str) -> list[CsiFrame]:
    return [f for f in frames if f.link == link]


def _standing_body_field(x: float, y: float) -> BodyField:
    body = Body()
    scatterers = BodyScatterers(body, np.random.default_rng(0))
    geometry = scatterers.geometry(pose(body, standing(body, x, y, 0.0)[None]), np.zeros(1))
    return BodyField(
        geometry.points,
        scatterers.point_rcs_m2[None],
        scatterers.limb_starts,
        geometry.limb_centres,
        geometry.probes,
        geometry.probe_radii,
        np.ones(geometry.probes.shape[:2], dtype=bool),
        scatterers.limb_rcs_m2[None],
        np.zeros(1, dtype=np.intp),
    )


def _line_of_sight_room() -> RoomSpec:
    return RoomSpec(
        5.0,
        4.0,
        2.7,
        (NodeSpec("tx", "esp32", "tx", (0.05, 2.0, 1.2)), NodeSpec("rx", "esp32", "rx", (4.95, 2.0, 1.2))),
        doors=((2.5, 4.0),),
    )


def test_body_on_line_of_sight_shadows_the_direct_path() -> None:
    room = _line_of_sight_room()
    tones = np.arange(-26, 27, dtype=np.int16)
    channel = MultipathChannel(
        np.array([[0.05, 2.0, 1.2]]),
        np.array([[4.95, 2.0, 1.2]]),
        tones,
        room,
        *furniture(room, np.random.default_rng(0)),
    )
    on_path = channel.path_gains(_standing_body_field(2.5, 2.0))[0, 0, 0]
    off_path = channel.path_gains(_standing_body_field(2.5, 0.6))[0, 0, 0]
    assert off_path == pytest.approx(1.0)
    assert 20 * np.log10(on_path) < -6.0


def test_person_standing_on_line_of_sight_lowers_received_power() -> None:
    room = _line_of_sight_room()

    def mean_power(x: float, y: float) -> float:
        scenario = Scenario(room)
        scenario.person().enter(0).walk_to(x, y).stand(30)
        sim = RoomSimulator(room, scenario, seed=1, impairments=Impairments.none())
        sim.advance(15.0)
        frames = sim.advance(1.0).frames
        return float(np.mean([np.mean(np.abs(f.csi) ** 2) for f in frames]))

    assert 10 * np.log10(mean_power(2.5, 2.0) / mean_power(2.5, 0.8)) < -3.0


def test_walker_doppler_matches_two_v_over_lambda() -> None:
    speed = 1.0
    room = RoomSpec(
        9.0,
        6.0,
        2.7,
        (NodeSpec("tx", "esp32", "tx", (0.05, 2.9, 1.1)), NodeSpec("rx", "esp32", "rx", (0.05, 3.1, 1.1))),
        doors=((0.0, 3.0),),
    )
    scenario = Scenario(room)
    scenario.person().enter(0).walk_to(8.5, 3.0, speed)
    sim = RoomSimulator(room, scenario, seed=2, impairments=Impairments.none())
    frames = sim.advance(7.0).frames
    times = np.array([f.meta["sim_t_s"] for f in frames])
    window = (times >= 3.0) & (times < 6.0)  # well into the walk, 3-6 m from the antennas
    power = np.array([np.abs(f.csi[0, 0, 40]) ** 2 for f in frames])[window]
    spectrum = np.abs(np.fft.rfft((power - power.mean()) * np.hanning(power.size), n=8192))
    freqs = np.fft.rfftfreq(8192, d=1 / sim.packet_rate_hz)
    band = freqs > 3.0  # above body-part beats and gait modulation
    f_peak = freqs[band][np.argmax(spectrum[band])]
    expected = 2 * speed / wavelength_m(room.channel_mhz)
    assert abs(f_peak - expected) <= 0.1 * expected


def test_empty_room_is_static_without_impairments() -> None:
    room = default_room()
    sim = RoomSimulator(room, Scenario(room), seed=4, impairments=Impairments.none())
    frames = sim.advance(1.0).frames
    for link in sim.links:
        csi = np.stack([f.csi for f in _frames_of(frames, link)])
        assert csi.shape[0] == 100
        assert np.array_equal(csi, np.broadcast_to(csi[0], csi.shape))


def test_noise_matches_configured_snr() -> None:
    room = default_room()
    snr_db = 20.0
    impairments = Impairments(**{**vars(Impairments.none()), "noise": True})
    sim = RoomSimulator(room, Scenario(room), seed=5, snr_db=snr_db, impairments=impairments)
    frames = _frames_of(sim.advance(4.0).frames, sim.links[0])
    csi = np.stack([f.csi[0, 0] for f in frames])
    active = np.abs(csi).mean(axis=0) > 0
    amplitude = np.abs(csi[:, active])
    # Small complex Gaussian noise of power N on a tone spreads its magnitude with variance N / 2.
    expected_variance = np.mean(amplitude**2) / 10 ** (snr_db / 10) / 2
    assert np.mean(amplitude.var(axis=0)) == pytest.approx(expected_variance, rel=0.2)


def _demo_csi(seed: int) -> np.ndarray:
    room = default_room()
    sim = RoomSimulator(room, Scenario.demo(room, seed=0), seed=seed)
    sim.advance(30.0)
    return np.stack([f.csi for f in sim.advance(1.0).frames if f.link == sim.links[0]])


def test_same_seed_same_frames_different_seed_different() -> None:
    first, again, other = _demo_csi(7), _demo_csi(7), _demo_csi(8)
    assert np.array_equal(first, again)
    assert first.shape != other.shape or not np.array_equal(first, other)


def test_esp32_frames_look_like_classic_esp32_captures() -> None:
    room = default_room()
    sim = RoomSimulator(room, Scenario.demo(room, seed=0), seed=1)
    chunk = sim.advance(1.0)
    assert {f.link for f in chunk.frames} == set(sim.links) == {f"ap-rx{i}" for i in range(1, 7)}
    frame = chunk.frames[0]
    assert frame.csi.shape == (1, 1, 62)
    assert frame.csi.dtype == np.complex64
    assert frame.meta["first_word_invalid"] is True
    expected = np.concatenate([np.arange(-32, 0), np.arange(2, 32)])
    assert np.array_equal(frame.subcarriers, expected)
    assert frame.wire_format == "simulated"
    assert frame.noise_dbm == pytest.approx(-95.0)
    assert -80 < frame.rssi_dbm < -20
    for f in chunk.frames:
        values = f.csi[0, 0]
        guard = np.abs(f.subcarriers) > 26
        assert np.all(values[guard] == 0)
        parts = np.concatenate([values.real, values.imag])
        assert np.all(parts == np.round(parts))
        assert parts.min() >= -128 and parts.max() <= 127
        assert 10 <= np.abs(values[~guard]).mean() <= 50


def test_esp32_without_first_word_invalid_keeps_64_columns_with_zero_dc() -> None:
    room = default_room()
    impairments = Impairments(first_word_invalid=False)
    frame = RoomSimulator(room, Scenario(room), seed=1, impairments=impairments).advance(0.1).frames[0]
    assert frame.csi.shape == (1, 1, 64)
    assert "first_word_invalid" not in frame.meta
    assert frame.csi[0, 0, list(frame.subcarriers).index(0)] == 0


def test_atheros_frames_have_three_by_two_antennas_of_ten_bit_values() -> None:
    room = RoomSpec(
        5.0,
        4.0,
        2.7,
        (
            NodeSpec("router", "atheros", "tx", (2.5, 0.05, 1.8), antennas=2),
            NodeSpec("ath", "atheros", "rx", (4.95, 2.0, 1.2), antennas=3),
        ),
    )
    scenario = Scenario(room)
    scenario.person().enter(0).walk_to(3.0, 2.0).stand(5)
    frames = RoomSimulator(room, scenario, seed=1).advance(1.0).frames
    assert frames[0].csi.shape == (3, 2, 56)
    assert np.array_equal(frames[0].subcarriers, np.concatenate([np.arange(-28, 0), np.arange(1, 29)]))
    csi = np.stack([f.csi for f in frames])
    parts = np.concatenate([csi.real.ravel(), csi.imag.ravel()])
    assert np.all(parts == np.round(parts))
    assert parts.min() >= -512 and parts.max() <= 511
    # Antennas at their own positions see different channels.
    assert not np.allclose(np.abs(csi[:, 0, 0]), np.abs(csi[:, 1, 0]))


def test_packet_loss_shows_as_sequence_gaps_and_jitter_moves_timestamps() -> None:
    room = default_room()
    sim = RoomSimulator(room, Scenario(room), seed=3, impairments=Impairments(packet_loss=0.1))
    frames = _frames_of(sim.advance(5.0).frames, sim.links[0])
    seqs = np.array([f.seq for f in frames])
    assert 400 < len(frames) < 490
    assert np.all(np.diff(seqs) >= 1) and np.any(np.diff(seqs) > 1)
    intervals = np.diff([f.device_ts_us for f in frames]) / np.diff(seqs)
    assert np.std(intervals) > 50
    assert np.mean(intervals) == pytest.approx(10_000, rel=0.01)


def test_fall_drops_the_head_within_a_second_then_lying() -> None:
    room = default_room()
    scenario = Scenario(room)
    scenario.person().enter(0).walk_to(2.0, 2.0).stand(2).fall(lie_s=5)
    sim = RoomSimulator(room, scenario, seed=1)
    truth = sim.advance(20.0).truth
    labels = [s.persons[0].activity for s in truth if s.persons]
    falling = [i for i, s in enumerate(truth) if s.persons and s.persons[0].activity == "falling"]
    assert falling
    start = truth[falling[0]].t_s
    head_before = sim.truth_at(start - 0.05).persons[0].keypoints[NOSE, 2]
    head_after = sim.truth_at(start + 1.0).persons[0].keypoints[NOSE, 2]
    assert head_before - head_after > 0.8
    after_fall = labels[labels.index("falling") :]
    assert after_fall[: after_fall.index("lying")] == ["falling"] * after_fall.index("lying")
    assert after_fall[-1] == "lying"


def _collapse(labels: list[str]) -> list[str]:
    return [label for i, label in enumerate(labels) if i == 0 or labels[i - 1] != label]


def test_scripted_activities_appear_in_order_and_leaving_empties_the_room() -> None:
    room = default_room()
    scenario = Scenario(room)
    scenario.person().away(1).enter(0).walk_to(2.5, 2.5).sit(3).lie_down(3).stand(2).walk_to(1, 1).leave(0)
    sim = RoomSimulator(room, scenario, seed=1)
    truth = sim.advance(scenario.people[0].duration_s + 2).truth
    labels = [s.persons[0].activity if s.persons else "empty" for s in truth]
    assert set(labels) <= set(ACTIVITIES)
    sequence = _collapse(labels)
    assert sequence[0] == "empty" and sequence[-1] == "empty"
    # Turning on the spot after standing still counts as standing, after walking as walking.
    assert sequence[1:-1] == ["walking", "sitting", "lying", "standing", "walking"]
    assert truth[-1].person_count == 0


def test_truth_keypoints_are_plausible_and_sitting_is_at_seat_height() -> None:
    room = default_room()
    scenario = Scenario(room)
    scenario.person(Body(height_m=1.8)).enter(0).walk_to(2.5, 2.0).stand(3).sit(10)
    sim = RoomSimulator(room, scenario, seed=1)
    end = scenario.people[0].duration_s
    standing_kp = sim.truth_at(end - 13).persons[0].keypoints
    sitting_kp = sim.truth_at(end - 1).persons[0].keypoints
    assert standing_kp.shape == (17, 3)
    assert 1.55 < standing_kp[NOSE, 2] < 1.75
    hips = [KEYPOINT_INDEX["left_hip"], KEYPOINT_INDEX["right_hip"]]
    assert 0.45 < sitting_kp[hips, 2].mean() < 0.65
    assert np.all(sitting_kp[:, 2] > -0.01)


def test_demo_is_lively_with_empty_periods_and_two_people() -> None:
    room = default_room()
    scenario = Scenario.demo(room, seed=0)
    assert scenario.loop_s is not None and 100 < scenario.loop_s < 400
    sim = RoomSimulator(room, scenario, seed=0)
    truth = [sim.truth_at(t) for t in np.arange(0.0, scenario.loop_s, 0.5)]
    counts = {s.person_count for s in truth}
    assert {0, 1, 2} <= counts
    states = _collapse([",".join(sorted(p.activity for p in s.persons)) for s in truth])
    assert len(states) > scenario.loop_s / 20
    assert sim.truth_at(scenario.loop_s + 30).person_count == sim.truth_at(30).person_count


def test_random_scenarios_are_seeded_and_run() -> None:
    room = default_room()
    a = Scenario.random(room, np.random.default_rng(11), max_people=3, duration_s=30)
    b = Scenario.random(room, np.random.default_rng(11), max_people=3, duration_s=30)
    assert [p.body for p in a.people] == [p.body for p in b.people]
    assert all(1.5 <= p.body.height_m <= 1.95 for p in a.people)
    sim = RoomSimulator(room, a, seed=0)
    chunk = sim.advance(30.0)
    assert len(chunk.truth) >= 10 * 30
    for scene in chunk.truth:
        for person in scene.persons:
            assert person.activity in ACTIVITIES[1:]
            assert np.all(np.isfinite(person.keypoints))


async def test_source_streams_all_links_in_real_time() -> None:
    room = default_room()
    sim = RoomSimulator(room, Scenario.demo(room, seed=0), seed=0, impairments=Impairments(packet_loss=0.0))
    source = SimulatedSource(sim)
    assert source.kind == "simulated"
    assert source.links == sim.links
    frames: list[CsiFrame] = []
    started = time.time()
    async for frame in source.frames():
        frames.append(frame)
        if float(frame.meta["sim_t_s"]) >= 0.5:
            break
    # Paced, never early: each frame leaves once the wall clock reaches its simulated time. (No upper bound:
    # how late a frame leaves depends on the machine's load, not on the code.)
    assert all(f.host_ts >= started + float(f.meta["sim_t_s"]) - 0.001 for f in frames)
    assert time.time() - started >= 0.5
    assert {f.link for f in frames} == set(sim.links)
    assert len(frames) == pytest.approx(6 * 100 * 0.5, rel=0.1)
    assert all(started <= f.host_ts <= time.time() for f in frames)
    assert source.latest_truth is not None and source.latest_truth.t_s <= 0.5


async def test_source_without_pacing_runs_ahead_of_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unpaced, the source never waits for the clock (asserted on its sleeps, not on a machine's speed)."""
    room = default_room()
    source = SimulatedSource(RoomSimulator(room, Scenario.demo(room, seed=0), seed=0), realtime=False)
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def recorded_sleep(delay: float, *args: Any) -> Any:
        waits.append(delay)
        return await real_sleep(delay, *args)

    monkeypatch.setattr(asyncio, "sleep", recorded_sleep)
    count = 0
    async for frame in source.frames():
        count += 1
        if float(frame.meta["sim_t_s"]) >= 2.0:
            break
    assert [w for w in waits if w > 0] == []
    assert count > 6 * 150
    await asyncio.sleep(0)
