"""``monitor``: watch a node's serial output for a while and say whether it gives the appliance usable CSI.

``CSI_DATA`` lines are parsed by the appliance's own parser (``appliance.csi.formats.esp_csv``), so a line
the monitor accepts is a line the appliance accepts. Packets/s and the longest gap are measured on this
computer's clock as lines arrive; packets the node itself lost show as holes in its sequence column.

The verdict, in the order it is decided: ``silent`` (no bytes), ``garbled`` (bytes but no text: the baud
rate), ``no-csi`` (log lines only), ``serial-saturated`` (the link is nearly full, so lines get cut and
packets dropped), ``wrong-format`` (CSI_DATA lines the parser refuses), ``slow`` (too few packets/s for
sensing), ``fine``. Each comes with what to do.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from tqdm import tqdm

from appliance.csi.formats.errors import CsiFormatError
from appliance.csi.formats.esp_csv import LINE_TAG, parse_csi_line
from appliance.csi.prep import SequenceTracker
from firmware_tools.serial_io import LineReader, PortError, open_port

_TAG = LINE_TAG.encode()
BITS_PER_SERIAL_BYTE: Final = 10  # 8N1: start bit, 8 data bits, stop bit
SATURATED_FILL: Final = 0.85
MIN_PACKETS_PER_S: Final = 10.0
MIN_PRINTABLE: Final = 0.8
_SEQUENCE_BITS: Final = 32
_KEEP_LOG_LINES: Final = 5


@dataclass(slots=True)
class MonitorReport:
    port: str
    baud: int
    duration_s: float
    bytes: int = 0
    lines: int = 0
    log_lines: int = 0
    csi_lines: int = 0
    frames: int = 0
    bad_lines: int = 0
    first_error: str | None = None
    packets_per_s: float | None = None
    max_gap_s: float | None = None
    lost_packets: int = 0
    rssi_dbm: dict[str, float] | None = None
    link_fill: float = 0.0
    printable: float = 1.0
    last_log_lines: list[str] = field(default_factory=list)
    verdict: str = ""
    advice: str = ""

    def as_json(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__}


def _printable_share(data: bytes) -> float:
    if not data:
        return 1.0
    text = sum(1 for b in data if 32 <= b < 127 or b in (9, 10, 13))
    return text / len(data)


def judge(r: MonitorReport) -> tuple[str, str]:
    """The verdict and what to do about it."""
    if r.bytes == 0:
        return "silent", (
            f"nothing arrived on {r.port} in {r.duration_s:.0f} s. Check the node is powered and this is its "
            "port ('invispose-node ports'), press the board's RESET (EN) button, and on boards with two USB "
            "sockets use the one marked UART."
        )
    if r.printable < MIN_PRINTABLE or r.lines == 0:
        return "garbled", (
            f"bytes arrive but they are not text lines: the baud rate is wrong. esp-csi prints at 921600 "
            f"(--baud 921600), ESP-IDF's default console is 115200; this run used {r.baud}."
        )
    if r.csi_lines == 0:
        return "no-csi", (
            f"the firmware prints ({r.log_lines} log lines) but no CSI_DATA lines. With esp-csi's console "
            "example start CSI with 'invispose-node console --port PORT -- radar --csi_start'; check the "
            "node joined Wi-Fi ('got ip' in its log) and that there is traffic to measure (a router it "
            "pings, or esp-csi's csi_send on a second board)."
        )
    if r.link_fill >= SATURATED_FILL:
        return "serial-saturated", (
            f"the serial link is {r.link_fill:.0%} full at {r.baud} baud ({r.bad_lines} lines cut or "
            f"damaged, {r.lost_packets} packets missing): raise the console baud rate (esp-csi: "
            "CONFIG_ESP_CONSOLE_UART_BAUDRATE=921600; 2000000 works on most USB bridges, then --baud "
            "2000000), lower the CSI rate, or send CSI over Wi-Fi (UDP) instead."
        )
    if r.frames == 0 or r.bad_lines > r.frames:
        return "wrong-format", (
            f"{r.bad_lines} of {r.csi_lines} CSI_DATA lines do not parse ({r.first_error}). The appliance "
            "reads esp-csi's layouts (25 columns on classic chips, 15 on C5/C6, 30 from esp-radar); a "
            "firmware printing other columns needs its own parser."
        )
    if r.packets_per_s is None or r.packets_per_s < MIN_PACKETS_PER_S:
        rate = "one packet" if r.packets_per_s is None else f"{r.packets_per_s:.1f} packets/s"
        return "slow", (
            f"only {rate}; sensing needs at least {MIN_PACKETS_PER_S:.0f} (50-100 is best). The node only "
            "measures packets it hears: make the router send more (esp-csi's csi_recv_router pings it at "
            "100 Hz), or add a csi_send board on the same channel."
        )
    return "fine", (
        f"{r.packets_per_s:.1f} packets/s, longest gap {r.max_gap_s or 0:.3f} s, {r.lost_packets} lost. "
        "Add this port as an esp32 serial source in the appliance, or provision the node to send over Wi-Fi."
    )


class _Tally:
    def __init__(self) -> None:
        self.sequence = SequenceTracker(_SEQUENCE_BITS)
        self.arrivals: list[float] = []
        self.rssi: list[float] = []


def watch(port_url: str, *, baud: int, duration_s: float, progress: bool = True) -> MonitorReport:
    """Read ``port_url`` for ``duration_s`` and judge what came."""
    port = open_port(port_url, baud)
    report = MonitorReport(port_url, baud, duration_s)
    tally = _Tally()
    log_lines: deque[str] = deque(maxlen=_KEEP_LOG_LINES)
    sample = bytearray()
    reader = LineReader(port)
    start = time.monotonic()
    with port, tqdm(total=round(duration_s, 1), unit="s", disable=not progress, leave=False) as bar:
        shown = 0.0
        try:
            for arrived, line in reader.lines_until(start + duration_s):
                elapsed = min(arrived - start, duration_s)
                if elapsed - shown >= 0.1:
                    bar.update(round(elapsed - shown, 1))
                    shown = round(elapsed, 1)
                    rate = len(tally.arrivals) / elapsed if elapsed else 0.0
                    bar.set_postfix_str(f"{rate:.0f} pkt/s, {report.bad_lines} bad", refresh=False)
                if line is None:
                    continue
                if len(sample) < 4096:
                    sample += line[: 4096 - len(sample)]
                _take(line, arrived, report, tally, log_lines)
        finally:
            report.duration_s = min(time.monotonic() - start, duration_s)
    report.bytes = reader.bytes
    report.bad_lines += reader.overlong
    report.printable = round(_printable_share(bytes(sample) or reader.pending[:4096]), 3)
    report.last_log_lines = list(log_lines)
    _summarize(report, tally)
    report.verdict, report.advice = judge(report)
    return report


def _take(line: bytes, arrived: float, report: MonitorReport, tally: _Tally, log_lines: deque[str]) -> None:
    report.lines += 1
    if _TAG not in line:
        report.log_lines += 1
        text = line.decode("utf-8", errors="replace").strip()
        if text:
            log_lines.append(text)
        return
    report.csi_lines += 1
    try:
        frame = parse_csi_line(line.decode("utf-8", errors="replace"), line_no=report.lines)
    except CsiFormatError as exc:
        report.bad_lines += 1
        report.first_error = report.first_error or str(exc)
        return
    report.frames += 1
    tally.sequence.observe(frame.seq)
    tally.arrivals.append(arrived)
    tally.rssi.append(frame.rssi_dbm)


def _summarize(report: MonitorReport, tally: _Tally) -> None:
    if report.duration_s > 0:
        report.link_fill = round(report.bytes * BITS_PER_SERIAL_BYTE / (report.baud * report.duration_s), 3)
    report.lost_packets = tally.sequence.lost
    if len(tally.arrivals) >= 2:
        span = tally.arrivals[-1] - tally.arrivals[0]
        gaps = [b - a for a, b in zip(tally.arrivals, tally.arrivals[1:], strict=False)]
        report.max_gap_s = round(max(gaps), 4)
        report.packets_per_s = round((len(tally.arrivals) - 1) / span, 2) if span > 0 else None
    if tally.rssi:
        report.rssi_dbm = {
            "min": min(tally.rssi),
            "mean": round(statistics.fmean(tally.rssi), 1),
            "max": max(tally.rssi),
        }


__all__ = ["MonitorReport", "PortError", "judge", "watch"]
