"""``invispose-node router``: the procd init script is shellcheck-clean, and its ``stream`` command, run
by busybox's sh with busybox's nc (the tools OpenWrt has) against a fake ``recv_csi`` that writes the real
Atheros capture, delivers every record to the appliance's own Atheros TCP source.

procd and /etc/rc.common are OpenWrt's and cannot run here: the test sources the script with stand-ins for
the ``procd_*`` functions that record what ``start_service`` asks procd to run."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from appliance.csi.formats.atheros import iter_atheros_file
from appliance.csi.frame import CsiFrame
from appliance.csi.sources.tcp import AtherosTcpSource
from firmware_tools.router import RouterError, check, init_script
from tests.captures import capture
from tests.firmware_tools.conftest import run_cli

BUSYBOX = shutil.which("busybox")
needs_busybox = pytest.mark.skipif(BUSYBOX is None, reason="busybox not installed (make test installs it)")


def write_script(tmp_path: Path, port: int) -> Path:
    script = tmp_path / "invispose-csi"
    code, _, err = run_cli("router", "script", "--appliance", "127.0.0.1", "--appliance-port", str(port),
                           "--output", str(script))  # fmt: skip
    assert code == 0, err
    return script


def router_bin(tmp_path: Path, recv_csi_body: str) -> Path:
    """A PATH folder with busybox's nc and a fake recv_csi (the real one needs an ath9k radio)."""
    assert BUSYBOX is not None
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "nc").symlink_to(BUSYBOX)
    fake = folder / "recv_csi"
    fake.write_text("#!/bin/sh\n" + recv_csi_body)
    fake.chmod(0o755)
    return folder


def start_stream(script: Path, path: Path) -> subprocess.Popen[bytes]:
    assert BUSYBOX is not None
    env = {**os.environ, "PATH": f"{path}:{os.environ['PATH']}"}
    return subprocess.Popen(
        [BUSYBOX, "sh", "-c", '. "$0"; stream', str(script)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip


def test_script_is_shellcheck_clean(tmp_path: Path) -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed (make test installs Debian's shellcheck)")
    script = write_script(tmp_path, 5567)
    result = subprocess.run([shellcheck, str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    assert script.read_text().startswith("#!/bin/sh /etc/rc.common\n")


@needs_busybox
def test_start_service_asks_procd_to_respawn_the_stream_for_ever(tmp_path: Path) -> None:
    script = write_script(tmp_path, 5567)
    stand_ins = (
        "procd_open_instance() { echo open; }; procd_close_instance() { echo close; }; "
        'procd_set_param() { echo "$*"; }; initscript=/etc/init.d/invispose-csi; . "$0"; start_service'
    )
    assert BUSYBOX is not None
    result = subprocess.run([BUSYBOX, "sh", "-c", stand_ins, str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "open",
        "command /bin/sh /etc/init.d/invispose-csi stream",
        "respawn 3600 5 0",
        "stdout 1",
        "stderr 1",
        "close",
    ]


@contextlib.asynccontextmanager
async def appliance_source(
    want: int = 0,
) -> AsyncIterator[tuple[AtherosTcpSource, list[CsiFrame], asyncio.Event]]:
    """The appliance's Atheros TCP source on a free loopback port; the event is set at ``want`` frames."""
    source = AtherosTcpSource(host="127.0.0.1", port=0)
    frames: list[CsiFrame] = []
    enough = asyncio.Event()

    async def pump() -> None:
        async for frame in source.frames():
            frames.append(frame)
            if len(frames) >= want:
                enough.set()

    task = asyncio.create_task(pump())
    await asyncio.wait_for(source.ready.wait(), 5)
    try:
        yield source, frames, enough
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def stream_fifos() -> set[Path]:
    return set(Path("/tmp").glob("invispose-csi.*"))


@needs_busybox
async def test_stream_delivers_the_real_capture_through_the_tcp_source(tmp_path: Path) -> None:
    capture_path = capture("atheros/ath_csi_1.dat")
    expected = [f for f in iter_atheros_file(capture_path) if isinstance(f, CsiFrame)]
    assert len(expected) == 401
    # Like the real recv_csi: write records to the file given, a line per packet to stdout, keep running.
    path = router_bin(tmp_path, f'cat "{capture_path}" > "$1"\necho "Recv 1th msg"\nexec sleep 60\n')
    fifos_before = stream_fifos()
    async with appliance_source(want=len(expected)) as (source, frames, enough):
        assert source.local_address is not None
        stream = start_stream(write_script(tmp_path, source.local_address[1]), path)
        try:
            await asyncio.wait_for(enough.wait(), 20)
        finally:
            os.killpg(stream.pid, signal.SIGTERM)
            stream.wait(10)
    assert len(frames) == len(expected)
    assert [f.device_ts_us for f in frames] == [f.device_ts_us for f in expected]
    assert all(np.array_equal(a.csi, b.csi) for a, b in zip(frames, expected, strict=True))
    assert {f.link for f in frames} == {"atheros-127.0.0.1"}
    assert stream.returncode == 0  # stopped by procd's SIGTERM: the trap cleans up and exits 0
    assert stream_fifos() <= fifos_before  # its FIFO is gone


@needs_busybox
async def test_stream_ends_when_recv_csi_dies_so_procd_restarts_it(tmp_path: Path) -> None:
    path = router_bin(tmp_path, 'printf "" > "$1"\nexit 3\n')
    async with appliance_source() as (source, _, _):
        assert source.local_address is not None
        stream = start_stream(write_script(tmp_path, source.local_address[1]), path)
        try:
            code = await asyncio.to_thread(stream.wait, 10)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(stream.pid, signal.SIGKILL)
    assert code == 1
    assert b"ended; procd starts it again" in stream.stderr.read()  # type: ignore[union-attr]


@needs_busybox
def test_stream_ends_when_the_appliance_is_down(tmp_path: Path) -> None:
    path = router_bin(tmp_path, 'exec sleep 60 > "$1"\n')
    with socket.socket() as sock:  # a port nobody listens on: bind, read it back, close
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    stream = start_stream(write_script(tmp_path, port), path)
    try:
        assert stream.wait(10) == 1
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(stream.pid, signal.SIGKILL)


@needs_busybox
async def test_router_check_reports_what_the_router_sent(tmp_path: Path) -> None:
    capture_path = capture("atheros/ath_csi_1.dat")
    path = router_bin(tmp_path, f'cat "{capture_path}" > "$1"\nexec sleep 60\n')
    streams: list[subprocess.Popen[bytes]] = []

    def start(address: tuple[str, int]) -> None:
        streams.append(start_stream(write_script(tmp_path, address[1]), path))

    try:
        report = await check(host="127.0.0.1", port=0, timeout_s=20, listen_s=2.0, on_listening=start)
    finally:
        for stream in streams:
            os.killpg(stream.pid, signal.SIGTERM)
            stream.wait(10)
    assert report.verdict == "fine", report.advice
    assert report.frames == 401
    assert report.links == ["atheros-127.0.0.1"]
    assert report.shapes == ["3x2x56"]  # the capture: 3 rx x 2 tx, 56 tones
    assert report.channels_mhz == [2437]
    assert report.packets_per_s is not None and 400 < report.packets_per_s < 550  # the capture: ~474/s


async def test_router_check_without_a_router() -> None:
    report = await check(host="127.0.0.1", port=0, timeout_s=0.3)
    assert report.verdict == "no-connection"
    assert "logread -e invispose-csi" in report.advice


async def test_router_check_on_a_busy_port_names_the_appliance() -> None:
    async with appliance_source() as (source, _, _):
        assert source.local_address is not None
        with pytest.raises(RouterError, match="in use, most likely by the running appliance"):
            await check(host="127.0.0.1", port=source.local_address[1], timeout_s=1)


def test_script_refuses_values_that_would_break_it() -> None:
    with pytest.raises(RouterError, match="must be an address or host name"):
        init_script("box'; rm -rf /")
    with pytest.raises(RouterError, match=r"outside 1\.\.65535"):
        init_script("192.168.1.2", port=70000)
