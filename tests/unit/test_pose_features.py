"""The pose model's window builder, empty-room reference and overlay camera."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.csi.prep import PreparedSample
from appliance.csi.simulator import default_room
from appliance.pose.camera import camera_for_room, project
from appliance.pose.features import (
    ASINH_SCALE,
    GAIN_LOG_LIMIT,
    LINK_FEATURES,
    LINK_GEOMETRY_FEATURES,
    MAP_CELLS,
    MAX_LINKS,
    N_GEOMETRY,
    N_STEPS,
    N_SUBCARRIERS,
    EmptyRoomReference,
    LinkGeometry,
    RoomGeometry,
    build_window,
    link_maps,
    link_window,
)

RATE_HZ = 100.0


def _sample(link: str, t_s: float, amplitude: np.ndarray, valid: bool = True) -> PreparedSample:
    pairs = amplitude.shape[0]
    return PreparedSample(
        link=link,
        t_s=t_s,
        amplitude=amplitude.astype(np.float32),
        phase=np.zeros_like(amplitude, dtype=np.float32),
        gain=np.ones(pairs, np.float32),
        rssi_dbm=-50.0,
        valid=valid,
    )


def _profile(pairs: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.5, 1.5, (pairs, N_SUBCARRIERS))


def _reference(link: str, profile: np.ndarray, seconds: float = 4.0) -> EmptyRoomReference:
    reference = EmptyRoomReference()
    for i in range(int(seconds * RATE_HZ)):
        reference.update(_sample(link, 100.0 + i / RATE_HZ, profile))
    return reference


def test_reference_ready_after_min_seconds_and_skips_invalid_samples() -> None:
    profile = _profile(1)
    reference = EmptyRoomReference(min_s=1.0)
    for i in range(50):
        reference.update(_sample("a", i / RATE_HZ, profile))
        reference.update(_sample("a", i / RATE_HZ, np.full_like(profile, np.nan), valid=False))
    assert not reference.ready
    with pytest.raises(RuntimeError):
        _ = reference.log_profile
    for i in range(50, 120):
        reference.update(_sample("a", i / RATE_HZ, profile))
    assert reference.ready
    np.testing.assert_allclose(reference.log_profile, np.log(profile), atol=1e-6)


def test_reference_restarts_when_the_antenna_layout_changes() -> None:
    reference = _reference("a", _profile(1))
    assert reference.ready
    reference.update(_sample("a", 200.0, _profile(6)))
    assert not reference.ready and reference.seconds == 0.0


def test_reference_noise_is_the_per_sample_log_spread() -> None:
    rng = np.random.default_rng(1)
    profile = _profile(1)
    reference = EmptyRoomReference()
    for i in range(500):
        reference.update(_sample("a", i / RATE_HZ, profile * np.exp(rng.normal(0, 0.05, profile.shape))))
    assert reference.noise == pytest.approx(0.05, rel=0.1)
    np.testing.assert_allclose(reference.log_profile, np.log(profile), atol=0.02)


def test_unchanged_room_reads_zero_and_a_uniform_change_reads_its_z_score() -> None:
    profile = _profile(6)
    reference = _reference("a", profile)
    samples = [_sample("a", 10 + i / RATE_HZ, profile) for i in range(300)]
    window = link_window(samples, reference.log_profile, 0.05, reference.log_gain)
    assert window is not None and window.shape == (N_STEPS, LINK_FEATURES)
    np.testing.assert_allclose(window, 0.0, atol=1e-5)
    changed = [_sample("a", 10 + i / RATE_HZ, profile * np.exp(0.1)) for i in range(300)]
    window = link_window(changed, reference.log_profile, 0.05, reference.log_gain)
    assert window is not None
    window = window[:, :N_SUBCARRIERS]
    # 2 s at 100 Hz in 40 bins: 5 samples a bin, 6 pairs; the noise of such a bin is 0.05 / sqrt(30).
    expected = np.arcsinh(0.1 / (0.05 / np.sqrt(30))) / ASINH_SCALE
    assert np.median(window) == pytest.approx(expected, rel=1e-3)
    assert np.all(window > 0)


def test_empty_bins_repeat_the_previous_value_and_an_all_invalid_window_is_none() -> None:
    profile = _profile(1)
    reference = _reference("a", profile).log_profile
    samples = [_sample("a", 10 + i / RATE_HZ, profile * np.exp(0.1 * (i >= 250))) for i in range(300)]
    # A 0.3 s hole in the middle of the window: those bins hold the value before it.
    samples = [s for s in samples if not 10.5 < s.t_s < 10.8]
    gain = np.zeros(1, np.float32)
    window = link_window(samples, reference, 0.05, gain)
    assert window is not None
    assert np.allclose(window[:-10], 0.0, atol=1e-5)
    invalid = [_sample("a", 10 + i / RATE_HZ, profile, valid=False) for i in range(300)]
    assert link_window(invalid, reference, 0.05, gain) is None


def test_build_window_orders_links_masks_missing_ones_and_normalizes_geometry() -> None:
    room = default_room()
    geometry = RoomGeometry.from_room_spec(room)
    assert len(geometry.links) == 6
    links = list(geometry.links)[:4]
    profile = _profile(1)
    references = {link: _reference(link, profile) for link in links[:3]}
    samples = {link: [_sample(link, 5 + i / RATE_HZ, profile) for i in range(250)] for link in links}
    inputs = build_window(samples, geometry, references)
    assert inputs is not None
    assert inputs.csi.shape == (N_STEPS, MAX_LINKS * LINK_FEATURES)
    assert inputs.geometry.shape == (N_GEOMETRY,)
    # The fourth link has no reference yet: three slots used, in bearing order.
    assert set(inputs.links) == set(links[:3])
    assert list(inputs.links) == geometry.canonical_order(links[:3])
    masks = inputs.geometry[: MAX_LINKS * LINK_GEOMETRY_FEATURES].reshape(MAX_LINKS, -1)[:, -1]
    assert masks.tolist() == [1, 1, 1, 0, 0, 0]
    first = geometry.links[inputs.links[0]]
    np.testing.assert_allclose(inputs.geometry[3:6], np.array(first.rx) / geometry.size, rtol=1e-6)
    assert inputs.room_size_m == (room.width_m, room.depth_m, room.height_m)
    assert build_window({}, geometry, references) is None


def test_atheros_pairs_are_averaged_into_one_block() -> None:
    geometry = RoomGeometry(4.0, 4.0, 2.5, {"r-a": LinkGeometry((0.05, 2, 2), (3.95, 2, 1), "atheros")})
    profile = _profile(6)
    reference = _reference("r-a", profile)
    scale = np.exp(np.linspace(-0.2, 0.2, 6))[:, None]  # mean of the pairs' log ratios is 0
    samples = {"r-a": [_sample("r-a", 1 + i / RATE_HZ, profile * scale) for i in range(250)]}
    inputs = build_window(samples, geometry, {"r-a": reference})
    assert inputs is not None
    np.testing.assert_allclose(inputs.csi[:, :N_SUBCARRIERS], 0.0, atol=1e-3)
    assert inputs.geometry[6] == 1.0  # the Atheros flag


def test_gain_feature_reads_the_broadband_change() -> None:
    profile = _profile(1)
    reference = _reference("a", profile)
    samples = [_sample("a", 10 + i / RATE_HZ, profile) for i in range(300)]
    lower = [
        PreparedSample(s.link, s.t_s, s.amplitude, s.phase, s.gain * np.float32(np.exp(-0.3)), -50.0, True)
        for s in samples
    ]
    window = link_window(lower, reference.log_profile, 0.05, reference.log_gain)
    assert window is not None
    np.testing.assert_allclose(window[:, N_SUBCARRIERS], -0.3 / GAIN_LOG_LIMIT, atol=1e-5)


def test_link_maps_peak_on_the_line_of_sight_and_follow_the_mask() -> None:
    geometry = RoomGeometry.from_room_spec(default_room())
    links = list(geometry.links)[:2]
    profile = _profile(1)
    references = {link: _reference(link, profile) for link in links}
    samples = {link: [_sample(link, 5 + i / RATE_HZ, profile) for i in range(250)] for link in links}
    inputs = build_window(samples, geometry, references)
    assert inputs is not None
    maps = link_maps(inputs.geometry)
    assert maps.shape == (MAX_LINKS, MAP_CELLS)
    assert maps[:2].max() > 0.5 and not maps[2:].any()
    assert link_maps(np.stack([inputs.geometry] * 3)).shape == (3, MAX_LINKS, MAP_CELLS)


def test_camera_sees_the_whole_room_and_centres_it() -> None:
    width, depth, height = 6.0, 4.5, 2.7
    corners = np.array(
        [[x, y, z] for x in (0, width) for y in (0, depth) for z in (0, 2.0)], dtype=np.float64
    )
    uv = project(corners, width, depth, height)
    assert np.all((uv >= 0) & (uv <= 1))
    centre = camera_for_room(width, depth, height).project([width / 2, depth / 2, 0.9])
    np.testing.assert_allclose(centre, [0.5, 0.5], atol=1e-9)
    behind = project([width / 2, -2.0, 1.0], width, depth, height)
    assert np.isnan(behind).all()
    # Left in the room is left in the image; higher is further up (smaller v).
    assert project([0.5, 2, 1], width, depth, height)[0] < 0.5
    assert project([3, 3, 1.8], width, depth, height)[1] < project([3, 3, 0.2], width, depth, height)[1]
