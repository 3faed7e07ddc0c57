"""Hampel outlier filter over time, per (antenna pair, subcarrier) amplitude.

A value further than ``n_sigmas`` robust standard deviations (1.4826 x the median absolute deviation) from
the median of its window of ``2 * half_window + 1`` packets is replaced by that median. The window is
centred; at the ends of a stream the first or last full window is used, so the streaming filter and the
batch one give the same values. Windows over packets, not resampled time: a spike replaced before
resampling cannot smear into two output samples.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
Payload = TypeVar("Payload")

# MAD of a normal distribution times this is its standard deviation.
MAD_TO_SIGMA = 1.4826
# Floor of the robust sigma, in gain-normalized amplitude (1 = the packet's RMS): a window of identical
# quantized values has MAD 0 and would otherwise flag every one-count step (an ESP32 count is ~2.5 % of a
# typical 40-count amplitude).
MIN_SIGMA = 0.01


def _median_sigma(window: F32) -> tuple[F32, F32]:
    """Median and robust sigma along axis 0 (partition for odd windows: cheaper than np.median)."""
    n = window.shape[0]
    if n % 2:
        middle = n // 2
        median = np.partition(window, middle, axis=0)[middle]
        mad = np.partition(np.abs(window - median), middle, axis=0)[middle]
    else:
        median = np.median(window, axis=0)
        mad = np.median(np.abs(window - median), axis=0)
    return median.astype(np.float32), np.maximum(MAD_TO_SIGMA * mad, MIN_SIGMA).astype(np.float32)


def _replace(x: F32, median: F32, sigma: F32, n_sigmas: float) -> tuple[F32, npt.NDArray[np.bool_]]:
    outlier = np.abs(x - median) > n_sigmas * sigma
    return np.where(outlier, median, x).astype(np.float32), outlier


def hampel_filter(x: F32, half_window: int, n_sigmas: float) -> tuple[F32, npt.NDArray[np.bool_]]:
    """Filter ``x [time, ...]`` along axis 0: (filtered, outlier mask), vectorized over every axis."""
    if half_window < 1:
        raise ValueError(f"half_window must be >= 1, got {half_window}")
    x = np.asarray(x, dtype=np.float32)
    width = 2 * half_window + 1
    n = x.shape[0]
    if n < width:
        median, sigma = _median_sigma(x)
        return _replace(x, median, sigma, n_sigmas)
    windows = np.moveaxis(np.lib.stride_tricks.sliding_window_view(x, width, axis=0), -1, 0)
    median, sigma = _median_sigma(windows)
    which = np.clip(np.arange(n) - half_window, 0, n - width)
    return _replace(x, median[which], sigma[which], n_sigmas)


class StreamingHampel(Generic[Payload]):
    """The same filter on a stream, ``half_window`` packets behind: push one, get the ones now settled.

    Each amplitude travels with a payload (time, phase, ...) that comes out beside its filtered value.
    The window is a ring buffer (median and MAD do not depend on order), so a push copies one packet.
    """

    def __init__(self, half_window: int, n_sigmas: float) -> None:
        if half_window < 1:
            raise ValueError(f"half_window must be >= 1, got {half_window}")
        self._half = half_window
        self._width = 2 * half_window + 1
        self._n_sigmas = n_sigmas
        self._ring: F32 | None = None
        self._count = 0
        self._pending: deque[tuple[F32, Payload]] = deque()
        self.outliers = 0

    def push(self, amplitude: F32, payload: Payload) -> list[tuple[F32, Payload]]:
        if self._ring is None:
            self._ring = np.empty((self._width, *amplitude.shape), dtype=np.float32)
        self._ring[self._count % self._width] = amplitude
        self._count += 1
        self._pending.append((amplitude, payload))
        if self._count < self._width:
            return []
        settled = self._half + 1 if self._count == self._width else 1
        return self._emit(self._ring, settled)

    def flush(self) -> list[tuple[F32, Payload]]:
        """Everything still held, filtered with the last window; the next push starts a new stream.

        For the end of a stream, and for a break in it (reboot, new antenna layout) that the window must
        not span.
        """
        if not self._pending or self._ring is None:
            return []
        out = self._emit(self._ring[: min(self._count, self._width)], len(self._pending))
        self._ring, self._count = None, 0
        return out

    def _emit(self, window: F32, n: int) -> list[tuple[F32, Payload]]:
        median, sigma = _median_sigma(window)
        out = []
        for _ in range(n):
            amplitude, payload = self._pending.popleft()
            filtered, outlier = _replace(amplitude, median, sigma, self._n_sigmas)
            self.outliers += int(np.count_nonzero(outlier))
            out.append((filtered, payload))
        return out
