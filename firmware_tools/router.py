"""Atheros CSI Tool routers: an OpenWrt procd init script that streams ``recv_csi`` to the appliance's
Atheros TCP source, and ``router check``, which listens in the appliance's place and says what arrives.

The script's ``stream`` command gives ``recv_csi`` a FIFO as its log file and feeds the FIFO to ``nc``
(busybox's, present on OpenWrt): ``recv_csi`` writes records to the file it is given and a text line per
packet to stdout, which goes to /dev/null. Busybox ``nc`` does not exit when its input ends (it waits for
the far end to close), so the script watches both and ends the other when one exits; then it exits itself
and procd starts it again after five seconds, for ever (``respawn 3600 5 0``: a retry count of 0 never
gives up), so a rebooted appliance or a crashed ``recv_csi`` heals on its own.
"""

from __future__ import annotations

import asyncio
import errno
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from appliance.csi.frame import CsiFrame
from appliance.csi.sources.tcp import DEFAULT_TCP_PORT, AtherosTcpSource

SERVICE_NAME: Final = "invispose-csi"
DEFAULT_RECV_CSI: Final = "recv_csi"
_HOST = re.compile(r"^[A-Za-z0-9.:-]+$")
_PATH = re.compile(r"^[A-Za-z0-9._/+-]+$")

_SCRIPT: Final = """\
#!/bin/sh /etc/rc.common
# {name}: stream the Atheros CSI Tool's recv_csi records to the InvisPose appliance at {host}:{port}.
# Made by 'invispose-node router script'. Install on the router:
#   copy to /etc/init.d/{name}; chmod +x /etc/init.d/{name}
#   /etc/init.d/{name} enable; /etc/init.d/{name} start
# Logs: logread -e {name}. Check from the appliance: invispose-node router check

# USE_PROCD, START, STOP and EXTRA_* are read by /etc/rc.common, not here.
# shellcheck disable=SC2034
USE_PROCD=1
# shellcheck disable=SC2034
START=99
# shellcheck disable=SC2034
STOP=10
# shellcheck disable=SC2034
EXTRA_COMMANDS="stream"
# shellcheck disable=SC2034
EXTRA_HELP="	stream	Run recv_csi into a TCP connection to the appliance (what procd runs)"

APPLIANCE_HOST='{host}'
APPLIANCE_PORT='{port}'
RECV_CSI='{recv_csi}'

start_service() {{
	procd_open_instance
	# rc.common sets $initscript to this file's path.
	# shellcheck disable=SC2154
	procd_set_param command /bin/sh "$initscript" stream
	# Start again 5 s after any exit, for ever (a retry count of 0 never gives up).
	procd_set_param respawn 3600 5 0
	procd_set_param stdout 1
	procd_set_param stderr 1
	procd_close_instance
}}

stream() {{
	recv_csi=$(command -v "$RECV_CSI") || {{
		echo "{name}: $RECV_CSI not found: copy the Atheros CSI Tool's recv_csi to /usr/bin" >&2
		exit 1
	}}
	command -v nc >/dev/null || {{
		echo "{name}: nc not found: opkg install netcat" >&2
		exit 1
	}}
	fifo=$(mktemp -u /tmp/{name}.XXXXXX)
	mkfifo -m 600 "$fifo" || exit 1
	nc "$APPLIANCE_HOST" "$APPLIANCE_PORT" <"$fifo" &
	nc_pid=$!
	# recv_csi writes its records to the file it is given, and a text line per packet to stdout.
	"$recv_csi" "$fifo" >/dev/null &
	recv_pid=$!
	trap 'kill "$nc_pid" "$recv_pid" 2>/dev/null; rm -f "$fifo"; exit 0' INT TERM
	# busybox nc waits for the far end after its input ends: whichever of the two ends first ends the other.
	while kill -0 "$nc_pid" 2>/dev/null && kill -0 "$recv_pid" 2>/dev/null; do
		sleep 1
	done
	kill "$nc_pid" "$recv_pid" 2>/dev/null
	wait
	rm -f "$fifo"
	echo "{name}: stream to $APPLIANCE_HOST:$APPLIANCE_PORT ended; procd starts it again" >&2
	exit 1
}}
"""


class RouterError(ValueError):
    """Bad router settings, or the check could not listen; says what to do."""


def init_script(host: str, *, port: int = DEFAULT_TCP_PORT, recv_csi: str = DEFAULT_RECV_CSI) -> str:
    """The procd init script for a router that sends to the appliance at ``host:port``."""
    if not _HOST.match(host):
        raise RouterError(f"appliance host {host!r} must be an address or host name (letters, digits, . : -)")
    if not 1 <= port <= 0xFFFF:
        raise RouterError(f"port {port} is outside 1..65535")
    if not _PATH.match(recv_csi):
        raise RouterError(f"recv_csi path {recv_csi!r} may hold only letters, digits and . _ / + -")
    return _SCRIPT.format(name=SERVICE_NAME, host=host, port=port, recv_csi=recv_csi)


@dataclass(slots=True)
class RouterReport:
    listen: str
    waited_s: float
    connections: int = 0
    links: list[str] = field(default_factory=list)
    frames: int = 0
    bad_records: int = 0
    bytes: int = 0
    packets_per_s: float | None = None
    shapes: list[str] = field(default_factory=list)
    channels_mhz: list[int] = field(default_factory=list)
    rssi_dbm: dict[str, float] | None = None
    verdict: str = ""
    advice: str = ""

    def as_json(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__}


def judge(r: RouterReport) -> tuple[str, str]:
    if r.connections == 0:
        return "no-connection", (
            f"no router connected to {r.listen} within {r.waited_s:.0f} s. On the router: 'logread -e "
            f"{SERVICE_NAME}' shows why; check APPLIANCE_HOST in /etc/init.d/{SERVICE_NAME} is this box's "
            "address, that the service runs (/etc/init.d/invispose-csi start), and that no firewall blocks "
            "the port."
        )
    if r.frames == 0 and r.bad_records == 0:
        return "no-frames", (
            f"{', '.join(r.links)} connected but sent no CSI records: recv_csi hears no packets. Check the "
            "CSI tool's ath9k driver is loaded and that a transmitter sends to this router on its channel."
        )
    if r.bad_records > r.frames:
        return "bad-records", (
            f"{r.bad_records} records did not parse ({r.frames} did): the sender is not recv_csi's log "
            "format, or the stream is cut; check the router runs the Atheros CSI Tool's recv_csi."
        )
    return "fine", (
        f"{r.frames} frames from {', '.join(r.links)} at {r.packets_per_s or 0:.0f} packets/s "
        f"({', '.join(r.shapes)}). Add an atheros tcp source on this port to the appliance's config."
    )


def _summarize(report: RouterReport, frames: list[CsiFrame], first_at: float | None, last_at: float) -> None:
    report.frames = len(frames)
    report.shapes = sorted({f"{f.n_rx}x{f.n_tx}x{f.n_subcarriers}" for f in frames})
    report.channels_mhz = sorted({f.channel_mhz for f in frames})
    if len(frames) >= 2:
        span_us = frames[-1].device_ts_us - frames[0].device_ts_us
        if span_us > 0:
            report.packets_per_s = round((len(frames) - 1) / (span_us / 1e6), 1)
        elif first_at is not None and last_at > first_at:
            report.packets_per_s = round((len(frames) - 1) / (last_at - first_at), 1)
    rssi = [f.rssi_dbm for f in frames]
    if rssi:
        report.rssi_dbm = {"min": min(rssi), "mean": round(statistics.fmean(rssi), 1), "max": max(rssi)}


async def check(
    *,
    host: str = "0.0.0.0",
    port: int = DEFAULT_TCP_PORT,
    timeout_s: float = 60.0,
    listen_s: float = 5.0,
    on_listening: Callable[[tuple[str, int]], None] | None = None,
) -> RouterReport:
    """Listen on ``host:port`` like the appliance; wait up to ``timeout_s`` for a router, then ``listen_s``
    more for its frames. ``on_listening`` gets the bound address (useful with port 0)."""
    links: list[str] = []

    async def on_link_change(link: str, connected: bool) -> None:
        if connected and link not in links:
            links.append(link)

    source = AtherosTcpSource(name="router-check", host=host, port=port, on_link_change=on_link_change)
    frames: list[CsiFrame] = []
    first_at: float | None = None

    async def pump() -> None:
        nonlocal first_at
        async for frame in source.frames():
            first_at = first_at or time.monotonic()
            frames.append(frame)

    task = asyncio.create_task(pump())
    start = time.monotonic()
    try:
        ready = asyncio.create_task(source.ready.wait())
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            ready.cancel()
            task.result()
        if on_listening is not None and source.local_address is not None:
            on_listening(source.local_address)
        deadline = start + timeout_s
        connected_at: float | None = None
        while time.monotonic() < deadline:
            if connected_at is None and source.stats.connections:
                connected_at = time.monotonic()
                deadline = min(deadline, connected_at + listen_s)
            await asyncio.sleep(0.05)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise RouterError(
                f"port {port} is in use, most likely by the running appliance (its Atheros TCP source): its "
                "status page already shows the router's link. Stop it to run this check, or point the router "
                "at another port and pass the same --listen-port here."
            ) from exc
        raise RouterError(f"cannot listen on {host}:{port}: {exc}") from exc
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)  # its error, if any, was handled above
    listen = (
        f"{source.local_address[0]}:{source.local_address[1]}" if source.local_address else f"{host}:{port}"
    )
    report = RouterReport(listen, round(time.monotonic() - start, 1))
    report.connections = source.stats.connections
    report.links = links
    report.bad_records = source.stats.bad_records
    report.bytes = source.stats.bytes
    _summarize(report, frames, first_at, time.monotonic())
    report.verdict, report.advice = judge(report)
    return report
