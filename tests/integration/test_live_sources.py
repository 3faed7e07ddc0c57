"""Live sources against real sockets and a real pseudo-terminal.

ESP32 radios and Atheros routers cannot run here, so each test puts a stand-in at the far end of the same
transport the appliance uses in the field: a UDP sender on 127.0.0.1 stands in for ESP32 nodes, a TCP
client replaying a real ``recv_csi`` capture stands in for a router, and a pseudo-terminal stands in for
an ESP32 on a USB serial port (unplugged by closing it, plugged back by making a new one under the same
name, as udev's ``/dev/serial/by-id`` link would).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
import tty
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from appliance.csi.formats.atheros import read_atheros_file
from appliance.csi.frame import CsiFrame
from appliance.csi.sources import CsiSource
from appliance.csi.sources.serial import MAX_LINE_BYTES, SerialSource
from appliance.csi.sources.tcp import AtherosTcpSource
from appliance.csi.sources.udp import UdpSource
from tests.captures import capture
from tests.encoders import adr018_datagram, atheros_record, classic_csv_line, espectre_datagram

RNG = np.random.default_rng(11)
BUF128 = RNG.integers(-128, 128, 128).astype(np.int8)
ATHEROS_RECORDS = 401
WAIT_S = 10.0


class Collector:
    """Runs a source's ``frames()`` in a task and keeps what arrives."""

    def __init__(self, source: CsiSource) -> None:
        self.frames: list[CsiFrame] = []
        self._arrived = asyncio.Event()
        self._task = asyncio.create_task(self._run(source))

    async def _run(self, source: CsiSource) -> None:
        async for frame in source.frames():
            self.frames.append(frame)
            self._arrived.set()

    async def wait_for(self, count: int) -> list[CsiFrame]:
        async with asyncio.timeout(WAIT_S):
            while len(self.frames) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.frames

    async def stop(self) -> None:
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task


@asynccontextmanager
async def collecting(source: CsiSource) -> AsyncIterator[Collector]:
    collector = Collector(source)
    try:
        yield collector
    finally:
        await collector.stop()


async def until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition``: the sources' counters are plain attributes (some set by a reader thread)."""
    async with asyncio.timeout(WAIT_S):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    assert condition(), what


# --------------------------------------------------------------------------------------------------------
# UDP: the sender stands in for ESP32 nodes


@pytest.fixture
def udp_socket() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        yield sock


def udp_sender(sock: socket.socket, address: tuple[str, int]) -> Callable[[bytes], int]:
    sock.connect(address)
    return sock.send


async def test_udp_autodetects_formats_maps_links_and_survives_bad_datagrams(
    udp_socket: socket.socket,
) -> None:
    source = UdpSource(host="127.0.0.1", port=0, links={"5": "ap-rx5"})
    async with collecting(source) as collector:
        await asyncio.wait_for(source.ready.wait(), WAIT_S)
        assert source.local_address is not None
        send = udp_sender(udp_socket, source.local_address)
        send(adr018_datagram(BUF128, node=3, seq=1))
        send(adr018_datagram(BUF128, node=5, seq=2))
        send(espectre_datagram(BUF128, chip=3, seq=3))
        send(classic_csv_line(BUF128, seq=4).encode() + b"\r\n")
        bad = [
            b"\x00garbage that is no csi format",
            adr018_datagram(BUF128)[:30],
            espectre_datagram(BUF128)[:-1],
            classic_csv_line(BUF128).encode()[:-40],
        ]
        for datagram in bad:
            send(datagram)
        send(adr018_datagram(BUF128, node=3, seq=5))  # the listener is still there after bad input
        frames = await collector.wait_for(5)
    assert [f.seq for f in frames] == [1, 2, 3, 4, 5]
    assert [f.link for f in frames] == ["esp32-3", "ap-rx5", "esp32-127.0.0.1", "esp32-127.0.0.1", "esp32-3"]
    assert [f.meta.get("protocol") for f in frames[:3]] == ["adr018", "adr018", "espectre"]
    assert all(f.wire_format == "esp32-udp" and f.host_ts > 0 for f in frames)
    assert source.stats.datagrams == 9
    assert dict(source.stats.bad) == {"unrecognized": 1, "adr018": 1, "espectre": 1, "csi_data": 1}


async def test_udp_queue_drops_oldest_when_the_consumer_lags(udp_socket: socket.socket) -> None:
    source = UdpSource(host="127.0.0.1", port=0, queue_frames=2)
    frames = cast(AsyncGenerator[CsiFrame, None], source.frames())
    first = asyncio.ensure_future(anext(frames))
    try:
        await asyncio.wait_for(source.ready.wait(), WAIT_S)
        assert source.local_address is not None
        send = udp_sender(udp_socket, source.local_address)
        send(adr018_datagram(BUF128, seq=0))
        assert (await asyncio.wait_for(first, WAIT_S)).seq == 0
        for seq in range(1, 6):  # nobody reads meanwhile
            send(adr018_datagram(BUF128, seq=seq))
        await until(lambda: source.stats.frames == 6, "all datagrams received")
        assert source.dropped == 3
        assert [(await anext(frames)).seq for _ in range(2)] == [4, 5]
    finally:
        await frames.aclose()


# --------------------------------------------------------------------------------------------------------
# TCP: the client stands in for an Atheros router running recv_csi


async def stream_to(address: tuple[str, int], data: bytes, rng: np.random.Generator) -> None:
    """Send ``data`` in random-sized chunks, as TCP segments from a router arrive, then hang up."""
    _, writer = await asyncio.open_connection(*address)
    pos = 0
    while pos < len(data):
        size = int(rng.integers(1, 3000))
        writer.write(data[pos : pos + size])
        await writer.drain()
        pos += size
        if rng.random() < 0.2:
            await asyncio.sleep(0)
    writer.close()
    await writer.wait_closed()


async def test_atheros_router_stream_reconnect_and_link_events() -> None:
    path = capture("atheros/ath_csi_1.dat")
    data = path.read_bytes()
    reference = read_atheros_file(path)
    assert len(reference) == ATHEROS_RECORDS
    events: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()

    async def on_link_change(link: str, connected: bool) -> None:
        await events.put((link, connected))

    source = AtherosTcpSource(host="127.0.0.1", port=0, on_link_change=on_link_change)
    rng = np.random.default_rng(3)
    async with collecting(source) as collector:
        await asyncio.wait_for(source.ready.wait(), WAIT_S)
        address = source.local_address
        assert address is not None

        await stream_to(address, data, rng)
        frames = await collector.wait_for(ATHEROS_RECORDS)
        assert await wait_event(events) == ("atheros-127.0.0.1", True)
        assert await wait_event(events) == ("atheros-127.0.0.1", False)
        assert source.connected_links == {}
        assert len(frames) == ATHEROS_RECORDS
        for got, want in zip(frames, reference, strict=True):
            assert (got.seq, got.device_ts_us, got.link) == (want.seq, want.device_ts_us, "atheros-127.0.0.1")
            np.testing.assert_array_equal(got.csi, want.csi)
        assert source.stats.bad_records == 0

        # The router comes back, its stream damaged on the way: garbage between records, then it hangs up
        # in the middle of a record. The damage costs the damaged records only.
        record = 2 + int.from_bytes(data[:2], "little")
        damaged = data[: 10 * record] + b"\xff" * 77 + data[10 * record : 20 * record + 100]
        await stream_to(address, damaged, rng)
        await collector.wait_for(ATHEROS_RECORDS + 20)
        assert await wait_event(events) == ("atheros-127.0.0.1", True)
        assert await wait_event(events) == ("atheros-127.0.0.1", False)
        assert source.stats.bad_records == 2  # the garbage, and the truncated last record

        # And once more, cleanly.
        await stream_to(address, data, rng)
        await collector.wait_for(2 * ATHEROS_RECORDS + 20)
        assert source.stats.connections == 3
    assert len(collector.frames) == 2 * ATHEROS_RECORDS + 20


async def test_a_router_that_resets_its_connection_keeps_what_it_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A router that reboots mid-stream resets the TCP connection (RST): the records that arrived are
    kept, the reset is reported on the link and in the source's last error, and the router's next
    connection streams again."""
    events: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()

    async def on_link_change(link: str, connected: bool) -> None:
        await events.put((link, connected))

    rng = np.random.default_rng(5)
    csi = rng.integers(-512, 512, (3, 2, 56)) + 1j * rng.integers(-512, 512, (3, 2, 56))
    records = b"".join(atheros_record(csi, timestamp=1000 + i) for i in range(5))
    source = AtherosTcpSource(host="127.0.0.1", port=0, on_link_change=on_link_change)
    async with collecting(source) as collector:
        await asyncio.wait_for(source.ready.wait(), WAIT_S)
        assert source.local_address is not None
        router = socket.create_connection(source.local_address)
        router.sendall(records + records[:100])  # five records and the start of a sixth
        await collector.wait_for(5)
        assert await wait_event(events) == ("atheros-127.0.0.1", True)
        with caplog.at_level(logging.WARNING, logger="appliance.csi.sources.tcp"):
            router.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            router.close()  # linger 0: the close sends RST, as a rebooting router's stack does
            assert await wait_event(events) == ("atheros-127.0.0.1", False)
        assert source.connected_links == {}
        assert source.stats.last_error is not None and "127.0.0.1" in source.stats.last_error
        assert "connection lost" in caplog.text
        assert [f.device_ts_us for f in collector.frames] == [1000, 1001, 1002, 1003, 1004]

        await stream_to(source.local_address, records, rng)
        await collector.wait_for(10)
        assert source.stats.connections == 2


async def test_atheros_source_disconnects_routers_when_stopped() -> None:
    events: list[tuple[str, bool]] = []

    async def on_link_change(link: str, connected: bool) -> None:
        events.append((link, connected))

    source = AtherosTcpSource(
        host="127.0.0.1", port=0, links={"127.0.0.1": "router-lab"}, on_link_change=on_link_change
    )
    collector = Collector(source)
    await asyncio.wait_for(source.ready.wait(), WAIT_S)
    assert source.local_address is not None
    reader, writer = await asyncio.open_connection(*source.local_address)
    await until(lambda: source.connected_links == {"router-lab": 1}, "router connected")
    await collector.stop()
    assert events == [("router-lab", True), ("router-lab", False)]
    assert await asyncio.wait_for(reader.read(), WAIT_S) == b""  # the appliance hung up
    writer.close()


async def test_atheros_connections_beyond_max_connections_are_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = capture("atheros/ath_csi_1.dat")
    data = path.read_bytes()
    reference = read_atheros_file(path)
    record = 2 + int.from_bytes(data[:2], "little")
    source = AtherosTcpSource(host="127.0.0.1", port=0, max_connections=1)
    caplog.set_level(logging.WARNING, logger="appliance.csi.sources.tcp")
    async with collecting(source) as collector:
        await asyncio.wait_for(source.ready.wait(), WAIT_S)
        address = source.local_address
        assert address is not None

        # The first router streams ...
        _, first = await asyncio.open_connection(*address)
        first.write(data[: 10 * record])
        await first.drain()
        await collector.wait_for(10)

        # ... a second sender is hung up on at once ...
        extra_reader, extra = await asyncio.open_connection(*address)
        assert await asyncio.wait_for(extra_reader.read(), WAIT_S) == b""
        extra.close()
        await extra.wait_closed()
        assert source.stats.refused == 1
        assert source.connected_links == {"atheros-127.0.0.1": 1}
        [refusal] = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert "refused tcp connection from 127.0.0.1" in refusal.getMessage()
        assert "raise sources[].max_connections or stop the extra sender" in refusal.getMessage()

        # ... while the first one's frames keep arriving.
        first.write(data[10 * record : 20 * record])
        await first.drain()
        frames = await collector.wait_for(20)
        assert [f.seq for f in frames] == [f.seq for f in reference[:20]]

        # Once it hangs up, its slot is free for the next router.
        first.close()
        await first.wait_closed()
        await until(lambda: source.connected_links == {}, "first router gone")
        await stream_to(address, data, np.random.default_rng(5))
        await collector.wait_for(20 + ATHEROS_RECORDS)
        assert source.stats.connections == 2
        assert source.stats.refused == 1
        assert source.stats.bad_records == 0


def test_atheros_max_connections_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_connections must be at least 1"):
        AtherosTcpSource(max_connections=0)


async def wait_event(events: asyncio.Queue[tuple[str, bool]]) -> tuple[str, bool]:
    return await asyncio.wait_for(events.get(), WAIT_S)


# --------------------------------------------------------------------------------------------------------
# Serial: a pseudo-terminal stands in for an ESP32 on USB


class FakeEsp32:
    """A pty whose slave is reachable under a fixed name, like ``/dev/serial/by-id/usb-...``."""

    def __init__(self, link_path: Path) -> None:
        self.link_path = link_path
        self.master = -1
        self._slave = -1

    def plug(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo back into the master before the source configures the port
        self.link_path.symlink_to(os.ttyname(self._slave))

    def unplug(self) -> None:
        self.link_path.unlink()
        os.close(self.master)
        os.close(self._slave)

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())


async def test_serial_reads_lines_ignores_log_noise_and_reconnects(tmp_path: Path) -> None:
    device = FakeEsp32(tmp_path / "ttyESP32")
    device.plug()
    source = SerialSource(str(device.link_path), reconnect_min_s=0.05, reconnect_max_s=0.2)
    line = classic_csv_line
    try:
        async with collecting(source) as collector:
            await until(lambda: source.stats.connected, "port opened")
            device.send("I (312) wifi:connected with csi-ap, aid = 1\r\n")
            device.send(line(BUF128, seq=1) + "\n" + line(BUF128, seq=2)[:50])
            device.send(line(BUF128, seq=2)[50:] + "\r\nW (900) csi: rx queue full\r\n")
            device.send(line(BUF128, seq=3).replace(",128,", ",64,") + "\n")  # len says 64: bad line
            device.send("\x00\x7fgarbled boot noise\n" + line(BUF128, seq=4) + "\n")
            frames = await collector.wait_for(3)
            assert [f.seq for f in frames] == [1, 2, 4]
            assert {f.link for f in frames} == {"esp32-aabbccddeeff"}
            assert source.stats.bad_lines == 1
            assert source.stats.log_lines == 3

            device.unplug()  # the USB cable is pulled
            await until(lambda: source.stats.disconnects == 1, "disconnect noticed")
            await until(lambda: source.stats.open_failures >= 1, "reconnect attempted while unplugged")
            assert not source.stats.connected

            device.plug()  # and plugged back in
            await until(lambda: source.stats.connects == 2, "reconnected")
            device.send(line(BUF128, seq=5) + "\n")
            frames = await collector.wait_for(4)
            assert frames[-1].seq == 5
    finally:
        if device.link_path.is_symlink():
            device.unplug()


async def test_serial_fixed_link_and_socket_url() -> None:
    """``socket://`` (a serial-over-TCP bridge, here a loopback server) works like a device path."""
    clients: asyncio.Queue[asyncio.StreamWriter] = asyncio.Queue()

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await clients.put(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    source = SerialSource(f"socket://127.0.0.1:{port}", link="ap-rx1")
    try:
        async with collecting(source) as collector:
            bridge = await asyncio.wait_for(clients.get(), WAIT_S)
            # pyserial discards whatever arrived before its open() returned (stale bytes of a real port).
            await until(lambda: source.stats.connected, "port opened")
            bridge.write((classic_csv_line(BUF128, seq=7) + "\n").encode())
            await bridge.drain()
            (frame,) = await collector.wait_for(1)
            bridge.close()
        assert (frame.link, frame.seq, frame.wire_format) == ("ap-rx1", 7, "esp32-csv")
    finally:
        server.close()
        await server.wait_closed()


async def test_an_overlong_serial_line_is_dropped_and_reading_goes_on() -> None:
    """A port that sends bytes without a newline (wrong baud rate, a wedged node) costs a bad line, not
    unbounded memory, and the next good line is read."""
    clients: asyncio.Queue[asyncio.StreamWriter] = asyncio.Queue()

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await clients.put(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    source = SerialSource(f"socket://127.0.0.1:{port}", link="ap-rx1")
    try:
        async with collecting(source) as collector:
            bridge = await asyncio.wait_for(clients.get(), WAIT_S)
            await until(lambda: source.stats.connected, "port opened")
            bridge.write(b"CSI_DATA," + b"\xaa" * (MAX_LINE_BYTES + 4096))
            await bridge.drain()
            await until(lambda: source.stats.bad_lines >= 1, "overlong line dropped")
            bridge.write(b"\n" + (classic_csv_line(BUF128, seq=9) + "\n").encode())
            await bridge.drain()
            (frame,) = await collector.wait_for(1)
            bridge.close()
        assert frame.seq == 9
        # One bad line for the overlong one; what followed the cut (no CSI_DATA tag left) is log text.
        assert (source.stats.frames, source.stats.bad_lines, source.stats.log_lines) == (1, 1, 1)
    finally:
        server.close()
        await server.wait_closed()


async def test_serial_reader_bug_becomes_the_source_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected exception in the reader thread ends frames() with it, instead of a silent hang."""

    def broken(self: SerialSource, deliver: object, stop: object) -> None:
        raise RuntimeError("reader bug")

    monkeypatch.setattr(SerialSource, "_run", broken)
    source = SerialSource("loop://")
    with pytest.raises(RuntimeError, match="reader bug"):
        await asyncio.wait_for(anext(source.frames()), timeout=5)
