"""``invispose record`` and ``invispose replay``: capture what the configured sources produce, play it back.

``record`` runs every source of the configuration (hardware listeners, the simulator) for ``--seconds``
and writes their frames, and the simulator's ground truth, to a recording (appending to an existing one).
``replay`` plays a recording or any capture file through the motion detector and prints one line per
second of media time, so a capture can be checked without starting the appliance.

Exit codes: 0 ok, 1 configuration, file or source error, 2 usage (argparse).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from appliance import __version__
from appliance.csi.formats.errors import CsiFormatError
from appliance.csi.formats.registry import AUTO, format_names
from appliance.csi.recording import RecordingHeader, RecordingWriter
from appliance.csi.simulator import SceneTruth
from appliance.csi.sources import CsiSource, TruthSource
from appliance.csi.sources.replay import ReplaySource
from appliance.pose.motion import MotionSettings, RoomMotion

EXIT_OK, EXIT_ERROR = 0, 1
PROGRESS_INTERVAL_S = 0.5


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    """Add ``record`` and ``replay`` to the ``invispose`` command line."""
    record = subparsers.add_parser(
        "record",
        parents=[common],
        help="record the configured sources (simulator ground truth included) to a file",
    )
    record.add_argument("--seconds", type=_positive_float, required=True, help="how long to record")
    record.add_argument("--out", type=Path, required=True, help="recording file (appended to if it exists)")
    record.set_defaults(handler=run_record)

    replay = subparsers.add_parser(
        "replay",
        parents=[common],
        help="play a recording or capture file through the motion detector, a line per second",
    )
    replay.add_argument("file", type=Path, help="recording or capture file")
    pace = replay.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=_positive_float, default=1.0, help="times real time (default 1)")
    pace.add_argument("--fast", action="store_true", help="as fast as possible")
    replay.add_argument("--loop", action="store_true", help="start again at the end, until interrupted")
    replay.add_argument("--format", choices=format_names(), default=AUTO, help="file format (default: auto)")
    replay.set_defaults(handler=run_replay)


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError("must be a positive number")
    return value


# ----------------------------------------------------------------------------------------------------
# record


def run_record(args: argparse.Namespace, err: TextIO = sys.stderr) -> int:
    from appliance.app import build_source
    from appliance.config import ConfigError, load_config

    overrides = {"data_dir": str(args.data_dir)} if args.data_dir is not None else {}
    try:
        config = load_config(args.config, overrides=overrides)
    except ConfigError as exc:
        print(f"error: the configuration is not valid:\n{exc}", file=err)
        return EXIT_ERROR
    sources = [build_source(config, s) for s in config.sources]
    header = RecordingHeader(
        created=time.time(),
        sources=tuple(
            {"name": src.name, "kind": src.kind, "type": entry.type}
            for src, entry in zip(sources, config.sources, strict=True)
        ),
        room=config.room.model_dump(mode="json"),
        software=f"invispose {__version__}",
    )
    try:
        return asyncio.run(record(sources, header, args.out, args.seconds, err))
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=err)
        return EXIT_ERROR


async def record(
    sources: list[CsiSource], header: RecordingHeader, out: Path, seconds: float, err: TextIO
) -> int:
    """Record ``sources`` into ``out`` for ``seconds``; the exit code."""
    failures: list[str] = []
    async with RecordingWriter(out, header) as writer:

        async def pump(source: CsiSource) -> None:
            last_truth: SceneTruth | None = None
            try:
                async for frame in source.frames():
                    writer.write_frame(frame)
                    if isinstance(source, TruthSource):
                        truth = source.latest_truth
                        if truth is not None and truth is not last_truth:
                            writer.write_truth(truth, frame.host_ts)
                            last_truth = truth
            except (OSError, CsiFormatError, ValueError) as exc:
                failures.append(f"{source.name}: {exc}")

        tasks = [asyncio.create_task(pump(s), name=f"record:{s.name}") for s in sources]
        progress = _Progress(seconds, err)
        start = time.monotonic()
        try:
            while (elapsed := time.monotonic() - start) < seconds and not all(t.done() for t in tasks):
                progress.update(elapsed, writer.stats.frames)
                await asyncio.sleep(min(PROGRESS_INTERVAL_S, seconds - elapsed))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            progress.close(time.monotonic() - start, writer.stats.frames)
    for failure in failures:
        print(f"error: source {failure}", file=err)
    print(
        f"{out}: {writer.stats.frames} frames, {writer.stats.truths} ground-truth records, "
        f"{writer.stats.bytes} bytes",
        file=err,
    )
    return EXIT_ERROR if failures else EXIT_OK


class _Progress:
    """A tqdm bar on a terminal; nothing when stderr is a log file, so logs stay clean."""

    def __init__(self, total_s: float, err: TextIO) -> None:
        self._total = total_s
        self._bar = (
            tqdm(total=total_s, unit="s", file=err, bar_format="{l_bar}{bar}| {n:.1f}/{total} s {postfix}")
            if err.isatty()
            else None
        )

    def update(self, elapsed_s: float, frames: int) -> None:
        if self._bar is not None:
            self._bar.n = min(elapsed_s, self._total)
            self._bar.set_postfix_str(f"{frames} frames")

    def close(self, elapsed_s: float, frames: int) -> None:
        self.update(elapsed_s, frames)
        if self._bar is not None:
            self._bar.close()


# ----------------------------------------------------------------------------------------------------
# replay


def _detector_settings(args: argparse.Namespace, err: TextIO) -> MotionSettings | None:
    """The configuration's detector settings when the config file exists, else the defaults."""
    from appliance.config import ConfigError, load_config

    if not Path(args.config).is_file():
        print(f"note: {args.config} not found; using the default detector settings", file=err)
        return MotionSettings()
    try:
        return load_config(args.config).detector
    except ConfigError as exc:
        print(f"error: the configuration is not valid:\n{exc}", file=err)
        return None


def run_replay(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    settings = _detector_settings(args, err)
    if settings is None:
        return EXIT_ERROR
    source = ReplaySource(args.file, speed=None if args.fast else args.speed, loop=args.loop, fmt=args.format)
    try:
        asyncio.run(replay(source, RoomMotion(settings), out))
    except FileNotFoundError:
        print(f"error: file not found: {args.file}", file=err)
        return EXIT_ERROR
    except (CsiFormatError, OSError) as exc:
        print(f"error: {exc}", file=err)
        return EXIT_ERROR
    if source.stats.errors:
        print(f"{args.file}: {source.stats.errors} damaged records skipped", file=err)
    return EXIT_OK


async def replay(source: ReplaySource, room: RoomMotion, out: TextIO) -> None:
    """Feed every frame to ``room``; print the room's state once per second of media time."""
    frames = printed_frames = 0
    next_line_s = 1.0

    def line(media_s: float) -> None:
        nonlocal printed_frames
        reading = room.reading()
        truth = source.latest_truth
        people = "" if truth is None else f"  truth: {truth.person_count} people"
        motion = "yes" if reading.motion else "no"
        presence = "yes" if reading.presence else "no"
        out.write(
            f"{media_s:8.1f} s  frames {frames:7d} (+{frames - printed_frames:4d})  "
            f"motion {motion:3s}  presence {presence:3s}  score {reading.score:6.2f}{people}\n"
        )
        out.flush()
        printed_frames = frames

    async for frame in source.frames():
        room.update(frame)
        frames += 1
        while source.position_s >= next_line_s:
            line(next_line_s)
            next_line_s += 1.0
    line(source.position_s)
