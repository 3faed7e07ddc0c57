"""The whole pipeline under a real load: 12 links x 100 packets/s in, PoseFrames at 10 Hz out.

The shipped room with a second transmitter on the opposite wall (2 x 6 ESP32 links, the ``esp32-2x6``
kind of setup; ``--links 6`` keeps the shipped one). Frames of the simulated demo are made beforehand (so
the simulator's own cost is not counted) and released in real time by a replaying source; the pipeline
runs exactly as in the service: per-link signal preparation, the motion detector, and the sensing path
(every link's cues, the int8 model on its worker thread, the particle trackers, falls, the scene).
Reported, median of the runs: CPU as a share of one core (this process, all threads), CSI-to-PoseFrame
latency (publication time minus the newest packet's arrival) p50/p99, and the model's time twice: the
call on its worker thread alone ("model us"), and as the pipeline waits for it ("round trip us": the
hand-over to the thread and the event loop's wake-up back included, which on a busy machine is mostly
waiting for a core); the motion-detector-only pipeline is measured in the same run as the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np

from appliance.app import build_estimator
from appliance.config import AppConfig, NodeConfig, load_config
from appliance.contracts import SourceKind
from appliance.csi.frame import CsiFrame
from appliance.csi.simulator import RoomSimulator, Scenario
from appliance.hub import Hub
from appliance.pipeline import Pipeline, stop_task
from appliance.pose.motion import RoomMotion
from appliance.pose.sensing.classifier import RoomClass

F32 = np.typing.NDArray[np.float32]

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config" / "appliance.yaml"
PACKET_RATE_HZ = 100.0
# The demo room's first people arrive after its empty lead; start the measured part after calibration.
WARMUP_S = 20.0


class PacedFrames:
    """Pre-made frames released at their simulated times, like a live source."""

    def __init__(self, frames: Sequence[CsiFrame]) -> None:
        self._frames = frames

    @property
    def name(self) -> str:
        return "bench"

    @property
    def kind(self) -> SourceKind:
        return "simulated"

    async def frames(self) -> AsyncIterator[CsiFrame]:
        started = time.time()
        first = self._frames[0].host_ts
        for frame in self._frames:
            delay = started + (frame.host_ts - first) - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            yield dataclasses.replace(frame, host_ts=time.time())
        await asyncio.Event().wait()


def with_second_transmitter(config: AppConfig) -> AppConfig:
    """The shipped room plus a transmitter high on the far wall: twice the links."""
    second = NodeConfig(id="ap2", kind="esp32", role="tx", position=(2.5, config.room.depth_m - 0.05, 1.8))
    room = config.room.model_copy(update={"nodes": [*config.room.nodes, second]})
    return config.model_copy(update={"room": room})


def make_frames(config: AppConfig, seconds: float) -> list[CsiFrame]:
    room = config.room.to_spec()
    simulator = RoomSimulator(room, Scenario.demo(room, seed=7), seed=7, packet_rate_hz=PACKET_RATE_HZ)
    frames: list[CsiFrame] = []
    for _ in range(round(seconds / 0.1)):
        frames += simulator.advance(0.1).frames
    return frames


async def measure(
    config: AppConfig, frames: Sequence[CsiFrame], with_model: bool, seconds: float
) -> dict[str, float]:
    estimator = build_estimator(config)[0] if with_model else None
    model_s: list[float] = []
    if estimator is not None:
        classify = estimator.classify

        def timed(inputs: tuple[F32, F32]) -> RoomClass:
            started = time.perf_counter()
            room_class = classify(inputs)
            model_s.append(time.perf_counter() - started)
            return room_class

        estimator.classify = timed  # type: ignore[method-assign]
    pipeline = Pipeline(
        [PacedFrames(frames)],
        RoomMotion(config.detector),
        Hub(),
        rate_hz=10.0,
        link_timeout_s=3.0,
        prep=config.prep,
        estimator=estimator,
    )
    task = asyncio.create_task(pipeline.run())
    await asyncio.sleep(WARMUP_S)
    pipeline.latency_s.clear()
    pipeline.inference_s.clear()
    model_s.clear()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    await stop_task(task)
    latency = np.asarray(pipeline.latency_s) * 1000
    inference = np.asarray(pipeline.inference_s) * 1e6
    model = np.asarray(model_s) * 1e6
    return {
        "cpu": cpu / wall,
        "latency_p50_ms": float(np.percentile(latency, 50)),
        "latency_p99_ms": float(np.percentile(latency, 99)),
        "inference_median_us": float(np.median(inference)) if inference.size else float("nan"),
        "model_median_us": float(np.median(model)) if model.size else float("nan"),
        "model_frames": float(inference.size),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per run (default 20)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per case, median shown (default 3)")
    parser.add_argument("--links", type=int, choices=(6, 12), default=12, help="(default 12)")
    args = parser.parse_args()
    config = load_config(DEFAULT_CONFIG, overrides={"sensing.enabled": True})
    if args.links == 12:
        config = with_second_transmitter(config)
    frames = make_frames(config, WARMUP_S + args.seconds + 2)
    links = len({f.link for f in frames})
    print(
        f"{links} links x {PACKET_RATE_HZ:.0f} packets/s, PoseFrames at 10 Hz, {args.seconds:.0f} s "
        f"measured after {WARMUP_S:.0f} s warm-up, median of {args.repeats}"
    )
    results: dict[str, list[dict[str, float]]] = {"motion detector only": [], "sensing path": []}
    for _ in range(args.repeats):
        for case in results:
            results[case].append(
                asyncio.run(measure(config, frames, case != "motion detector only", args.seconds))
            )
    base_cpu = statistics.median(r["cpu"] for r in results["motion detector only"])
    print(
        f"{'case':<22} {'CPU % core':>10} {'x base':>7} {'lat p50 ms':>11} {'lat p99 ms':>11} "
        f"{'model us':>9} {'round trip us':>14}"
    )
    for case, runs in results.items():
        cpu = statistics.median(r["cpu"] for r in runs)
        print(
            f"{case:<22} {100 * cpu:>9.1f}% {cpu / base_cpu:>7.2f} "
            f"{statistics.median(r['latency_p50_ms'] for r in runs):>11.2f} "
            f"{statistics.median(r['latency_p99_ms'] for r in runs):>11.2f} "
            f"{statistics.median(r['model_median_us'] for r in runs):>9.0f} "
            f"{statistics.median(r['inference_median_us'] for r in runs):>14.0f}"
        )


if __name__ == "__main__":
    main()
