"""Sustained UDP ingest: 6 ESP32 nodes at 100 packets/s each, and the CPU the appliance spends on it.

A separate sender process replays real ESP32 CSI buffers (the ESPectre captures) as ADR-018 datagrams
on loopback, paced at the target rate. The receiving side is measured in this process with
``time.process_time`` over the same wall interval, in three cases run back to back:

- ``socket floor``: a bare asyncio datagram protocol that only counts datagrams (the cost of receiving);
- ``UdpSource``: the appliance's UDP source, parsing every datagram into a ``CsiFrame``;
- ``+ prep + detector``: the same plus the per-link signal preparation and the motion detector, i.e. all
  per-packet work the pipeline does.

CPU is reported as a share of one core and as a ratio against the socket floor; the median of the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import socket
import statistics
import time
from collections.abc import Callable

import numpy as np
from captures import CAPTURES

from appliance.csi.formats.esp_udp import ADR018_HEADER, ADR018_MAGIC
from appliance.csi.frame import CsiFrame
from appliance.csi.prep import LinkPreparer
from appliance.csi.sources.udp import UdpSource
from appliance.pose.motion import MotionSettings, RoomMotion

N_NODES = 6


def _buffers() -> np.ndarray:
    """Real ESP32 CSI buffers when the captures are present, else int8 noise of the same shape."""
    npz = CAPTURES / "esp32" / "movement_s3_64sc_20260117_222626.npz"
    if npz.exists():
        with np.load(npz) as data:
            return np.asarray(data["csi_data"], dtype=np.int8)
    return np.random.default_rng(0).integers(-40, 40, (1000, 128)).astype(np.int8)


def _send(port: int, rate_hz: float, seconds: float, ready: multiprocessing.synchronize.Event) -> None:
    buffers = _buffers()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    period = 1.0 / rate_hz
    ready.wait()
    started = time.perf_counter()
    for tick in range(int(seconds * rate_hz)):
        buffer = buffers[tick % len(buffers)]
        for node in range(N_NODES):
            header = ADR018_HEADER.pack(ADR018_MAGIC, node + 1, 1, 64, 2437, tick, -50, -95, 0, 0)
            sock.sendto(header + buffer.tobytes(), ("127.0.0.1", port))
        delay = started + (tick + 1) * period - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    sock.close()


class _Counter(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.count = 0

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.count += 1


async def _socket_floor(port: int, seconds: float) -> int:
    loop = asyncio.get_running_loop()
    counter = _Counter()
    transport, _ = await loop.create_datagram_endpoint(lambda: counter, local_addr=("127.0.0.1", port))
    await asyncio.sleep(seconds)
    transport.close()
    return counter.count


async def _source(port: int, seconds: float, work: Callable[[CsiFrame], None] | None) -> int:
    source = UdpSource(host="127.0.0.1", port=port)
    received = 0

    async def consume() -> None:
        nonlocal received
        async for frame in source.frames():
            received += 1
            if work is not None:
                work(frame)

    task = asyncio.create_task(consume())
    await asyncio.sleep(seconds)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return received


def _full_pipeline_work() -> Callable[[CsiFrame], None]:
    preparers: dict[str, LinkPreparer] = {}
    detector = RoomMotion(MotionSettings())

    def work(frame: CsiFrame) -> None:
        preparer = preparers.get(frame.link)
        if preparer is None:
            preparer = preparers[frame.link] = LinkPreparer()
        preparer.push(frame)
        detector.update(frame)

    return work


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _measure(case: str, rate_hz: float, seconds: float) -> tuple[float, int, int]:
    """(CPU share of one core, datagrams received, datagrams sent) for one case."""
    port = _free_udp_port()
    ready = multiprocessing.Event()
    sender = multiprocessing.Process(target=_send, args=(port, rate_hz, seconds, ready))
    sender.start()

    async def run() -> int:
        if case == "socket floor":
            job = asyncio.create_task(_socket_floor(port, seconds + 0.5))
        else:
            work = _full_pipeline_work() if case == "+ prep + detector" else None
            job = asyncio.create_task(_source(port, seconds + 0.5, work))
        await asyncio.sleep(0.2)
        ready.set()
        return await job

    cpu0, wall0 = time.process_time(), time.perf_counter()
    received = asyncio.run(run())
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    sender.join()
    return cpu / wall, received, int(seconds * rate_hz) * N_NODES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=100.0, help="packets per second per node (default 100)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each run (default 5)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per case; the median is shown (default 3)"
    )
    args = parser.parse_args()

    print(f"{N_NODES} nodes x {args.rate:.0f} packets/s over UDP loopback, {args.seconds:.0f} s runs, "
          f"median of {args.repeats}")  # fmt: skip
    cases = ("socket floor", "UdpSource", "+ prep + detector")
    results: dict[str, list[tuple[float, int, int]]] = {case: [] for case in cases}
    for _ in range(args.repeats):
        for case in cases:
            results[case].append(_measure(case, args.rate, args.seconds))
    floor = statistics.median(r[0] for r in results["socket floor"])
    print(f"{'case':<20} {'CPU % of a core':>16} {'x floor':>8} {'received/sent':>14}")
    for case in cases:
        cpu = statistics.median(r[0] for r in results[case])
        received = statistics.median(r[1] for r in results[case])
        sent = results[case][0][2]
        print(f"{case:<20} {100 * cpu:>15.1f}% {cpu / floor:>8.1f} {received / sent:>14.3f}")


if __name__ == "__main__":
    main()
