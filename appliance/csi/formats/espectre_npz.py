"""ESPectre ``.npz`` recordings (micro-espectre ``data/``): raw Espressif buffers of one node.

Keys: ``csi_data`` int8 (N, 2 * num_subcarriers), ``num_subcarriers``, ``label``, ``chip``,
``gain_locked``, ``duration_ms``, ``collected_at``, ``format_version``. The file has no per-packet
timestamps, so packets are spaced evenly over ``duration_ms``.

A ``.npz`` is a zip of ``.npy`` files, each a header that declares its array's dtype and shape, then the
data. Each member is read here rather than with ``np.load``, which allocates whatever a header declares
before reading a byte of data: a header's size is checked against ``MAX_ARRAY_BYTES`` and against the
bytes the member holds first. Whatever is wrong with a file (not a zip, an unsupported zip feature, a
damaged member, a field of the wrong shape or type, a duration that is not a number) is a
``CsiFormatError`` naming the file and the problem.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from pathlib import Path
from typing import IO

import numpy as np
import numpy.typing as npt

from appliance.csi.formats.errors import CsiFormatError
from appliance.csi.formats.espressif import decode_pairs, lltf64_to_sorted
from appliance.csi.frame import CsiFrame

# Classic ESP32 chips report first_word_invalid for every LLTF packet; S2/S3/C-series do not.
_CHIPS_WITH_INVALID_FIRST_WORD = frozenset({"esp32"})
# An hour at 500 packets/s of 128-byte buffers is 230 MB: recordings are far smaller; larger declarations
# are damage or malice.
MAX_ARRAY_BYTES = 256 * 2**20
_NPY_SUFFIX = ".npy"


def read_espectre_npz(path: str | Path, *, link: str | None = None) -> list[CsiFrame]:
    """All packets of an ESPectre recording as frames (``host_ts`` 0: the file does not record it)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = _Members(path, archive)
            buffers = members.array("csi_data")
            n_sub = int(members.scalar("num_subcarriers", "iu"))
            chip = str(members.scalar("chip", "U"))
            duration_ms = float(members.scalar("duration_ms", "iuf"))
            label = str(members.scalar("label", "U")) if members.has("label") else ""
    except CsiFormatError:
        raise
    # What zipfile and numpy's .npy header reader raise on damage; RuntimeError: an encrypted member.
    except (
        OSError,
        EOFError,
        zipfile.BadZipFile,
        zlib.error,
        NotImplementedError,
        RuntimeError,
        ValueError,
    ) as exc:
        raise CsiFormatError(
            f"{path}: not a readable ESPectre recording ({type(exc).__name__}: {exc})"
        ) from exc
    if buffers.dtype != np.int8 or buffers.ndim != 2 or buffers.shape[1] != 2 * n_sub:
        raise CsiFormatError(
            f"{path}: csi_data must be int8 (N, {2 * n_sub}), got {buffers.dtype} {buffers.shape}"
        )
    if n_sub != 64:
        raise CsiFormatError(f"{path}: only 64-subcarrier LLTF recordings are known, got {n_sub}")
    if not (math.isfinite(duration_ms) and duration_ms >= 0):
        raise CsiFormatError(
            f"{path}: duration_ms must be a finite number of milliseconds, got {duration_ms}"
        )
    invalid_first_word = chip in _CHIPS_WITH_INVALID_FIRST_WORD
    pairs = buffers.view(np.int8)
    values, indices = lltf64_to_sorted(decode_pairs(pairs), first_word_invalid=invalid_first_word)
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


class _Members:
    """The ``.npy`` members of one archive, read with their declared sizes checked first."""

    def __init__(self, path: Path, archive: zipfile.ZipFile) -> None:
        self._path = path
        self._archive = archive
        self._names = set(archive.namelist())

    def has(self, key: str) -> bool:
        return key + _NPY_SUFFIX in self._names

    def array(self, key: str) -> npt.NDArray[np.generic]:
        name = key + _NPY_SUFFIX
        if name not in self._names:
            raise CsiFormatError(f"{self._path}: no {key!r} array; not an ESPectre recording")
        info = self._archive.getinfo(name)
        with self._archive.open(info) as member:
            shape, fortran_order, dtype = _header(member)
            if dtype.hasobject:
                raise CsiFormatError(f"{self._path}: {key} holds Python objects, which are never read")
            nbytes = math.prod(shape) * dtype.itemsize
            if nbytes > min(MAX_ARRAY_BYTES, info.file_size):
                raise CsiFormatError(
                    f"{self._path}: {key} declares {shape} {dtype} ({nbytes} bytes), more than the "
                    f"{info.file_size} bytes it holds or the {MAX_ARRAY_BYTES} bytes a recording may have"
                )
            data = member.read(nbytes)
        if len(data) != nbytes:
            raise CsiFormatError(f"{self._path}: {key} is cut short ({len(data)} of {nbytes} bytes)")
        return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")

    def scalar(self, key: str, kinds: str) -> int | float | str:
        """A single value of one of the dtype ``kinds`` (``"iu"``: integers, ``"U"``: text, ...)."""
        value = self.array(key)
        if value.shape != () or value.dtype.kind not in kinds:
            raise CsiFormatError(
                f"{self._path}: {key} must be a single {_KIND_NAMES[kinds]}, got {value.dtype} {value.shape}"
            )
        single: int | float | str = value.item()
        return single


_KIND_NAMES = {"iu": "integer", "iuf": "number", "U": "text"}


def _header(member: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype[np.generic]]:
    major, _minor = np.lib.format.read_magic(member)
    if major == 1:
        return np.lib.format.read_array_header_1_0(member)
    if major in (2, 3):  # 3 differs from 2 in the header's text encoding only
        return np.lib.format.read_array_header_2_0(member)
    raise ValueError(f"unknown .npy format version {major}")
