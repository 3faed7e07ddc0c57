"""Bad bytes through the real sources: each must cost only itself, and the source must keep delivering.

The stand-ins are those of ``test_live_sources.py`` (no ESP32 radio or Atheros router can run here): a TCP
client for a router, a UDP sender for ESP32 nodes, a pseudo-terminal for an ESP32 on USB serial, and a
file for a replay. The golden Atheros records (``tests/golden_atheros.py``, written byte by byte from the
tool's definition) carry a noise floor of 0xA1 / 0x9C, which numpy 2 refused to read as ``np.int8``.

The fuzz tests run one long-lived source per test on its own event loop and thread, and throw hypothesis's
inputs at it through the same socket or terminal a device would use; after every input a good record with
a fresh sequence number or timestamp follows, and it must come out.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from appliance.csi.formats.atheros import AtherosStreamParser
from appliance.csi.frame import CsiFrame
from appliance.csi.sources import CsiSource
from appliance.csi.sources import serial as serial_module
from appliance.csi.sources import udp as udp_module
from appliance.csi.sources.replay import ReplaySource
from appliance.csi.sources.serial import SerialSource
from appliance.csi.sources.tcp import AtherosTcpSource
from appliance.csi.sources.udp import UdpSource
from tests import golden_atheros as golden
from tests.encoders import adr018_datagram, atheros_record, classic_csv_line, espectre_datagram
from tests.integration.test_live_sources import WAIT_S, FakeEsp32, collecting, until

RNG = np.random.default_rng(17)
BUF128 = RNG.integers(-128, 128, 128).astype(np.int8)
GOLDEN_RECORDS = [golden.NOISE_A1_LITTLE_ENDIAN, golden.NOISE_9C_BIG_ENDIAN]
FUZZ_EXAMPLES = 300
# Sequence numbers and timestamps of the good records that follow each fuzz input: never repeated.
STAMPS = itertools.count(1000)


def good_atheros(timestamp: int, endian: str = "<") -> bytes:
    return atheros_record(np.full((1, 1, 56), 5 - 3j), timestamp=timestamp, endian=endian)


# --------------------------------------------------------------------------------------------------------
# The golden records through each source that reads Atheros logs


@pytest.mark.parametrize("record", GOLDEN_RECORDS, ids=["little-endian", "big-endian"])
async def test_tcp_stream_keeps_every_record_around_a_signed_noise_floor(record: bytes) -> None:
    source = AtherosTcpSource(host="127.0.0.1", port=0)
    endian = "<" if record is golden.NOISE_A1_LITTLE_ENDIAN else ">"
    around = [
        atheros_record(np.full((1, 1, 56), 1 + 1j), timestamp=t, endian=endian) for t in (10, 20, 30, 40)
    ]
    async with collecting(source) as collector:
        await asyncio.wait_for(source.ready.wait(), WAIT_S)
        assert source.local_address is not None
        _, writer = await asyncio.open_connection(*source.local_address)
        writer.write(around[0] + record + around[1])  # one read holds all three
        await writer.drain()
        frames = await collector.wait_for(3)
        writer.write(around[2] + record + around[3])  # and the stream is still up
        await writer.drain()
        frames = await collector.wait_for(6)
        writer.close()
        await writer.wait_closed()
    assert [f.device_ts_us for f in frames] == [10, golden.TIMESTAMP_US, 20, 30, golden.TIMESTAMP_US, 40]
    assert frames[1].noise_dbm == golden.NOISE_DBM[record]
    assert source.stats.bad_records == 0
    assert source.stats.connections == 1


async def test_tcp_stream_survives_a_parser_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should the parser itself fail on a read (a bug), the router stays connected and later reads count."""
    failures = iter([True])
    real_feed = AtherosStreamParser.feed_items

    def failing_once(self: AtherosStreamParser, data: bytes) -> list[object]:
        if next(failures, False):
            raise RuntimeError("parser bug")
        return real_feed(self, data)  # type: ignore[return-value]

    monkeypatch.setattr(AtherosStreamParser, "feed_items", failing_once)
    source = AtherosTcpSource(host="127.0.0.1", port=0)
    async with collecting(source) as collector:
        await asyncio.wait_for(source.ready.wait(), WAIT_S)
        assert source.local_address is not None
        _, writer = await asyncio.open_connection(*source.local_address)
        writer.write(good_atheros(1))
        await writer.drain()
        await until(lambda: source.stats.bad_records == 1, "the failure counted")
        writer.write(good_atheros(2))
        await writer.drain()
        (frame,) = await collector.wait_for(1)
        writer.close()
        await writer.wait_closed()
    assert frame.device_ts_us == 2
    assert source.stats.connections == 1
    assert "parser failed: RuntimeError: parser bug" in (source.stats.last_error or "")


def _fails_once(real: Callable[..., CsiFrame]) -> Callable[..., CsiFrame]:
    calls = itertools.count()

    def parse(*args: object, **kwargs: object) -> CsiFrame:
        if next(calls) == 0:
            raise RuntimeError("parser bug")
        return real(*args, **kwargs)

    return parse


async def test_udp_listener_survives_a_parser_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(udp_module, "parse_datagram", _fails_once(udp_module.parse_datagram))
    source = UdpSource(host="127.0.0.1", port=0)
    async with collecting(source) as collector:
        await asyncio.wait_for(source.ready.wait(), WAIT_S)
        assert source.local_address is not None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as node:
            node.sendto(adr018_datagram(BUF128, seq=1), source.local_address)
            node.sendto(adr018_datagram(BUF128, seq=2), source.local_address)
        (frame,) = await collector.wait_for(1)
    assert frame.seq == 2
    assert dict(source.stats.bad) == {"adr018": 1}
    assert "parser failed: RuntimeError: parser bug" in (source.stats.last_error or "")


async def test_serial_port_survives_a_parser_failure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(serial_module, "parse_csi_line", _fails_once(serial_module.parse_csi_line))
    device = FakeEsp32(tmp_path / "ttyESP32")
    device.plug()
    source = SerialSource(str(device.link_path))
    try:
        async with collecting(source) as collector:
            await until(lambda: source.stats.connected, "port opened")
            device.send(classic_csv_line(BUF128, seq=1) + "\n" + classic_csv_line(BUF128, seq=2) + "\n")
            (frame,) = await collector.wait_for(1)
    finally:
        device.unplug()
    assert frame.seq == 2
    assert source.stats.bad_lines == 1
    assert source.stats.connects == 1


async def test_replay_plays_every_record_around_a_signed_noise_floor(tmp_path: Path) -> None:
    path = tmp_path / "router.dat"
    path.write_bytes(good_atheros(1) + golden.NOISE_A1_LITTLE_ENDIAN + good_atheros(2))
    source = ReplaySource(path, speed=None, fmt="atheros")
    frames = [frame async for frame in source.frames()]
    assert [f.device_ts_us for f in frames] == [1, golden.TIMESTAMP_US, 2]
    assert frames[1].noise_dbm == -95.0
    assert source.stats.errors == 0


# --------------------------------------------------------------------------------------------------------
# Fuzzing the sources themselves


class RunningSource:
    """A source's ``frames()`` iterated on its own event loop in a thread, so blocking test code
    (hypothesis examples, plain sockets, a pty) can feed it and wait for what comes out."""

    def __init__(self, source: CsiSource) -> None:
        self.source = source
        self.frames: queue.Queue[CsiFrame] = queue.Queue()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="source-under-fuzz", daemon=True)
        self._thread.start()
        self._task = asyncio.run_coroutine_threadsafe(self._collect(), self._loop)

    @property
    def address(self) -> tuple[str, int] | None:
        """Where a network source listens, once it does."""
        address: tuple[str, int] | None = getattr(self.source, "local_address", None)
        return address

    async def _collect(self) -> None:
        async for frame in self.source.frames():
            self.frames.put(frame)

    def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while not condition():
            assert not self._task.done(), f"the source stopped: {self._task.exception()!r}"
            assert time.monotonic() < deadline, what
            time.sleep(0.005)

    def wait_for(self, wanted: Callable[[CsiFrame], bool], what: str) -> CsiFrame:
        """The first frame that is ``wanted``; others (frames hidden in fuzz input) are passed over."""
        deadline = time.monotonic() + WAIT_S
        while True:
            assert not self._task.done(), f"the source stopped: {self._task.exception()!r}"
            try:
                frame = self.frames.get(timeout=0.05)
            except queue.Empty:
                assert time.monotonic() < deadline, f"{what} never came out"
                continue
            if wanted(frame):
                return frame

    def close(self) -> None:
        async def stop() -> None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wrap_future(self._task)
            await asyncio.get_running_loop().shutdown_default_executor()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=WAIT_S)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=WAIT_S)
        self._loop.close()


@pytest.fixture
def tcp_source() -> Iterator[RunningSource]:
    """One listener for every example of a test (hypothesis runs them all inside one call of the test),
    as one appliance serves a router for weeks."""
    running = RunningSource(AtherosTcpSource(host="127.0.0.1", port=0))
    try:
        running.wait_until(lambda: running.address is not None, "the source listening")
        yield running
    finally:
        running.close()


@pytest.fixture
def udp_source() -> Iterator[RunningSource]:
    running = RunningSource(UdpSource(host="127.0.0.1", port=0))
    try:
        running.wait_until(lambda: running.address is not None, "the source listening")
        yield running
    finally:
        running.close()


@pytest.fixture
def serial_device(tmp_path: Path) -> Iterator[tuple[FakeEsp32, RunningSource]]:
    device = FakeEsp32(tmp_path / "ttyESP32")
    device.plug()
    source = SerialSource(str(device.link_path), reconnect_min_s=0.05, reconnect_max_s=0.2)
    running = RunningSource(source)
    try:
        running.wait_until(lambda: source.stats.connected, "the port open")
        yield device, running
    finally:
        running.close()
        device.unplug()


FUZZ_SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def mutated(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    """A seed with a few bytes changed and maybe cut short: input that is almost right."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        raw = bytearray(draw(st.sampled_from(seeds)))
        for _ in range(draw(st.integers(1, 6))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        return bytes(raw[: draw(st.integers(1, len(raw)))])

    return build()


ATHEROS_INPUT = st.one_of(st.binary(max_size=2000), mutated([*GOLDEN_RECORDS, good_atheros(0)]))


@FUZZ_SETTINGS
@given(garbage=ATHEROS_INPUT)
@example(garbage=golden.NOISE_A1_LITTLE_ENDIAN)
@example(garbage=golden.NOISE_9C_BIG_ENDIAN)
def test_fuzz_tcp_source(tcp_source: RunningSource, garbage: bytes) -> None:
    """A router sends anything, then a good record on the same stream; the next router streams cleanly.

    The good record goes in both byte orders: a stream's first plausible record fixes its byte order (as
    a router's never changes), and the fuzz input may hold one of either order.
    """
    assert tcp_source.address is not None
    stamp = next(STAMPS)
    with socket.create_connection(tcp_source.address, timeout=WAIT_S) as router:
        router.sendall(garbage + good_atheros(stamp, "<") + good_atheros(stamp, ">"))
    tcp_source.wait_for(lambda f: f.device_ts_us == stamp, "the good record after the bad bytes")
    with socket.create_connection(tcp_source.address, timeout=WAIT_S) as router:
        router.sendall(good_atheros(stamp + 1))
    tcp_source.wait_for(lambda f: f.device_ts_us == stamp + 1, "the next router's record")


UDP_SEEDS = [
    adr018_datagram(BUF128, seq=1),
    espectre_datagram(BUF128, seq=1),
    classic_csv_line(BUF128, seq=1).encode() + b"\r\n",
]
UDP_INPUT = st.lists(st.one_of(st.binary(max_size=1500), mutated(UDP_SEEDS)), min_size=1, max_size=4)


@FUZZ_SETTINGS
@given(datagrams=UDP_INPUT)
def test_fuzz_udp_source(udp_source: RunningSource, datagrams: list[bytes]) -> None:
    """Nodes send anything; a good datagram after it comes out."""
    assert udp_source.address is not None
    seq = next(STAMPS)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as node:
        for datagram in datagrams:
            node.sendto(datagram, udp_source.address)
        node.sendto(adr018_datagram(BUF128, node=200, seq=seq), udp_source.address)
    udp_source.wait_for(lambda f: f.meta.get("node_id") == 200 and f.seq == seq, "the good datagram")


SERIAL_SEEDS = [classic_csv_line(BUF128, seq=1).encode() + b"\n", b"I (312) wifi: connected\r\n"]
SERIAL_INPUT = st.one_of(st.binary(max_size=3000), mutated(SERIAL_SEEDS))


@FUZZ_SETTINGS
@given(noise=SERIAL_INPUT)
def test_fuzz_serial_source(serial_device: tuple[FakeEsp32, RunningSource], noise: bytes) -> None:
    """The node's line carries anything; a good line after it comes out."""
    device, source = serial_device
    seq = next(STAMPS)
    os.write(device.master, noise + b"\n" + classic_csv_line(BUF128, seq=seq).encode() + b"\n")
    source.wait_for(lambda f: f.seq == seq, "the good line")
