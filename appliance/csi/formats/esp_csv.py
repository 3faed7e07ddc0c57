"""Espressif ``CSI_DATA`` serial lines, as printed by esp-csi's examples.

Three layouts, told apart by their column count (the quoted data list is the last column):

- classic chips (ESP32, S2, S3, C3; ``get-started`` examples), 25 columns: ``type,seq,mac,rssi,rate,
  sig_mode,mcs,bandwidth,smoothing,not_sounding,aggregation,stbc,fec_coding,sgi,noise_floor,ampdu_cnt,
  channel,secondary_channel,local_timestamp,ant,sig_len,rx_state,len,first_word,data``;
- ESP32-C5/C6 (``csi_data_read_parse_c5/c6.py``), 15 columns: ``type,id,mac,rssi,rate,noise_floor,
  fft_gain,agc_gain,channel,local_timestamp,sig_len,rx_state,len,first_word,data``;
- esp-radar ``console_test``, 30 columns: ``type,sequence,timestamp,taget_seq,taget,mac,rssi,rate,
  sig_mode,mcs,bandwidth,smoothing,not_sounding,aggregation,stbc,fec_coding,sgi,noise_floor,ampdu_cnt,
  channel,secondary_channel,local_timestamp,ant,sig_len,rx_state,agc_gain,fft_gain,len,first_word,data``
  (its data is esp-radar's filtered valid subcarriers, decimal or base64).

Serial output interleaves log lines; lines without ``CSI_DATA`` are skipped silently, a ``CSI_DATA`` line
that does not parse is an error with its line number and the stream goes on.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from appliance.csi.formats.errors import CsiFormatError
from appliance.csi.formats.espressif import (
    BufferLayout,
    c5c6_layout,
    channel_to_mhz,
    classic_layout,
    decode_buffer,
    radar_filtered_layout,
)
from appliance.csi.frame import CsiFrame

LINE_TAG = "CSI_DATA"

CLASSIC_COLUMNS = (
    "type", "seq", "mac", "rssi", "rate", "sig_mode", "mcs", "bandwidth", "smoothing", "not_sounding",
    "aggregation", "stbc", "fec_coding", "sgi", "noise_floor", "ampdu_cnt", "channel", "secondary_channel",
    "local_timestamp", "ant", "sig_len", "rx_state", "len", "first_word", "data",
)  # fmt: skip
C5C6_COLUMNS = (
    "type", "id", "mac", "rssi", "rate", "noise_floor", "fft_gain", "agc_gain", "channel",
    "local_timestamp", "sig_len", "rx_state", "len", "first_word", "data",
)  # fmt: skip
RADAR_COLUMNS = (
    "type", "sequence", "timestamp", "taget_seq", "taget", "mac", "rssi", "rate", "sig_mode", "mcs",
    "bandwidth", "smoothing", "not_sounding", "aggregation", "stbc", "fec_coding", "sgi", "noise_floor",
    "ampdu_cnt", "channel", "secondary_channel", "local_timestamp", "ant", "sig_len", "rx_state",
    "agc_gain", "fft_gain", "len", "first_word", "data",
)  # fmt: skip
_LAYOUTS = {len(c) - 1: c for c in (CLASSIC_COLUMNS, C5C6_COLUMNS, RADAR_COLUMNS)}
_TEXT_COLUMNS = frozenset({"type", "mac", "taget", "data"})
_META_COLUMNS = (
    "rate", "sig_mode", "mcs", "bandwidth", "stbc", "secondary_channel", "agc_gain", "fft_gain", "ant",
    "sig_len", "rx_state",
)  # fmt: skip
_SEQ_COLUMNS = ("seq", "id", "sequence")


def _split(line: str, line_no: int | None) -> tuple[list[str], str]:
    """Header columns (without ``data``) and the raw data column."""
    start = line.find(LINE_TAG)
    body = line[start:].rstrip()
    quote = body.find('"')
    if quote >= 0:
        head, data = body[:quote], body[quote:].strip('"')
    else:
        head, _, data = body.rpartition(",")
        head += ","
    if not head.endswith(","):
        raise CsiFormatError("the data column must follow a comma", line=line_no)
    return head[:-1].split(","), data


def _data_bytes(data: str, expected: int, line_no: int | None) -> npt.NDArray[np.int8]:
    if data.startswith("["):
        if not data.endswith("]"):
            raise CsiFormatError("data list is not closed with ']' (line cut short?)", line=line_no)
        text = data[1:-1]
        try:
            values = np.array(text.split(","), dtype=np.int64) if text.strip() else np.zeros(0, np.int64)
        except (ValueError, OverflowError) as exc:
            raise CsiFormatError(f"data list holds a non-integer ({exc})", line=line_no) from exc
        if values.size and (values.min() < -128 or values.max() > 127):
            raise CsiFormatError("data values must be int8 (-128..127)", line=line_no)
        out = values.astype(np.int8)
    else:
        try:
            out = np.frombuffer(base64.b64decode(data, validate=True), dtype=np.int8)
        except (binascii.Error, ValueError) as exc:
            raise CsiFormatError(f"data is neither a [..] list nor base64 ({exc})", line=line_no) from exc
    if out.size != expected:
        raise CsiFormatError(f"len says {expected} bytes but the data holds {out.size}", line=line_no)
    return out


def _int(fields: dict[str, str], name: str, line_no: int | None) -> int:
    try:
        return int(fields[name])
    except ValueError as exc:  # also a too-long digit string
        raise CsiFormatError(f"column {name!r} is not an integer: {fields[name]!r}", line=line_no) from exc


def parse_csi_line(line: str, *, link: str = "esp32", line_no: int | None = None) -> CsiFrame:
    """One ``CSI_DATA`` line -> frame; raises ``CsiFormatError`` (with ``line_no``) when it does not parse."""
    if LINE_TAG not in line:
        raise CsiFormatError(f"not a {LINE_TAG} line", line=line_no)
    head, data = _split(line, line_no)
    columns = _LAYOUTS.get(len(head))
    if columns is None:
        raise CsiFormatError(
            f"{len(head) + 1} columns; known layouts have 25 (classic), 15 (C5/C6) or 30 (esp-radar)",
            line=line_no,
        )
    fields = dict(zip(columns, head, strict=False))
    ints = {name: _int(fields, name, line_no) for name in columns[:-1] if name not in _TEXT_COLUMNS}
    length = ints["len"]
    buffer = _data_bytes(data, length, line_no)
    first_word_invalid = bool(ints["first_word"])
    layout: BufferLayout
    try:  # the layout and decoding errors know nothing of lines: they get this one's number here
        if columns is C5C6_COLUMNS:
            layout, chip = c5c6_layout(length), "c5c6"
        elif columns is RADAR_COLUMNS:
            layout, chip = radar_filtered_layout(length=length, cwb=ints["bandwidth"]), "esp-radar"
        else:
            layout = classic_layout(
                secondary=ints["secondary_channel"],
                sig_mode=ints["sig_mode"],
                cwb=ints["bandwidth"],
                stbc=ints["stbc"],
                length=length,
            )
            chip = "classic"
        values, indices = decode_buffer(buffer, layout, first_word_invalid=first_word_invalid)
    except CsiFormatError as exc:
        raise CsiFormatError(str(exc), line=line_no) from exc
    meta: dict[str, int | float | str | bool] = {
        "chip": chip,
        "layout": layout.name,
        "first_word_invalid": first_word_invalid,
        "mac": fields["mac"],
    }
    meta.update({k: ints[k] for k in _META_COLUMNS if k in ints})
    if line_no is not None:
        meta["line"] = line_no
    seq = next(ints[k] for k in _SEQ_COLUMNS if k in ints)
    return CsiFrame(
        link=link,
        device_ts_us=ints["local_timestamp"],
        host_ts=0.0,
        seq=seq,
        rssi_dbm=float(ints["rssi"]),
        noise_dbm=float(ints["noise_floor"]),
        channel_mhz=channel_to_mhz(ints["channel"]),
        bandwidth_mhz=layout.chosen[1].bandwidth_mhz,
        csi=values[np.newaxis, np.newaxis, :],
        subcarriers=indices,
        wire_format="esp32-csv",
        meta=meta,
    )


def iter_esp_csv(lines: Iterable[str], *, link: str = "esp32") -> Iterator[CsiFrame | CsiFormatError]:
    """Frames and per-line errors of a serial log, in order; non-``CSI_DATA`` lines are skipped."""
    for line_no, line in enumerate(lines, start=1):
        if LINE_TAG not in line:
            continue
        try:
            yield parse_csi_line(line, link=link, line_no=line_no)
        except CsiFormatError as exc:
            yield exc


def iter_esp_csv_file(path: str | Path, *, link: str | None = None) -> Iterator[CsiFrame | CsiFormatError]:
    """``iter_esp_csv`` over a file; undecodable bytes become replacement characters, not crashes."""
    path = Path(path)
    with path.open("r", encoding="utf-8", errors="replace", newline="") as f:
        yield from iter_esp_csv(f, link=link or path.stem)
