"""The appliance's own recording format: CSI frames, simulator ground truth and metadata in one file.

Why a format of our own: a recording must replay what *any* source produced (five wire formats and the
simulator) together with the simulator's ground truth, stay compact (CSI is binary, not JSON), accept
appends (``invispose record`` twice into one file), and survive a crash or power loss mid-write.

Byte layout (all integers little-endian; ``docs/recording-format.md`` says the same with examples).
A file is a sequence of records and nothing else; there is no file header apart from the first record.
Each record::

    offset  size  field
    0       4     sync  b"\\x89IPR"  (0x89 0x49 0x50 0x52)
    4       4     u32   body length N (at most MAX_BODY_BYTES)
    8       1     u8    record type: 1 header, 2 frame, 3 truth (others are skipped, for later versions)
    9       N     body
    9+N     4     u32   CRC-32 (zlib/IEEE) of bytes 4 .. 9+N, i.e. of length, type and body

Header body: UTF-8 JSON object ``{"format_version": 1, "created": <unix s>, "software": str,
"sources": [{"name": str, "kind": str, ...}], "room": object | null}``. Every writing session starts with
one, so a file appended to holds one header per session.

Frame body (one ``CsiFrame``)::

    offset  size  field
    0       8     f64  host_ts (unix s, when the appliance received it)
    8       8     i64  device_ts_us
    16      8     i64  seq
    24      4     f32  rssi_dbm (NaN: not reported)
    28      4     f32  noise_dbm
    32      4     u32  channel_mhz
    36      2     u16  bandwidth_mhz
    38      1     u8   n_rx
    39      1     u8   n_tx
    40      2     u16  n_subcarriers (S)
    42      1     u8   sample width W: 1 int8, 2 int16, 4 float32 (per real or imaginary part)
    43      1     u8   link length L (UTF-8 bytes)
    44      1     u8   wire-format length F (ASCII, e.g. "atheros")
    45      2     u16  meta length M (UTF-8 JSON object)
    47      L+F+M      link, wire format, meta
    ...     2*S        i16 subcarrier indices
    ...     2*W*R*T*S  CSI as (real, imaginary) pairs, row-major [rx][tx][subcarrier]

W is the narrowest width that holds every value exactly: hardware CSI is integral (int8 on an ESP32,
10-bit on Atheros), so real captures take 2 or 4 bytes per complex value instead of 8; the simulator's
float values keep float32.

Truth body (one ``SceneTruth`` of the simulator)::

    0       8     f64  host_ts (unix s of the frame after which it was current)
    8       8     f64  t_s (simulated time)
    16      2     u16  person count P, then P times:
                  i32 id, u8 activity length A, A bytes UTF-8 activity, u8 keypoint count K,
                  K*3 f32 keypoints (x, y, z metres, room coordinates)

Reading: a record is accepted only when its sync, length and CRC are right. Anything else starts a damaged
region that ends at the next sync sequence beginning a valid record. A damaged region followed by a valid
record is reported as one ``CsiFormatError`` (byte offset, bytes skipped) and reading goes on; a damaged
region that runs to the end of the file is a torn tail from a crash and is ignored silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import mmap
import os
import struct
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Final, Self, cast

import numpy as np
import numpy.typing as npt

from appliance.csi.formats.errors import CsiFormatError
from appliance.csi.formats.registry import register_reader
from appliance.csi.frame import CsiFrame, WireFormat
from appliance.csi.simulator import PersonTruth, SceneTruth

log = logging.getLogger(__name__)

FORMAT_NAME: Final = "recording"
FORMAT_VERSION: Final = 1
SYNC: Final = b"\x89IPR"
RECORD_HEAD = struct.Struct("<4sIB")
RECORD_CRC = struct.Struct("<I")
RECORD_OVERHEAD: Final = RECORD_HEAD.size + RECORD_CRC.size
# A corrupted length field must not make the reader wait for (or allocate) gigabytes; real records are a
# few kilobytes (the largest, an Atheros 3x3 114-tone frame in float32, is under 10 KiB).
MAX_BODY_BYTES: Final = 16 * 2**20

TYPE_HEADER: Final = 1
TYPE_FRAME: Final = 2
TYPE_TRUTH: Final = 3

FRAME_FIXED = struct.Struct("<dqqffIHBBHBBBH")
TRUTH_FIXED = struct.Struct("<ddH")
PERSON_ID = struct.Struct("<iB")
_U8 = struct.Struct("<B")
_SAMPLE_DTYPES: Final[dict[int, np.dtype[Any]]] = {1: np.dtype("<i1"), 2: np.dtype("<i2"), 4: np.dtype("<f4")}
_SUBCARRIER_DTYPE: Final = np.dtype("<i2")
_KEYPOINT_DTYPE: Final = np.dtype("<f4")
_KEYPOINT_AXES: Final = 3

# The writer hands its buffer to a worker thread at least this often, and sooner once it holds this many
# bytes: a crash loses at most about a second, and a fast source never waits on the disk.
FLUSH_INTERVAL_S: Final = 1.0
FLUSH_BYTES: Final = 1 * 2**20


@dataclass(frozen=True, slots=True)
class RecordingHeader:
    """What a recording session says about itself: when, which sources, which room."""

    created: float
    sources: tuple[Mapping[str, Any], ...] = ()
    room: Mapping[str, Any] | None = None
    software: str = ""
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "created": self.created,
            "software": self.software,
            "sources": [dict(s) for s in self.sources],
            "room": None if self.room is None else dict(self.room),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RecordingHeader:
        return cls(
            created=float(data["created"]),
            sources=tuple(data.get("sources") or ()),
            room=data.get("room"),
            software=str(data.get("software", "")),
            format_version=int(data["format_version"]),
        )


@dataclass(frozen=True, slots=True)
class RecordedTruth:
    """The simulator's ground truth as recorded: current from ``host_ts`` on."""

    host_ts: float
    truth: SceneTruth


RecordingItem = RecordingHeader | CsiFrame | RecordedTruth | CsiFormatError


# ----------------------------------------------------------------------------------------------------
# Encoding


def _record(kind: int, body: bytes) -> bytes:
    if len(body) > MAX_BODY_BYTES:
        raise ValueError(f"record body of {len(body)} bytes exceeds {MAX_BODY_BYTES}")
    head = RECORD_HEAD.pack(SYNC, len(body), kind)
    crc = zlib.crc32(body, zlib.crc32(head[len(SYNC) :]))
    return head + body + RECORD_CRC.pack(crc)


def encode_header(header: RecordingHeader) -> bytes:
    """One header record."""
    body = json.dumps(header.to_json(), separators=(",", ":")).encode()
    return _record(TYPE_HEADER, body)


def _samples(csi: npt.NDArray[np.complex64]) -> tuple[int, bytes]:
    """(width, bytes) of the (real, imaginary) pairs in the narrowest exact sample width."""
    parts = np.ascontiguousarray(csi, dtype=np.complex64).view(np.float32)
    if parts.size and np.array_equal(parts, np.round(parts)):
        low, high = float(parts.min()), float(parts.max())
        for width, info in ((1, np.iinfo(np.int8)), (2, np.iinfo(np.int16))):
            if info.min <= low and high <= info.max:
                return width, parts.astype(_SAMPLE_DTYPES[width]).tobytes()
    return 4, parts.astype(_SAMPLE_DTYPES[4]).tobytes()


def encode_frame(frame: CsiFrame) -> bytes:
    """One frame record."""
    link = frame.link.encode()
    wire = frame.wire_format.encode("ascii")
    meta = json.dumps(frame.meta, separators=(",", ":")).encode() if frame.meta else b""
    width, samples = _samples(frame.csi)
    fixed = FRAME_FIXED.pack(
        frame.host_ts,
        frame.device_ts_us,
        frame.seq,
        frame.rssi_dbm,
        frame.noise_dbm,
        frame.channel_mhz,
        frame.bandwidth_mhz,
        frame.n_rx,
        frame.n_tx,
        frame.n_subcarriers,
        width,
        len(link),
        len(wire),
        len(meta),
    )
    subcarriers = frame.subcarriers.astype(_SUBCARRIER_DTYPE).tobytes()
    return _record(TYPE_FRAME, b"".join((fixed, link, wire, meta, subcarriers, samples)))


def encode_truth(truth: SceneTruth, host_ts: float) -> bytes:
    """One ground-truth record."""
    parts = [TRUTH_FIXED.pack(host_ts, truth.t_s, len(truth.persons))]
    for person in truth.persons:
        activity = person.activity.encode()
        keypoints = np.asarray(person.keypoints, dtype=_KEYPOINT_DTYPE)
        parts.append(PERSON_ID.pack(person.id, len(activity)))
        parts.append(activity)
        parts.append(_U8.pack(keypoints.shape[0]))
        parts.append(keypoints.tobytes())
    return _record(TYPE_TRUTH, b"".join(parts))


# ----------------------------------------------------------------------------------------------------
# Decoding


class _Body:
    """A cursor over one record body; running past its end is a ``CsiFormatError``."""

    def __init__(self, data: bytes, offset: int) -> None:
        self.data = data
        self.pos = 0
        self.offset = offset

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise CsiFormatError("record body is shorter than its fields say", offset=self.offset)
        out = self.data[self.pos : self.pos + size]
        self.pos += size
        return out

    def unpack(self, layout: struct.Struct) -> tuple[Any, ...]:
        return layout.unpack(self.take(layout.size))

    def array(self, dtype: np.dtype[Any], count: int) -> npt.NDArray[Any]:
        return np.frombuffer(self.take(dtype.itemsize * count), dtype=dtype)

    def done(self) -> None:
        if self.pos != len(self.data):
            raise CsiFormatError(
                f"{len(self.data) - self.pos} unexpected bytes after the record's fields", offset=self.offset
            )


def _decode_frame(body: _Body) -> CsiFrame:
    (host_ts, device_ts, seq, rssi, noise, channel, bandwidth, n_rx, n_tx, n_sub, width, n_link, n_wire,
     n_meta) = body.unpack(FRAME_FIXED)  # fmt: skip
    link = body.take(n_link).decode()
    wire = cast(WireFormat, body.take(n_wire).decode("ascii"))
    meta_bytes = body.take(n_meta)
    meta = cast(dict[str, int | float | str | bool], json.loads(meta_bytes)) if meta_bytes else {}
    subcarriers = body.array(_SUBCARRIER_DTYPE, n_sub).astype(np.int16)
    if width not in _SAMPLE_DTYPES:
        raise CsiFormatError(f"unknown sample width {width}", offset=body.offset)
    parts = body.array(_SAMPLE_DTYPES[width], 2 * n_rx * n_tx * n_sub).astype(np.float32)
    body.done()
    csi = parts.view(np.complex64).reshape(n_rx, n_tx, n_sub)
    return CsiFrame(
        link=link,
        device_ts_us=device_ts,
        host_ts=host_ts,
        seq=seq,
        rssi_dbm=float(rssi),
        noise_dbm=float(noise),
        channel_mhz=channel,
        bandwidth_mhz=bandwidth,
        csi=csi,
        subcarriers=subcarriers,
        wire_format=wire,
        meta=meta,
    )


def _decode_truth(body: _Body) -> RecordedTruth:
    host_ts, t_s, count = body.unpack(TRUTH_FIXED)
    persons = []
    for _ in range(count):
        person_id, n_activity = body.unpack(PERSON_ID)
        activity = body.take(n_activity).decode()
        (n_keypoints,) = body.unpack(_U8)
        keypoints = body.array(_KEYPOINT_DTYPE, n_keypoints * _KEYPOINT_AXES).astype(np.float64)
        persons.append(PersonTruth(person_id, keypoints.reshape(n_keypoints, _KEYPOINT_AXES), activity))
    body.done()
    return RecordedTruth(host_ts, SceneTruth(t_s, tuple(persons)))


def _decode(kind: int, data: bytes, offset: int) -> RecordingItem | None:
    body = _Body(data, offset)
    try:
        if kind == TYPE_HEADER:
            return RecordingHeader.from_json(json.loads(data))
        if kind == TYPE_FRAME:
            return _decode_frame(body)
        if kind == TYPE_TRUTH:
            return _decode_truth(body)
    except CsiFormatError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        # A record with a valid CRC but unreadable fields: written by a broken writer, not torn.
        raise CsiFormatError(f"record of type {kind} does not decode ({exc})", offset=offset) from exc
    return None


def _record_at(data: mmap.mmap | bytes, pos: int) -> tuple[int, int, int] | None:
    """(type, body start, next record) of a valid record at ``pos``, else None."""
    if pos + RECORD_OVERHEAD > len(data):
        return None
    sync, length, kind = RECORD_HEAD.unpack_from(data, pos)
    if sync != SYNC or length > MAX_BODY_BYTES:
        return None
    start = pos + RECORD_HEAD.size
    end = start + length
    if end + RECORD_CRC.size > len(data):
        return None
    (crc,) = RECORD_CRC.unpack_from(data, end)
    if zlib.crc32(data[pos + len(SYNC) : end]) != crc:
        return None
    return kind, start, end + RECORD_CRC.size


def iter_records(data: mmap.mmap | bytes) -> Iterator[RecordingItem]:
    """Items of an in-memory (or memory-mapped) recording, damage reported, torn tail ignored."""
    pos = 0
    damaged_from: int | None = None
    while pos < len(data):
        found = _record_at(data, pos)
        if found is None:
            if damaged_from is None:
                damaged_from = pos
            pos = data.find(SYNC, pos + 1)
            if pos < 0:
                return  # the damage runs to the end: a torn tail, ignored
            continue
        if damaged_from is not None:
            yield CsiFormatError(
                f"damaged recording: skipped {pos - damaged_from} bytes to the next valid record",
                offset=damaged_from,
            )
            damaged_from = None
        kind, start, end = found
        try:
            item = _decode(kind, bytes(data[start : end - RECORD_CRC.size]), pos)
        except CsiFormatError as exc:
            item = exc
        if item is not None:
            yield item
        pos = end


def read_recording(path: str | Path) -> Iterator[RecordingItem]:
    """Headers, frames, ground truth and damage reports of a recording, in file order.

    The file is memory-mapped, so a recording of hours is read without loading it; records appended while
    reading are not seen.
    """
    with Path(path).open("rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            yield from iter_records(data)


def is_recording(head: bytes) -> bool:
    """Do these first bytes of a file start a recording (a header record)?"""
    return len(head) > RECORD_HEAD.size and head.startswith(SYNC) and head[8] == TYPE_HEADER


def _iter_frames(path: Path) -> Iterator[CsiFrame | CsiFormatError]:
    for item in read_recording(path):
        if isinstance(item, CsiFrame | CsiFormatError):
            yield item


def _sniff(_path: Path, head: bytes) -> bool:
    return is_recording(head)


register_reader(FORMAT_NAME, _iter_frames, _sniff)


# ----------------------------------------------------------------------------------------------------
# Writing


def _open_for_append(path: Path) -> BinaryIO:
    """Open ``path`` for appending, refusing a non-empty file that is not a recording."""
    path.parent.mkdir(parents=True, exist_ok=True)
    f = path.open("ab")
    if f.tell() > 0:
        with path.open("rb") as existing:
            head = existing.read(RECORD_HEAD.size + 1)
        if not is_recording(head):
            f.close()
            raise ValueError(f"{path} exists and is not an InvisPose recording; refusing to append to it")
    return f


def _write_through(f: BinaryIO, data: bytes) -> None:
    f.write(data)
    f.flush()
    os.fsync(f.fileno())


@dataclass(slots=True)
class WriterStats:
    frames: int = 0
    truths: int = 0
    bytes: int = 0


class RecordingWriter:
    """Appends a session (its header, then frames and ground truth) to a recording file.

    ``write_frame`` / ``write_truth`` only encode into a memory buffer, so they may be called from the
    event loop for every packet; a background task hands the buffer to a worker thread every
    ``flush_interval_s`` or once it holds ``flush_bytes``, where it is written and fsynced. Use it as an
    async context manager; leaving the block writes what is left.
    """

    def __init__(
        self,
        path: str | Path,
        header: RecordingHeader,
        *,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        flush_bytes: int = FLUSH_BYTES,
    ) -> None:
        self.path = Path(path)
        self.header = header
        self.stats = WriterStats()
        self._flush_interval_s = flush_interval_s
        self._flush_bytes = flush_bytes
        self._pending = bytearray()
        self._file: BinaryIO | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._error: BaseException | None = None

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def open(self) -> None:
        self._file = await asyncio.to_thread(_open_for_append, self.path)
        self._append(encode_header(self.header))
        self._flusher = asyncio.create_task(self._flush_periodically(), name=f"recording-flush:{self.path}")

    def write_frame(self, frame: CsiFrame) -> None:
        self._append(encode_frame(frame))
        self.stats.frames += 1

    def write_truth(self, truth: SceneTruth, host_ts: float) -> None:
        self._append(encode_truth(truth, host_ts))
        self.stats.truths += 1

    def _append(self, record: bytes) -> None:
        if self._error is not None:
            raise OSError(f"recording {self.path} failed: {self._error}") from self._error
        if self._file is None:
            raise RuntimeError("RecordingWriter is not open")
        self._pending += record
        if len(self._pending) >= self._flush_bytes:
            self._wake.set()

    async def flush(self) -> None:
        """Write everything buffered so far (and fsync it)."""
        async with self._lock:
            if not self._pending or self._file is None:
                return
            data = bytes(self._pending)
            self._pending.clear()
            await asyncio.to_thread(_write_through, self._file, data)
            self.stats.bytes += len(data)

    async def _flush_periodically(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._flush_interval_s)
            self._wake.clear()
            try:
                await self.flush()
            except OSError as exc:
                log.error("recording to %s failed: %s", self.path, exc)
                self._error = exc
                return

    async def close(self) -> None:
        """Stop the periodic flush, write the rest, close the file. Safe to call twice."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        if self._file is None:
            return
        try:
            if self._error is None:
                await self.flush()
        finally:
            f, self._file = self._file, None
            if self._error is None:
                await asyncio.to_thread(f.close)
            else:
                # Closing retries what the file still buffers and fails the same way again; that error
                # was already reported with the file's name.
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(f.close)


def write_recording(
    path: str | Path,
    header: RecordingHeader,
    items: Sequence[CsiFrame | RecordedTruth],
) -> None:
    """Write (append) a whole session synchronously: for tests, tools and conversions, not live use."""
    with _open_for_append(Path(path)) as f:
        parts = [encode_header(header)]
        for item in items:
            if isinstance(item, CsiFrame):
                parts.append(encode_frame(item))
            else:
                parts.append(encode_truth(item.truth, item.host_ts))
        _write_through(f, b"".join(parts))
