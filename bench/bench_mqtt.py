"""The MQTT sink at 10 Hz with 3 people and 5 zones: messages per second, the CPU it costs, and how long
its outgoing queue gets while the broker is healthy and while it is gone for 30 s.

The appliance is the real application in its own process (its CPU read from /proc), with the shipped
configuration plus five zones, and a source nobody sends to: a producer inside it announces synthetic
frames through the pipeline (``Pipeline.announce``, as the model path does) at ``--rate-hz``, each with 3
people walking through the zones (so zone occupancy changes now and then), and one event a second. The
broker is Debian's ``mosquitto`` on loopback; a subscriber in this process counts what arrives.

Per run, against a baseline measured in the same run (the same process and producer, ``mqtt.enabled:
false``):

1. healthy, without the camera (``video.snapshot_interval_s: 0``): ``--seconds`` of delivery: messages/s
   arriving at the subscriber, the appliance's CPU (share of one core) against the baseline's, mosquitto's
   CPU, and the largest outgoing queue seen (sampled every 50 ms: the outbox plus the sink's hub queue);
2. broker down for ``--outage-s``: the largest queue seen, events dropped, and after the broker is back,
   the time until the appliance is ``online`` again;
3. healthy again in a fresh process with the overlay camera as shipped (the shipped video size and
   ``video.snapshot_interval_s``): the appliance's and mosquitto's CPU against step 1's, the snapshots
   that arrived per second and their bytes per second, and the render thread's CPU time per snapshot
   (rendering, JPEG and base64; the median the video sink reports), a steadier figure than the difference
   of two whole-process readings.

Each figure is the median of ``--runs`` runs. Run: ``python bench/bench_mqtt.py`` (about 110 s per run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiomqtt
from aiohttp import web
from processes import cpu_seconds, free_port

from appliance.api.keys import HUB, PIPELINE
from appliance.api.resource_keys import RESOURCES
from appliance.app import build_app
from appliance.config import load_config
from appliance.contracts import Event, EventType, Keypoint, PersonPose, PoseFrame
from appliance.contracts.coco import KEYPOINT_NAMES
from appliance.integrations.mqtt import MqttSink

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config" / "appliance.yaml"
DEVICE_ID = "bench_box"
BASE = f"invispose/{DEVICE_ID}"
CAMERA = f"{BASE}/camera/overlay"
PEOPLE = 3
# Five zones in a row across the 5 m x 4 m demo room; people walk along x through them.
ZONES = [
    {"id": f"zone{i}", "name": f"Zone {i}", "polygon": [[i, 0.0], [i + 1.0, 0.0], [i + 1.0, 4.0], [i, 4.0]]}
    for i in range(5)
]
SAMPLE_S = 0.05


class Broker:
    """Debian's mosquitto in the foreground on a loopback port, anonymous, no persistence."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.config = directory / "mosquitto.conf"
        user = ["user root"] if os.geteuid() == 0 else []
        lines = [*user, "persistence false", "log_type error", f"listener {self.port} 127.0.0.1",
                 "allow_anonymous true", ""]  # fmt: skip
        self.config.write_text("\n".join(lines))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.process = subprocess.Popen([mosquitto, "-c", str(self.config)], start_new_session=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("mosquitto did not start") from None
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
            self.process = None


def frame_at(t: float, frame_id: int) -> PoseFrame:
    """Three people walking back and forth along the room at different speeds (1 m per 8, 11, 14 s)."""
    persons = []
    for index in range(PEOPLE):
        x = 2.5 + 2.4 * math.sin(t / (8.0 + 3.0 * index) * math.pi)
        y = 1.0 + index
        zone = f"zone{min(4, max(0, int(x)))}"
        keypoints = tuple(Keypoint(name, x / 5.0, y / 4.0, (x, y, 1.0), 0.9) for name in KEYPOINT_NAMES)
        persons.append(PersonPose(index + 1, keypoints, (x / 5, y / 4, 0.1, 0.3), zone, "walking", 0.8))
    return PoseFrame(
        timestamp=time.time(), frame_id=frame_id, source="simulated", estimator="model",
        model_version="bench", presence=True, motion=True, motion_score=1.5, person_count=PEOPLE,
        persons=tuple(persons), confidence=0.8, processing_ms=1.0, links=(),
    )  # fmt: skip


def _serve(
    mqtt_enabled: bool, camera: bool, broker_port: int, data_dir: str, rate_hz: float, control: Connection
) -> None:
    """Child process: the application, a producer at ``rate_hz``, and a queue sampler; answers ``mark``
    (figures since the last mark) until ``stop``. ``camera``: the overlay snapshots as shipped; else off."""
    config = load_config(
        DEFAULT_CONFIG,
        overrides={
            "data_dir": data_dir,
            "mdns.enabled": False,  # a bench is not an appliance to be found on the network
            "sources": [{"type": "esp32_udp", "host": "127.0.0.1", "port": free_port()}],
            "zones": ZONES,
            "mqtt": {"enabled": mqtt_enabled, "host": "127.0.0.1", "port": broker_port,
                     "device_id": DEVICE_ID, "reconnect_min_s": 0.5, "reconnect_max_s": 2.0},
            **({} if camera else {"video.snapshot_interval_s": 0}),
        },
    )  # fmt: skip
    app = build_app(config)

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        pipeline, hub = app[PIPELINE], app[HUB]
        sinks = app[RESOURCES].sinks
        sink = sinks.sink("mqtt") if sinks is not None else None
        video = sinks.sink("video") if sinks is not None else None
        largest = 0

        async def produce() -> None:
            frame_id, started = 0, time.monotonic()
            while True:
                frame_id += 1
                pipeline.announce(frame_at(time.monotonic() - started, frame_id))
                if frame_id % round(rate_hz) == 0:
                    hub.publish(
                        Event(EventType.PERSON_ACTIVITY_DETECTED, {"person_id": 1, "activity": "walking"})
                    )
                await asyncio.sleep(max(0.0, started + frame_id / rate_hz - time.monotonic()))

        async def sample() -> None:
            nonlocal largest
            while True:
                if isinstance(sink, MqttSink):
                    largest = max(largest, sink.stats().pending)
                await asyncio.sleep(SAMPLE_S)

        tasks = [asyncio.create_task(produce()), asyncio.create_task(sample())]
        control.send("ready")
        loop = asyncio.get_running_loop()
        while (request := await loop.run_in_executor(None, control.recv)) != "stop":
            assert request == "mark"
            stats = sink.stats() if isinstance(sink, MqttSink) else None
            control.send({"largest_queue": largest, "sent": stats.delivered if stats else 0,
                          "details": dict(stats.details) if stats else {},
                          "video": dict(video.stats().details) if video is not None else {}})  # fmt: skip
            largest = 0
        for task in tasks:
            task.cancel()
        await runner.cleanup()

    asyncio.run(main())


class Counter:
    """A subscriber to everything under the appliance's topics, counting messages (and the camera's
    snapshots and their bytes)."""

    def __init__(self) -> None:
        self.count = 0
        self.snapshots = 0
        self.snapshot_bytes = 0
        self.online = asyncio.Event()
        self.online_at = math.inf

    async def run(self, port: int) -> None:
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", port) as client:
                    await client.subscribe(f"{BASE}/#", qos=2)
                    async for message in client.messages:
                        self.count += 1
                        if str(message.topic) == CAMERA and isinstance(message.payload, bytes):
                            self.snapshots += 1
                            self.snapshot_bytes += len(message.payload)
                        if str(message.topic).endswith("/availability") and message.payload == b"online":
                            self.online_at = time.monotonic()
                            self.online.set()
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)


@dataclass(frozen=True, slots=True)
class Run:
    messages_per_s: float
    cpu_percent: float
    baseline_cpu_percent: float
    broker_cpu_percent: float
    queue_healthy: int
    queue_down: int
    events_dropped: int
    back_online_s: float
    camera_cpu_percent: float
    camera_broker_cpu_percent: float
    snapshots_per_s: float
    snapshot_bytes_per_s: float
    snapshot_cpu_ms: float


async def _measure(
    mqtt: bool, camera: bool, broker: Broker, args: argparse.Namespace, data_dir: str
) -> dict[str, Any]:
    # Spawned, not forked: a forked child would inherit this process's running event loop.
    spawn = multiprocessing.get_context("spawn")
    control, child_end = spawn.Pipe()
    child = spawn.Process(target=_serve, args=(mqtt, camera, broker.port, data_dir, args.rate_hz, child_end))
    child.start()
    counter = Counter()
    listening = asyncio.create_task(counter.run(broker.port))
    loop = asyncio.get_running_loop()

    async def ask(request: str) -> Any:
        control.send(request)
        return await loop.run_in_executor(None, control.recv)

    try:
        if not await loop.run_in_executor(None, control.poll, 120):
            raise RuntimeError(f"the appliance process did not start (exit code {child.exitcode})")
        assert control.recv() == "ready"
        await asyncio.sleep(args.warmup_s)
        await ask("mark")
        assert broker.process is not None and child.pid is not None
        appliance_pid, broker_pid = child.pid, broker.process.pid
        cpu, mosquitto_cpu = cpu_seconds(appliance_pid), cpu_seconds(broker_pid)
        count, began = counter.count, time.monotonic()
        snapshots, snapshot_bytes = counter.snapshots, counter.snapshot_bytes
        await asyncio.sleep(args.seconds)
        elapsed = time.monotonic() - began
        healthy = await ask("mark")
        result = {
            "cpu_percent": (cpu_seconds(appliance_pid) - cpu) / elapsed * 100.0,
            "broker_cpu_percent": (cpu_seconds(broker_pid) - mosquitto_cpu) / elapsed * 100.0,
            "messages_per_s": (counter.count - count) / elapsed,
            "queue_healthy": healthy["largest_queue"],
            "snapshots_per_s": (counter.snapshots - snapshots) / elapsed,
            "snapshot_bytes_per_s": (counter.snapshot_bytes - snapshot_bytes) / elapsed,
            "snapshot_cpu_ms": healthy["video"].get("snapshot_cpu_ms") or math.nan,
        }
        if mqtt and not camera:
            broker.stop()
            await asyncio.sleep(args.outage_s)
            down = await ask("mark")
            counter.online.clear()
            broker.start()
            restarted = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(counter.online.wait(), 60)
            result |= {
                "queue_down": down["largest_queue"],
                "events_dropped": down["details"]["events_dropped"],
                "back_online_s": counter.online_at - restarted,
            }
        control.send("stop")
        return result
    finally:
        listening.cancel()
        await loop.run_in_executor(None, child.join, 30)
        if child.is_alive():
            child.kill()


async def one_run(args: argparse.Namespace) -> Run:
    with tempfile.TemporaryDirectory() as directory:
        broker = Broker(Path(directory))
        broker.start()
        try:
            baseline = await _measure(False, False, broker, args, str(Path(directory) / "baseline"))
            measured = await _measure(True, False, broker, args, str(Path(directory) / "mqtt"))
            camera = await _measure(True, True, broker, args, str(Path(directory) / "camera"))
        finally:
            broker.stop()
    return Run(
        messages_per_s=measured["messages_per_s"],
        cpu_percent=measured["cpu_percent"],
        baseline_cpu_percent=baseline["cpu_percent"],
        broker_cpu_percent=measured["broker_cpu_percent"],
        queue_healthy=measured["queue_healthy"],
        queue_down=measured["queue_down"],
        events_dropped=measured["events_dropped"],
        back_online_s=measured["back_online_s"],
        camera_cpu_percent=camera["cpu_percent"],
        camera_broker_cpu_percent=camera["broker_cpu_percent"],
        snapshots_per_s=camera["snapshots_per_s"],
        snapshot_bytes_per_s=camera["snapshot_bytes_per_s"],
        snapshot_cpu_ms=camera["snapshot_cpu_ms"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate-hz", type=float, default=10.0, help="frames per second (default %(default)s)")
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="healthy measurement (default %(default)s)"
    )
    parser.add_argument("--outage-s", type=float, default=30.0, help="broker down for (default %(default)s)")
    parser.add_argument("--warmup-s", type=float, default=3.0, help="before measuring (default %(default)s)")
    parser.add_argument("--runs", type=int, default=3, help="runs; figures are medians (default %(default)s)")
    args = parser.parse_args()
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        raise SystemExit("bench_mqtt: needs Debian's mosquitto (apt-get install mosquitto)")
    runs = [asyncio.run(one_run(args)) for _ in range(args.runs)]

    def median(name: str) -> float:
        return float(statistics.median(getattr(run, name) for run in runs))

    added = median("cpu_percent") - median("baseline_cpu_percent")
    print(f"MQTT at {args.rate_hz:g} Hz, {PEOPLE} people, {len(ZONES)} zones; medians of {args.runs} runs")
    print(f"  delivered: {median('messages_per_s'):.1f} messages/s at the subscriber")
    print(f"  appliance CPU: {median('cpu_percent'):.1f} % of a core with MQTT, "
          f"{median('baseline_cpu_percent'):.1f} % without: MQTT adds {added:.1f} % "
          f"({median('cpu_percent') / max(median('baseline_cpu_percent'), 1e-9):.2f}x)")  # fmt: skip
    print(f"  mosquitto CPU: {median('broker_cpu_percent'):.1f} % of a core")
    print(f"  outgoing queue, broker healthy: at most {median('queue_healthy'):.0f} messages")
    print(f"  outgoing queue, broker down {args.outage_s:g} s: at most {median('queue_down'):.0f} messages "
          f"({median('events_dropped'):.0f} events dropped); online again "
          f"{median('back_online_s'):.2f} s after the broker")  # fmt: skip
    camera_added = median("camera_cpu_percent") - median("cpu_percent")
    interval = load_config(DEFAULT_CONFIG).video.snapshot_interval_s
    print(f"  overlay camera (snapshot every {interval:g} s): {median('snapshots_per_s'):.2f} snapshots/s, "
          f"{median('snapshot_bytes_per_s') / 1000:.1f} kB/s at the subscriber")  # fmt: skip
    print(
        f"  each snapshot: {median('snapshot_cpu_ms'):.1f} ms of render-thread CPU (median), "
        f"{median('snapshot_cpu_ms') / 10 / interval:.2f} % of a core at one each {interval:g} s"
    )
    print(f"  appliance CPU with the camera: {median('camera_cpu_percent'):.1f} % of a core, "
          f"{median('cpu_percent'):.1f} % without: the camera adds {camera_added:.1f} % "
          f"({median('camera_cpu_percent') / max(median('cpu_percent'), 1e-9):.2f}x)")  # fmt: skip
    print(f"  mosquitto CPU with the camera: {median('camera_broker_cpu_percent'):.1f} % of a core, "
          f"{median('broker_cpu_percent'):.1f} % without")  # fmt: skip


if __name__ == "__main__":
    main()
