"""One door to every file format: detect it, iterate its frames (errors included), dump a frame as JSON.

``iter_file`` yields ``CsiFormatError``s instead of raising them, so a dump can report a bad record and go
on. Formats that live elsewhere (the appliance's own ``recording``) plug in with ``register_reader``.

File forms: ``esp32-csv`` is a serial log (``CSI_DATA`` lines among log lines); ``esp32-udp`` is captured
datagrams one after another, each after its length as u16 little-endian; ``atheros`` and ``intel5300`` are
the tools' own log files; ``espectre-npz`` is a Micro-ESPectre recording.
"""

from __future__ import annotations

import math
import struct
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from appliance.csi.formats.atheros import RECORD_HEAD_BYTES, iter_atheros_file
from appliance.csi.formats.atheros import plausible_header as atheros_plausible
from appliance.csi.formats.errors import CsiFormatError
from appliance.csi.formats.esp_csv import LINE_TAG, iter_esp_csv_file
from appliance.csi.formats.esp_udp import ADR018_MAGIC, ESPECTRE_MAGIC, iter_datagram_file
from appliance.csi.formats.espectre_npz import read_espectre_npz
from appliance.csi.formats.intel5300 import CODE_BFEE, iter_intel5300_file
from appliance.csi.frame import CsiFrame

AUTO = "auto"
FrameItems = Iterator[CsiFrame | CsiFormatError]
FileReader = Callable[[Path], FrameItems]
Sniffer = Callable[[Path, bytes], bool]
_SNIFF_BYTES = 4096


@dataclass(frozen=True, slots=True)
class _Format:
    reader: FileReader
    sniff: Sniffer


def _iter_npz(path: Path) -> FrameItems:
    try:
        yield from read_espectre_npz(path)
    except CsiFormatError as exc:
        yield exc


def _sniff_npz(path: Path, head: bytes) -> bool:
    return path.suffix == ".npz" or (head.startswith(b"PK") and zipfile.is_zipfile(path))


def _sniff_csv(_path: Path, head: bytes) -> bool:
    return LINE_TAG.encode() in head


def _sniff_udp(_path: Path, head: bytes) -> bool:
    if len(head) < 6:
        return False
    magic32: int = struct.unpack_from("<I", head, 2)[0]
    magic16: int = struct.unpack_from("<H", head, 2)[0]
    return magic32 == ADR018_MAGIC or magic16 == ESPECTRE_MAGIC


def _sniff_atheros(_path: Path, head: bytes) -> bool:
    return len(head) >= RECORD_HEAD_BYTES and atheros_plausible(head)


def _sniff_intel(_path: Path, head: bytes) -> bool:
    return len(head) >= 3 and head[2] == CODE_BFEE and struct.unpack_from(">H", head)[0] > 1


# Order matters: the text and magic-number checks are exact, the binary-log checks are plausibility.
_FORMATS: dict[str, _Format] = {
    "espectre-npz": _Format(_iter_npz, _sniff_npz),
    "esp32-csv": _Format(iter_esp_csv_file, _sniff_csv),
    "esp32-udp": _Format(iter_datagram_file, _sniff_udp),
    "atheros": _Format(iter_atheros_file, _sniff_atheros),
    "intel5300": _Format(iter_intel5300_file, _sniff_intel),
}


def register_reader(name: str, reader: FileReader, sniff: Sniffer) -> None:
    """Add a file format (e.g. ``recording``); ``sniff(path, first_bytes)`` says whether a file is one."""
    _FORMATS[name] = _Format(reader, sniff)


def format_names() -> list[str]:
    return [AUTO, *_FORMATS]


def detect_format(path: str | Path) -> str:
    """The format of a file, from its first bytes; ``CsiFormatError`` when none fits."""
    path = Path(path)
    with path.open("rb") as f:
        head = f.read(_SNIFF_BYTES)
    for name, fmt in _FORMATS.items():
        if fmt.sniff(path, head):
            return name
    raise CsiFormatError(f"{path}: not a known CSI format (tried {', '.join(_FORMATS)})", offset=0)


def iter_file(path: str | Path, fmt: str = AUTO) -> FrameItems:
    """Frames and errors of a file, in file order. A missing file raises ``FileNotFoundError``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if fmt == AUTO:
        fmt = detect_format(path)
    if fmt not in _FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(format_names())}")
    return _FORMATS[fmt].reader(path)


def _number(value: float) -> float | None:
    return None if math.isnan(value) else value


def frame_to_dump(frame: CsiFrame) -> dict[str, object]:
    """The ``csi dump`` JSON object of a frame; ``re``/``im``: raw values flattened [rx][tx][subcarrier]."""
    csi = frame.csi.reshape(-1)
    return {
        "format": frame.wire_format,
        "node": frame.link,
        "seq": frame.seq,
        "t_us": frame.device_ts_us,
        "rssi": _number(frame.rssi_dbm),
        "noise": _number(frame.noise_dbm),
        "channel_mhz": frame.channel_mhz,
        "bandwidth_mhz": frame.bandwidth_mhz,
        "n_rx": frame.n_rx,
        "n_tx": frame.n_tx,
        "subcarriers": frame.subcarriers.tolist(),
        "re": [int(v) for v in csi.real.tolist()],
        "im": [int(v) for v in csi.imag.tolist()],
    }
