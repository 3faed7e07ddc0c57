"""How much a simulated window tells about *where* one person is, with no network involved.

The pose targets need joints within 0.2 torso (about 0.11 m). This measures the position information in
the cues a WiFi link offers, on single-person training-split episodes (the rooms, bodies and impairments
the pose model learns from), through the serving path's signal preparation:

- ``change``: each link's mean |H - H_empty| over the last 0.5 s (complex, sanitised phase; the scatter
  and shadow a person adds, still or moving);
- ``aligned change``: the same after fitting each packet to the empty room (complex gain and a residual
  phase slope by least squares), which removes what sanitisation and AGC leave: the best per-link
  estimate of what a person adds that a single-antenna link allows;
- ``fluctuation``: each link's mean |H_t - H_t-1| over the last 0.5 s (Doppler beating: moving limbs);
- ``gain``: each link's broadband log gain change against the empty room (shadowing; AGC steps add to it).

Each is compared, across the links of a window (minus the window's mean over links, so a person's size
or the SNR cancel), with two geometric predictors evaluated at the person's true pelvis: the bistatic
radar term ``-log(d_tx d_rx / d_link)`` (scatter strength) and ``exp(-excess path / 0.25 m)`` (nearness
to the line of sight, where shadowing happens). A linear fit on half the episodes gives each cue's R^2;
on the other half, a grid search over the floor for the position whose predicted cues best match the
observed ones gives a localization error, beside the trivial baseline "the room's centre".

``python bench/pose_information.py [--episodes N]`` (about 1 s per episode per core).
"""

from __future__ import annotations

import argparse
import multiprocessing
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from appliance.csi.prep import CANONICAL_SUBCARRIERS, LinkPreparer, PreparedSample, PrepSettings
from appliance.csi.simulator import RoomSimulator, Scenario
from appliance.csi.simulator.channel import SUBCARRIER_SPACING_HZ
from appliance.csi.simulator.room import SPEED_OF_LIGHT_M_S, wavelength_m
from appliance.pose.evaluation import STRIDE_S, Episode, episode, pelvis, prepare_frames
from appliance.pose.features import N_SUBCARRIERS, RoomGeometry

F64 = npt.NDArray[np.float64]
CUES = ("change", "aligned change", "fluctuation", "gain")
PREDICTORS = ("bistatic", "line_of_sight")
RECENT_S = 0.5
EMPTY_S = 4.0
EXCESS_SCALE_M = 0.25
GRID = 40
MARGIN_M = 0.3


def _complex(samples: Sequence[PreparedSample]) -> npt.NDArray[np.complex128]:
    return np.stack([s.amplitude * np.exp(1j * s.phase) for s in samples if s.valid])


def _run(
    ep: Episode, scenario: Scenario, seconds: float
) -> Iterator[tuple[RoomSimulator, dict[str, deque[PreparedSample]]]]:
    """Simulate ``seconds`` of the episode's room with ``scenario``, yielding each STRIDE_S with the
    links' last RECENT_S of prepared samples."""
    settings = PrepSettings()
    simulator = RoomSimulator(ep.room, scenario, seed=ep.seed, snr_db=ep.snr_db, impairments=ep.impairments)
    preparers: dict[str, LinkPreparer] = {}
    buffers: dict[str, deque[PreparedSample]] = {}
    recent = max(2, round(RECENT_S * settings.rate_hz))

    def sink(sample: PreparedSample) -> None:
        buffers.setdefault(sample.link, deque(maxlen=recent)).append(sample)

    while simulator.t_s < seconds - 1e-9:
        prepare_frames(simulator.advance(STRIDE_S).frames, preparers, sink, settings)
        yield simulator, buffers


def predictors(geometry: RoomGeometry, links: Sequence[str], points: F64) -> F64:
    """[predictor, link, point] geometric predictors for floor points (pelvis height 1 m is assumed)."""
    out = np.empty((len(PREDICTORS), len(links), points.shape[0]))
    for i, link in enumerate(links):
        spec = geometry.links[link]
        tx, rx = np.asarray(spec.tx), np.asarray(spec.rx)
        d_tx = np.maximum(np.linalg.norm(points - tx, axis=1), 0.3)
        d_rx = np.maximum(np.linalg.norm(points - rx, axis=1), 0.3)
        direct = float(np.linalg.norm(tx - rx))
        out[0, i] = -np.log(d_tx * d_rx / direct)
        out[1, i] = np.exp(-(d_tx + d_rx - direct) / EXCESS_SCALE_M)
    return out


@dataclass(frozen=True)
class Row:
    """One window: cues [cue, link], the predictors at the true pelvis [predictor, link], the truth."""

    cues: F64
    truth_predictors: F64
    pelvis_xy: F64
    activity: str
    geometry: RoomGeometry
    links: tuple[str, ...]


# Residual timing slopes (rad per tone) tried when aligning a packet to the empty room.
ALIGN_SLOPES = np.linspace(-0.15, 0.15, 61)
ALIGN_ROTATION = np.exp(-1j * np.outer(ALIGN_SLOPES, CANONICAL_SUBCARRIERS.astype(np.float64)))


def aligned_change(values: npt.NDArray[np.complex128], empty: npt.NDArray[np.complex128]) -> F64:
    """|h - a e^(j b k) empty| / |a| per packet, pair and tone, with the complex gain a and the slope b
    that fit the packet best (least squares; b on a grid)."""
    h = values.reshape(-1, values.shape[-1])
    ref = np.broadcast_to(empty, values.shape).reshape(-1, values.shape[-1])
    rotated = h[:, None, :] * ALIGN_ROTATION[None]
    gain = (rotated * ref[:, None].conj()).sum(axis=-1) / (np.abs(ref) ** 2).sum(axis=-1)[:, None]
    residual = rotated - gain[..., None] * ref[:, None]
    best = np.argmin((np.abs(residual) ** 2).sum(axis=-1), axis=1)
    rows = np.arange(best.size)
    change: F64 = (np.abs(residual[rows, best]) / np.abs(gain[rows, best])[:, None]).reshape(values.shape)
    return change


def _log_gain(samples: Sequence[PreparedSample]) -> float:
    return float(np.mean([np.log(s.gain).mean() for s in samples if s.valid]))


def episode_rows(index: int) -> list[Row]:
    """Every window of training episode ``index`` if it has one person (else none)."""
    ep = episode("train", index, 30.0)
    if len(ep.scenario.people) != 1:
        return []
    geometry = RoomGeometry.from_room_spec(ep.room)
    buffers: dict[str, deque[PreparedSample]] = {}
    for _, latest in _run(ep, Scenario(ep.room), EMPTY_S):
        buffers = latest
    # The empty room's last RECENT_S: enough samples for a mean at the simulator's noise.
    empty = {link: _complex(buffer).mean(axis=0) for link, buffer in buffers.items()}
    empty_gain = {link: _log_gain(buffer) for link, buffer in buffers.items()}
    rows = []
    for simulator, buffers in _run(ep, ep.scenario, ep.duration_s):
        if simulator.t_s < 3.0:
            continue
        truth = simulator.truth_at(simulator.t_s - 0.05)
        if not truth.persons:
            continue
        person = truth.persons[0]
        centre = pelvis(np.asarray(person.keypoints, np.float64).reshape(17, 3))
        links = sorted(link for link in buffers if link in empty)
        cues = np.empty((len(CUES), len(links)))
        for i, link in enumerate(links):
            values = _complex(buffers[link])
            cues[0, i] = np.log(np.abs(values - empty[link]).mean() + 1e-6)
            cues[1, i] = np.log(aligned_change(values, empty[link]).mean() + 1e-6)
            cues[2, i] = np.log(np.abs(np.diff(values, axis=0)).mean() + 1e-6)
            cues[3, i] = _log_gain(buffers[link]) - empty_gain[link]
        truth_predictors = predictors(geometry, links, np.array([[centre[0], centre[1], 1.0]]))[..., 0]
        rows.append(Row(cues, truth_predictors, centre[:2], person.activity, geometry, tuple(links)))
    return rows


def _demean(x: F64) -> F64:
    centred: F64 = x - x.mean(axis=-1, keepdims=True)
    return centred


def _floor_points(geometry: RoomGeometry) -> F64:
    xs = np.linspace(MARGIN_M, geometry.width_m - MARGIN_M, GRID)
    ys = np.linspace(MARGIN_M, geometry.depth_m - MARGIN_M, GRID)
    gx, gy = np.meshgrid(xs, ys)
    points: F64 = np.column_stack([gx.ravel(), gy.ravel(), np.ones(gx.size)])
    return points


def localization_errors(rows: Sequence[Row], slopes: F64, noise: F64, cues: Sequence[int]) -> F64:
    """Per window, the floor distance from the true pelvis to the grid point whose predicted cues (the
    fitted linear model, links minus their mean) best match the observed ones; several cues are combined
    by weighting each with its fit residual's variance (``noise``)."""
    errors = np.empty(len(rows))
    for n, row in enumerate(rows):
        points = _floor_points(row.geometry)
        geometric = predictors(row.geometry, row.links, points)  # [predictor, link, point]
        cost = np.zeros(points.shape[0])
        for c in cues:
            expected = _demean(np.tensordot(slopes[c], geometric, axes=(0, 0)).T).T  # [link, point]
            cost += ((_demean(row.cues[c])[:, None] - expected) ** 2).sum(axis=0) / noise[c]
        errors[n] = np.linalg.norm(points[np.argmin(cost), :2] - row.pelvis_xy)
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--episodes", type=int, default=120, help="training-split episodes to scan")
    args = parser.parse_args()
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        per_episode = pool.map(episode_rows, range(args.episodes), chunksize=1)
    used = [rows for rows in per_episode if rows]
    fit_rows = [r for rows in used[::2] for r in rows]
    test_rows = [r for rows in used[1::2] for r in rows]
    print(f"{len(used)} single-person episodes, {len(fit_rows)} windows to fit, {len(test_rows)} to test")
    bandwidth = N_SUBCARRIERS * SUBCARRIER_SPACING_HZ
    print(
        f"physics: {N_SUBCARRIERS} tones x {SUBCARRIER_SPACING_HZ / 1e3:g} kHz = {bandwidth / 1e6:.2f} MHz: "
        f"delay resolution c/B = {SPEED_OF_LIGHT_M_S / bandwidth:.1f} m of path; the carrier phase repeats "
        f"every {wavelength_m(2437) * 100:.1f} cm of path"
    )
    torso = 0.2 * 0.55
    print(f"PCK@0.2 needs joints within about {torso:.2f} m (0.2 x a 0.55 m shoulder-hip diagonal)")
    x_fit = np.concatenate([_demean(r.truth_predictors).T for r in fit_rows])  # [windows * links, predictors]
    design = np.column_stack([x_fit, np.ones(len(x_fit))])
    print("\ncue vs geometry at the true pelvis (a window's links minus their mean; fit half):")
    slopes = np.empty((len(CUES), len(PREDICTORS)))
    noise = np.empty(len(CUES))
    for c, cue in enumerate(CUES):
        y = np.concatenate([_demean(r.cues[c]) for r in fit_rows])
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        noise[c] = np.var(y - design @ coef)
        slopes[c] = coef[: len(PREDICTORS)]
        corr = [float(np.corrcoef(x_fit[:, p], y)[0, 1]) for p in range(len(PREDICTORS))]
        print(
            f"  {cue:<15} R^2 {1 - noise[c] / np.var(y):5.3f}   "
            f"corr with bistatic {corr[0]:+.3f}, with line of sight {corr[1]:+.3f}"
        )
    print("\nlocalization on the test half (grid search over the floor), pelvis error on the floor:")
    room_centres = np.array([[r.geometry.width_m / 2, r.geometry.depth_m / 2] for r in test_rows])
    results = {
        "room centre (trivial)": np.linalg.norm(room_centres - [r.pelvis_xy for r in test_rows], axis=1)
    }
    for c, cue in enumerate(CUES):
        results[cue] = localization_errors(test_rows, slopes, noise, [c])
    results["all cues"] = localization_errors(test_rows, slopes, noise, range(len(CUES)))
    activities = np.array([r.activity for r in test_rows])
    for name, errors in results.items():
        by_activity = ", ".join(
            f"{a} {np.median(errors[activities == a]):.2f}"
            for a in ("walking", "standing", "sitting", "lying")
            if (activities == a).any()
        )
        within = float(np.mean(errors <= torso))
        print(f"  {name:<22} {np.median(errors):.2f} m ({by_activity}); within {torso:.2f} m {within:.3f}")


if __name__ == "__main__":
    main()
