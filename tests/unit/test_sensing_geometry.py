"""Geometry of bodies and links, the array steering, chain self-calibration and the link likelihood,
against values worked out by hand from the definitions (path lengths, plane waves, the fitted laws)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from appliance.csi.simulator import NodeSpec, RoomSpec
from appliance.pose.sensing.cues import N_CUE_FEATURES, RSSI_SCALE_DB
from appliance.pose.sensing.geometry import RoomGeometry, array_axis, state_features, steering
from appliance.pose.sensing.likelihood import LinkLikelihood, beam_power, chain_phases

WAVELENGTH = 0.1229
SPACING = WAVELENGTH / 2


def test_state_features_excess_distances_and_bistatic_doppler_by_hand() -> None:
    tx, rx = np.array([[0.0, 0.0]]), np.array([[4.0, 0.0]])
    # On the line of sight: no excess path.
    on_los = state_features(np.array([[2.0, 0.0]]), np.zeros((1, 2)), tx, rx, WAVELENGTH)[0, 0]
    assert on_los[0] == pytest.approx(0.0, abs=1e-9)
    # At (2, 1.5): both ends 2.5 m away (3-4-5 triangles), excess 5 - 4 = 1 m.
    p = np.array([[2.0, 1.5]])
    # Moving straight away from the link at 1 m/s: each path grows at 1.5 / 2.5 = 0.6 m/s, so the
    # bistatic path at 1.2 m/s, a Doppler of 1.2 / lambda.
    row = state_features(p, np.array([[0.0, 1.0]]), tx, rx, WAVELENGTH)[0, 0]
    assert row[0] == pytest.approx(1.0)
    assert row[3] == pytest.approx(math.log(2.5)) and row[4] == pytest.approx(math.log(2.5))
    assert row[5] == pytest.approx(math.log(4.0))
    assert row[6] * 10.0 == pytest.approx(1.2 / WAVELENGTH)
    assert row[7] == pytest.approx(1.0)
    # Moving along the link (parallel to it) at its midpoint's height: the two paths change oppositely.
    along = state_features(p, np.array([[1.0, 0.0]]), tx, rx, WAVELENGTH)[0, 0]
    assert along[6] == pytest.approx(0.0, abs=1e-9)


def test_steering_is_a_plane_wave_across_the_array() -> None:
    centre, axis = np.array([0.0, 0.0]), np.array([1.0, 0.0])
    broadside = steering(np.array([[0.0, 10.0]]), centre, axis, 3, SPACING, WAVELENGTH)[0]
    np.testing.assert_allclose(np.angle(broadside), 0.0, atol=1e-9)
    endfire = steering(np.array([[10.0, 0.0]]), centre, axis, 3, SPACING, WAVELENGTH)[0]
    # Half a wavelength apart, a wave along the array changes phase by pi per antenna.
    np.testing.assert_allclose(np.angle(endfire[1:] * np.conj(endfire[:-1])), [math.pi, math.pi], atol=1e-6)


def test_arrays_run_along_their_wall() -> None:
    assert array_axis(0.05, 2.0, 5.0, 4.0) == (0.0, 1.0)
    assert array_axis(2.5, 3.95, 5.0, 4.0) == (1.0, 0.0)
    room = RoomSpec(
        5.0,
        4.0,
        2.7,
        (
            NodeSpec("t", "atheros", "tx", (2.5, 0.05, 2.0), antennas=2),
            NodeSpec("r", "atheros", "rx", (4.95, 2.0, 1.2), antennas=3),
        ),
    )
    link = RoomGeometry.from_room_spec(room).links["t-r"]
    assert (link.rx_antennas, link.rx_axis, link.kind) == (3, (0.0, 1.0), "atheros")


def _array(angle_source: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chains at (4.95, 1.94..2.06) along y; a static channel from the transmitter plus the chains'
    offsets, and a moving echo from ``angle_source``."""
    centre, axis = np.array([4.95, 2.0]), np.array([0.0, 1.0])
    tx = np.array([0.05, 1.0])
    los = steering(tx[None], centre, axis, 3, SPACING, WAVELENGTH)[0]
    echo = steering(angle_source[None], centre, axis, 3, SPACING, WAVELENGTH)[0]
    chains = np.exp(1j * offsets)
    static = np.outer(chains * los, np.conj(chains * los))
    moving = np.outer(chains * echo, np.conj(chains * echo))
    return static, moving, los


def test_chain_phases_are_recovered_from_the_line_of_sight() -> None:
    offsets = np.array([0.0, 2.1, -1.3])
    static, _, los = _array(np.array([2.0, 3.0]), offsets)
    np.testing.assert_allclose(np.angle(np.exp(1j * (chain_phases(static, los) - offsets))), 0.0, atol=1e-9)


def test_calibrated_beam_points_at_the_echo_and_uncalibrated_does_not() -> None:
    source = np.array([2.0, 3.5])
    static, moving, los = _array(source, np.array([0.0, 2.1, -1.3]))
    centre, axis = np.array([4.95, 2.0]), np.array([0.0, 1.0])
    candidates = np.array([[2.0, 3.5], [2.0, 0.5], [3.0, 2.0]])
    vectors = steering(candidates, centre, axis, 3, SPACING, WAVELENGTH)
    power = beam_power(moving, static, vectors, los)
    assert power[0] == pytest.approx(1.0) and power[0] > power[1] and power[0] > power[2]
    # Without calibration (a static channel without offsets) the beam looks elsewhere.
    _, _, los_only = _array(source, np.zeros(3))
    uncalibrated = beam_power(moving, np.outer(los_only, np.conj(los_only)), vectors, los_only)
    assert uncalibrated[0] < 0.9


def test_shadow_term_prefers_states_on_the_shadowed_link() -> None:
    likelihood = LinkLikelihood()
    tx, rx = np.array([[0.0, 2.0], [2.5, 0.0]]), np.array([[5.0, 2.0], [2.5, 4.0]])
    cues = np.zeros((2, N_CUE_FEATURES), np.float32)
    cues[0, 0] = -likelihood.shadow_db / RSSI_SCALE_DB  # link 0 shadowed, link 1 clear
    states = np.array([[1.0, 2.0], [2.5, 1.0], [4.0, 3.5]])
    features = state_features(states, np.zeros_like(states), tx, rx, WAVELENGTH)
    shadow, _, _ = likelihood.terms(cues, features)
    assert int(np.argmax(shadow)) == 0


def test_shipped_shadow_term_reads_a_raised_link_as_a_body_near_it() -> None:
    # Near its line of sight a body changes a link's RSSI either way by several dB (it blocks one path
    # and adds or takes away others); only far from every link does the RSSI stay as in the empty room.
    # A model that expects only a drop reads a 3 dB rise as "nobody near this link".
    likelihood = LinkLikelihood.load()
    tx, rx = np.array([[0.0, 2.0], [2.5, 0.0]]), np.array([[5.0, 2.0], [2.5, 4.0]])
    cues = np.zeros((2, N_CUE_FEATURES), np.float32)
    cues[0, 0] = 3.0 / RSSI_SCALE_DB  # link 0 up by 3 dB, link 1 as empty
    on_link, far = np.array([[1.0, 2.0]]), np.array([[4.0, 3.5]])
    states = np.concatenate([on_link, far])
    shadow, _, _ = likelihood.terms(cues, state_features(states, np.zeros_like(states), tx, rx, WAVELENGTH))
    assert shadow[0] > shadow[1]


def test_shadow_spread_grows_towards_the_line_of_sight() -> None:
    likelihood = LinkLikelihood(shadow_sigma_db=0.2, shadow_near_db=2.0, shadow_spread_m=0.5)
    spread = likelihood.shadow_spread(np.array([0.0, 0.5, 1e9]))
    # sigma_r + sigma_n s / (excess + s), by hand.
    assert spread == pytest.approx([2.2, 1.2, 0.2])
