"""ESPectre ``.npz`` recordings (micro-espectre ``data/``): raw Espressif buffers of one node.

Keys: ``csi_data`` int8 (N, 2 * num_subcarriers), ``num_subcarriers``, ``label``, ``chip``,
``gain_locked``, ``duration_ms``, ``collected_at``, ``format_version``. The file has no per-packet
timestamps, so packets are spaced evenly over ``duration_ms``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from appliance.csi.formats.errors import CsiFormatError
from appliance.csi.formats.espressif import decode_pairs, lltf64_to_sorted
from appliance.csi.frame import CsiFrame

# Classic ESP32 chips report first_word_invalid for every LLTF packet; S2/S3/C-series do not.
_CHIPS_WITH_INVALID_FIRST_WORD = frozenset({"esp32"})


def read_espectre_npz(path: str | Path, *, link: str | None = None) -> list[CsiFrame]:
    """All packets of an ESPectre recording as frames (``host_ts`` 0: the file does not record it)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            buffers = np.asarray(data["csi_data"])
            n_sub = int(data["num_subcarriers"])
            chip = str(data["chip"])
            duration_ms = float(data["duration_ms"])
            label = str(data["label"]) if "label" in data.files else ""
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise CsiFormatError(f"{path}: not an ESPectre recording ({exc})") from exc
    if buffers.dtype != np.int8 or buffers.ndim != 2 or buffers.shape[1] != 2 * n_sub:
        raise CsiFormatError(
            f"{path}: csi_data must be int8 (N, {2 * n_sub}), got {buffers.dtype} {buffers.shape}"
        )
    if n_sub != 64:
        raise CsiFormatError(f"{path}: only 64-subcarrier LLTF recordings are known, got {n_sub}")
    invalid_first_word = chip in _CHIPS_WITH_INVALID_FIRST_WORD
    values, indices = lltf64_to_sorted(decode_pairs(buffers), first_word_invalid=invalid_first_word)
    n = len(values)
    step_us = duration_ms * 1000.0 / max(n, 1)
    node = link or path.stem
    meta: dict[str, int | float | str | bool] = {
        "chip": chip,
        "label": label,
        "first_word_invalid": invalid_first_word,
    }
    return [
        CsiFrame(
            link=node,
            device_ts_us=round(i * step_us),
            host_ts=0.0,
            seq=i,
            rssi_dbm=float("nan"),
            noise_dbm=float("nan"),
            channel_mhz=0,
            bandwidth_mhz=20,
            csi=values[i][np.newaxis, np.newaxis, :],
            subcarriers=indices,
            wire_format="espectre-npz",
            meta=meta,
        )
        for i in range(n)
    ]
