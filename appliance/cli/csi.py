"""``invispose csi dump`` and ``invispose csi stats``: look inside a capture file from the command line.

``dump`` prints one JSON object per frame on stdout and reports each bad record on stderr with its byte
offset or line number, then goes on: a damaged capture is still worth reading. Exit codes: 0 ok, 1 the
file could not be read (missing, unknown format) or held bad records, 2 usage (argparse).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TextIO

# Imported for its effect: it registers the appliance's own "recording" format with the registry.
import appliance.csi.recording  # noqa: F401
from appliance.csi.formats.errors import CsiFormatError
from appliance.csi.formats.registry import AUTO, format_names, frame_to_dump, iter_file
from appliance.csi.frame import CsiFrame
from appliance.csi.prep import SequenceTracker, TimestampUnwrapper, counter_widths

EXIT_OK, EXIT_READ_ERROR = 0, 1


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    """Add ``csi dump`` and ``csi stats`` to the ``invispose`` command line."""
    csi = subparsers.add_parser("csi", help="inspect CSI capture files", parents=[common])
    commands = csi.add_subparsers(dest="csi_command", required=True)
    dump = commands.add_parser("dump", help="one JSON object per frame", parents=[common])
    _add_file_arguments(dump)
    dump.add_argument("--limit", type=_positive_int, default=None, help="stop after N frames")
    dump.set_defaults(handler=run_dump)
    stats = commands.add_parser(
        "stats", help="frames, duration, rate, gaps and RSSI as JSON", parents=[common]
    )
    _add_file_arguments(stats)
    stats.set_defaults(handler=run_stats)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _add_file_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="capture file")
    parser.add_argument("--format", choices=format_names(), default=AUTO, help="file format (default: auto)")


def _items(args: argparse.Namespace, err: TextIO) -> Iterator[CsiFrame | CsiFormatError] | None:
    try:
        return iter_file(args.path, args.format)
    except FileNotFoundError:
        print(f"error: file not found: {args.path}", file=err)
    except IsADirectoryError:
        print(f"error: {args.path} is a directory, not a capture file", file=err)
    except (CsiFormatError, OSError) as exc:
        print(f"error: {exc}", file=err)
    return None


def _run(args: argparse.Namespace, out: TextIO, err: TextIO, consume: Callable[[CsiFrame], bool]) -> int:
    """Feed frames to ``consume`` (False stops early), report errors; the exit code."""
    items = _items(args, err)
    if items is None:
        return EXIT_READ_ERROR
    errors = 0
    try:
        for item in items:
            if isinstance(item, CsiFormatError):
                errors += 1
                print(f"{args.path}: {item}", file=err)
            elif not consume(item):
                break
    except OSError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_READ_ERROR
    return EXIT_READ_ERROR if errors else EXIT_OK


def run_dump(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    count = 0

    def consume(frame: CsiFrame) -> bool:
        nonlocal count
        out.write(json.dumps(frame_to_dump(frame), separators=(",", ":")) + "\n")
        count += 1
        return args.limit is None or count < args.limit

    return _run(args, out, err, consume)


@dataclass
class _LinkTally:
    """One link's clock and sequence counters, with the widths of the format it came in."""

    clock: TimestampUnwrapper | None
    sequence: SequenceTracker
    frames: int = 0
    first_us: int | None = None
    last_us: int | None = None
    max_step_us: int = 0

    def add(self, frame: CsiFrame) -> None:
        self.frames += 1
        self.sequence.observe(frame.seq)
        if self.clock is None:
            return
        t_us = self.clock.update(frame.device_ts_us).value
        if self.last_us is not None:
            self.max_step_us = max(self.max_step_us, t_us - self.last_us)
        self.first_us = t_us if self.first_us is None else self.first_us
        self.last_us = max(t_us, self.last_us or t_us)

    def summary(self) -> dict[str, object]:
        span_s = (self.last_us - self.first_us) / 1e6 if self.first_us is not None and self.last_us else None
        return {
            "frames": self.frames,
            "duration_s": round(span_s, 6) if span_s is not None else None,
            "packets_per_s": round((self.frames - 1) / span_s, 3) if span_s else None,
            "max_interval_ms": round(self.max_step_us / 1e3, 3) if self.clock is not None else None,
            "lost_packets": self.sequence.lost,
            "duplicates": self.sequence.duplicates,
        }


def _tally(frame: CsiFrame) -> _LinkTally:
    widths = counter_widths(frame)
    clock = TimestampUnwrapper(widths.timestamp_bits) if widths.timestamp_bits else None
    return _LinkTally(clock, SequenceTracker(widths.sequence_bits))


def frame_stats(frames: list[CsiFrame]) -> dict[str, object]:
    """Frames, duration, packets/s, lost packets and RSSI of a capture, overall and per link.

    Each link is counted on its own device clock and sequence counter (unwrapped with the widths of its
    wire format), since different nodes' clocks share no origin. A format without a device clock (ESP32
    UDP) has no duration.
    """
    stats: dict[str, object] = {"frames": len(frames)}
    if not frames:
        return stats
    tallies: dict[str, _LinkTally] = {}
    for frame in frames:
        tally = tallies.get(frame.link)
        if tally is None:
            tally = tallies[frame.link] = _tally(frame)
        tally.add(frame)
    per_link = {link: tallies[link].summary() for link in sorted(tallies)}
    durations = [d for d in (s["duration_s"] for s in per_link.values()) if isinstance(d, float)]
    rates = [r for r in (s["packets_per_s"] for s in per_link.values()) if isinstance(r, float)]
    rssi = [f.rssi_dbm for f in frames if not math.isnan(f.rssi_dbm)]
    stats.update(
        {
            "format": frames[0].wire_format,
            "links": sorted(tallies),
            "duration_s": max(durations) if durations else None,
            "packets_per_s": round(sum(rates), 3) if rates else None,
            "lost_packets": sum(t.sequence.lost for t in tallies.values()),
            "shapes": sorted({f"{f.n_rx}x{f.n_tx}x{f.n_subcarriers}" for f in frames}),
            "per_link": per_link,
        }
    )
    if rssi:
        stats["rssi"] = {
            "min": min(rssi),
            "max": max(rssi),
            "mean": round(statistics.fmean(rssi), 2),
            "median": statistics.median(rssi),
        }
    return stats


def run_stats(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    frames: list[CsiFrame] = []

    def consume(frame: CsiFrame) -> bool:
        frames.append(frame)
        return True

    code = _run(args, out, err, consume)
    if code == EXIT_OK or frames:
        out.write(json.dumps(frame_stats(frames)) + "\n")
    return code
