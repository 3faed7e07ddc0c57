"""``invispose csi dump`` and ``invispose csi stats``: look inside a capture file from the command line.

``dump`` prints one JSON object per frame on stdout and reports each bad record on stderr with its byte
offset or line number, then goes on: a damaged capture is still worth reading. Exit codes: 0 ok, 1 the
file could not be read (missing, unknown format) or held bad records, 2 usage (argparse).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import sys
from collections.abc import Callable, Iterator
from typing import TextIO

from appliance.csi.formats.errors import CsiFormatError
from appliance.csi.formats.registry import AUTO, format_names, frame_to_dump, iter_file
from appliance.csi.frame import CsiFrame

EXIT_OK, EXIT_READ_ERROR = 0, 1
# Width of each format's sequence counter, for counting lost packets across a wrap.
_SEQ_MODULUS = {"atheros": 1 << 12, "intel5300": 1 << 16, "esp32-csv": 1 << 32}
_DEFAULT_SEQ_MODULUS = 1 << 32
_DEVICE_CLOCK_MODULUS = 1 << 32


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


def _wrapped_steps(values: list[int], modulus: int) -> list[int]:
    return [(b - a) % modulus for a, b in itertools.pairwise(values)]


def frame_stats(frames: list[CsiFrame]) -> dict[str, object]:
    """Frames, duration (device clock), packets/s, sequence gaps and RSSI summary of one capture."""
    stats: dict[str, object] = {"frames": len(frames)}
    if not frames:
        return stats
    fmt = frames[0].wire_format
    steps_us = _wrapped_steps([f.device_ts_us for f in frames], _DEVICE_CLOCK_MODULUS)
    duration_s = sum(steps_us) / 1e6
    seq_steps = _wrapped_steps([f.seq for f in frames], _SEQ_MODULUS.get(fmt, _DEFAULT_SEQ_MODULUS))
    rssi = [f.rssi_dbm for f in frames if not math.isnan(f.rssi_dbm)]
    stats.update(
        {
            "format": fmt,
            "links": sorted({f.link for f in frames}),
            "duration_s": round(duration_s, 6),
            "packets_per_s": round((len(frames) - 1) / duration_s, 3) if duration_s > 0 else None,
            "max_interval_ms": round(max(steps_us) / 1e3, 3) if steps_us else None,
            "seq_gaps": sum(1 for s in seq_steps if s > 1),
            "lost_packets": sum(s - 1 for s in seq_steps if s > 1),
            "shapes": sorted({f"{f.n_rx}x{f.n_tx}x{f.n_subcarriers}" for f in frames}),
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
