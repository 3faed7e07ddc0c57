"""Cost per frame of ``LinkPreparer.push`` for an ESP32 link (1x1, 62 columns) and an Atheros link (3x2,
56 tones), against a naive per-pair, per-subcarrier Python implementation of the same steps in the same run.

Frames come from the real captures in ``../shared/captures`` (``$INVISPOSE_CAPTURES`` overrides), else
synthetic frames of the same shapes, repeated to ``--frames`` with advancing timestamps. Each figure is the
median of ``--runs`` runs on one core; ``budget`` is the share of one core that 6 links x 100 packets/s
would take (the Pi-class target; expect a Pi 4 to be several times slower than a desktop core).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from collections import deque
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from captures import CAPTURES

from appliance.csi.formats.atheros import read_atheros_file
from appliance.csi.formats.espectre_npz import read_espectre_npz
from appliance.csi.frame import CsiFrame
from appliance.csi.prep import CANONICAL_SUBCARRIERS, LinkPreparer, PrepSettings

ESP32_CAPTURE = CAPTURES / "esp32" / "movement_esp32_64sc_20260214_183141.npz"
ATHEROS_CAPTURE = CAPTURES / "atheros" / "ath_csi_1.dat"
TARGET_PACKETS_PER_S = 6 * 100
MAD_TO_SIGMA = 1.4826
ESP32_COLUMNS = np.concatenate([np.arange(-32, 0), np.arange(2, 32)]).astype(np.int16)
ATHEROS_TONES = np.concatenate([np.arange(-28, 0), np.arange(1, 29)]).astype(np.int16)


def _synthetic(shape: tuple[int, int], subcarriers: npt.NDArray[np.int16], period_us: int) -> list[CsiFrame]:
    rng = np.random.default_rng(0)
    n = 400
    csi = rng.normal(30, 5, (n, *shape, subcarriers.size)) * np.exp(1j * rng.uniform(0, 6.3, (n, 1, 1, 1)))
    return [
        CsiFrame(
            "synthetic",
            i * period_us,
            0.0,
            i,
            -50.0,
            -95.0,
            2437,
            20,
            c.astype(np.complex64),
            subcarriers,
            "simulated",
        )
        for i, c in enumerate(csi)
    ]


def _repeat(frames: list[CsiFrame], n: int) -> list[CsiFrame]:
    """``frames`` cycled to ``n``, timestamps and sequence numbers continuing past each repetition."""
    span = frames[-1].device_ts_us - frames[0].device_ts_us + 1
    step = span + round(span / len(frames))
    return [
        dataclasses.replace(
            frames[i % len(frames)],
            device_ts_us=frames[i % len(frames)].device_ts_us + (i // len(frames)) * step,
            seq=i,
        )
        for i in range(n)
    ]


class NaivePreparer:
    """The same steps written the obvious way: loops over pairs and subcarriers, np.median per series."""

    def __init__(self, half_window: int, n_sigmas: float) -> None:
        self._window: deque[npt.NDArray[np.float64]] = deque(maxlen=2 * half_window + 1)
        self._n_sigmas = n_sigmas
        self._grid = CANONICAL_SUBCARRIERS.astype(np.float64)

    def push(self, frame: CsiFrame) -> npt.NDArray[np.float64]:
        pairs = frame.csi.reshape(-1, frame.n_subcarriers)
        k = frame.subcarriers
        amplitude = np.empty((pairs.shape[0], self._grid.size))
        phase = np.empty_like(amplitude)
        for p in range(pairs.shape[0]):
            keep = (np.abs(k) <= 28) & (k != 0) & (pairs[p] != 0)
            amplitude[p] = np.interp(self._grid, k[keep], np.abs(pairs[p, keep]))
            raw = np.interp(self._grid, k[keep], np.unwrap(np.angle(pairs[p, keep])))
            slope, offset = np.polyfit(self._grid, raw, 1)
            phase[p] = raw - slope * self._grid - offset
            amplitude[p] /= np.sqrt(np.mean(amplitude[p] ** 2))
        self._window.append(amplitude)
        window = np.stack(self._window)
        out = amplitude.copy()
        for p in range(amplitude.shape[0]):
            for s in range(amplitude.shape[1]):
                series = window[:, p, s]
                median = np.median(series)
                sigma = MAD_TO_SIGMA * np.median(np.abs(series - median))
                if abs(amplitude[p, s] - median) > self._n_sigmas * sigma:
                    out[p, s] = median
        return out


def _median_per_frame_s(run: Callable[[], object], n_frames: int, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) / n_frames)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=3000, help="frames per run and link")
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median, at least 5)")
    parser.add_argument("--naive-frames", type=int, default=300, help="frames per run for the naive baseline")
    args = parser.parse_args(argv)
    runs = max(5, args.runs)
    settings = PrepSettings()
    links = {
        "esp32 1x1x62": read_espectre_npz(ESP32_CAPTURE)
        if ESP32_CAPTURE.is_file()
        else _synthetic((1, 1), ESP32_COLUMNS, 13_700),
        "atheros 3x2x56": read_atheros_file(ATHEROS_CAPTURE)
        if ATHEROS_CAPTURE.is_file()
        else _synthetic((3, 2), ATHEROS_TONES, 2_170),
    }
    print(f"{'link':<16}{'impl':<8}{'us/frame':>10}{'frames/s/core':>15}{'budget 6x100/s':>16}")
    for name, source in links.items():
        frames = _repeat(source, args.frames)
        naive_frames = frames[: args.naive_frames]

        def ours(frames: list[CsiFrame] = frames) -> None:
            preparer = LinkPreparer(settings)
            for f in frames:
                preparer.push(f)
            preparer.flush()

        def naive(frames: list[CsiFrame] = naive_frames) -> None:
            preparer = NaivePreparer(settings.hampel_half_window, settings.hampel_sigmas)
            for f in frames:
                preparer.push(f)

        for impl, run, n in (("ours", ours, len(frames)), ("naive", naive, len(naive_frames))):
            per_frame = _median_per_frame_s(run, n, runs)
            budget = per_frame * TARGET_PACKETS_PER_S
            print(f"{name:<16}{impl:<8}{per_frame * 1e6:>10.1f}{1 / per_frame:>15,.0f}{budget:>15.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
