"""The WebSocket stream under load: delivery lag and server CPU with many clients, and what idle
connections cost the rest of the API.

The server is the real application (simulated room, pipeline publishing ``--rate-hz`` frames a second) in
its own process on loopback; clients run in other processes so that their JSON parsing is not billed to
the server or delays it. Measured in one run, against baselines measured in the same run:

1. ``--clients`` clients (default 200) each subscribed to ``pose`` at 20 Hz, against 1 client: delivery
   lag (PoseFrame timestamp to the client's receipt; both clocks are this machine's) p50/p99, and the
   server process's CPU as a share of one core (from /proc, user + system).
2. ``--idle`` authenticated connections (default 1000) held open without subscriptions, against none:
   ``GET /api/v1/system/health`` latency p50/p99 from one client.

Each figure is the median of ``--runs`` runs. Run: ``python bench/bench_websocket.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import aiohttp
import numpy as np
from aiohttp import web
from processes import cpu_seconds, free_port

from appliance.app import build_app
from appliance.config import load_config

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config" / "appliance.yaml"
ADMIN = {"username": "bench", "password": "bench password 1"}
NO_THROTTLE = {"per_minute": 100_000, "burst": 10_000}
CLIENT_PROCESSES = 2
# Seconds the clients have to connect and get past the retained frame before measuring starts.
SETTLE_S = 2.0
_MS = 1000.0


def _serve(port: int, data_dir: str, rate_hz: float, max_clients: int, ready: Connection) -> None:
    config = load_config(
        DEFAULT_CONFIG,
        overrides={
            "data_dir": data_dir,
            "mdns.enabled": False,  # a bench is not an appliance to be found on the network
            "pipeline.rate_hz": rate_hz,
            "auth.rate_limits.authenticated": NO_THROTTLE,
            "auth.rate_limits.anonymous": NO_THROTTLE,
            "websocket.max_clients": max_clients,
        },
    )
    app = build_app(config)

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=2048).start()
        async with aiohttp.ClientSession() as session:
            login = await (
                await session.post(f"http://127.0.0.1:{port}/api/v1/auth/setup", json=ADMIN)
            ).json()
        ready.send(login["access_token"])
        await asyncio.Event().wait()

    asyncio.run(main())


def _listen(port: int, token: str, clients: int, seconds: float, out: Connection) -> None:
    """Client process: ``clients`` streams subscribed to pose for ``seconds``; sends back the lags (s)."""

    async def one(session: aiohttp.ClientSession, lags: list[float], deadline: float) -> None:
        measure_from = deadline - seconds
        async with session.ws_connect(f"ws://127.0.0.1:{port}/ws/v1/stream?token={token}") as ws:
            await ws.receive_json()
            await ws.send_json({"type": "subscribe", "topic": "pose"})
            while time.time() < deadline:
                try:
                    message = await ws.receive(timeout=max(0.01, deadline - time.time()))
                except TimeoutError:
                    break
                received = time.time()
                if message.type is not aiohttp.WSMsgType.TEXT:
                    break
                if received >= measure_from and message.data.startswith('{"type":"pose_update"'):
                    # The frame's timestamp is the first field of its data: no need to parse 2 kB.
                    start = message.data.index('"timestamp": ') + len('"timestamp": ')
                    lags.append(received - float(message.data[start : message.data.index(",", start)]))

    async def main() -> list[float]:
        lags: list[float] = []
        deadline = time.time() + SETTLE_S + seconds
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            await asyncio.gather(*(one(session, lags, deadline) for _ in range(clients)))
        return lags

    out.send(asyncio.run(main()))


@dataclass(frozen=True, slots=True)
class StreamRun:
    clients: int
    lag_p50_ms: float
    lag_p99_ms: float
    delivered_per_s: float
    cpu_percent: float


def stream_run(server_pid: int, port: int, token: str, clients: int, seconds: float) -> StreamRun:
    per_process = [
        clients // CLIENT_PROCESSES + (i < clients % CLIENT_PROCESSES) for i in range(CLIENT_PROCESSES)
    ]
    pipes = []
    processes = []
    for count in (c for c in per_process if c):
        receive, send = multiprocessing.Pipe(duplex=False)
        process = multiprocessing.Process(target=_listen, args=(port, token, count, seconds, send))
        process.start()
        pipes.append(receive)
        processes.append(process)
    time.sleep(SETTLE_S)  # connect and settle; the clients measure for ``seconds`` after that
    cpu_before, began = cpu_seconds(server_pid), time.monotonic()
    time.sleep(seconds)
    cpu = (cpu_seconds(server_pid) - cpu_before) / (time.monotonic() - began) * 100.0
    lags = np.concatenate([np.asarray(p.recv()) for p in pipes])
    for process in processes:
        process.join()
    p50, p99 = np.percentile(lags * _MS, [50, 99])
    return StreamRun(clients, float(p50), float(p99), len(lags) / seconds, cpu)


async def health_latencies(port: int, requests: int) -> list[float]:
    times = []
    async with aiohttp.ClientSession() as session:
        for _ in range(requests):
            began = time.perf_counter()
            async with session.get(f"http://127.0.0.1:{port}/api/v1/system/health") as response:
                await response.read()
            times.append(time.perf_counter() - began)
    return times


async def idle_run(port: int, token: str, idle: int, requests: int) -> tuple[float, float]:
    """Health p50/p99 (ms) while ``idle`` authenticated streams are open."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        sockets = []
        for start in range(0, idle, 100):
            batch = [
                session.ws_connect(f"ws://127.0.0.1:{port}/ws/v1/stream?token={token}", heartbeat=None)
                for _ in range(min(100, idle - start))
            ]
            sockets += await asyncio.gather(*batch)
        await asyncio.gather(*(ws.receive_json() for ws in sockets))
        await asyncio.sleep(1.0)
        times = np.asarray(await health_latencies(port, requests)) * _MS
        await asyncio.gather(*(ws.close() for ws in sockets))
    p50, p99 = np.percentile(times, [50, 99])
    return float(p50), float(p99)


def _median(values: Sequence[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--rate-hz", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    receive, send = multiprocessing.Pipe(duplex=False)
    with tempfile.TemporaryDirectory() as data_dir:
        port = free_port()
        server = multiprocessing.Process(
            target=_serve, args=(port, data_dir, args.rate_hz, max(args.idle, args.clients) + 10, send)
        )
        server.start()
        token = receive.recv()
        assert server.pid is not None
        time.sleep(3.0)  # the pipeline's first frames, calibration under way
        print(f"server pid {server.pid}: simulated room, pose at {args.rate_hz:g} Hz, {os.cpu_count()} cores")
        try:
            stream_results: dict[int, list[StreamRun]] = {1: [], args.clients: []}
            for _ in range(args.runs):
                for clients in (1, args.clients):
                    stream_results[clients].append(stream_run(server.pid, port, token, clients, args.seconds))
            print(f"\nstreams subscribed to pose (median of {args.runs} runs of {args.seconds:g} s):")
            print(f"{'clients':>8} {'lag p50 ms':>11} {'lag p99 ms':>11} {'msgs/s':>8} {'server CPU %':>13}")
            for clients, stream_runs in stream_results.items():
                print(
                    f"{clients:>8} {_median([r.lag_p50_ms for r in stream_runs]):>11.1f} "
                    f"{_median([r.lag_p99_ms for r in stream_runs]):>11.1f} "
                    f"{_median([r.delivered_per_s for r in stream_runs]):>8.0f} "
                    f"{_median([r.cpu_percent for r in stream_runs]):>13.1f}"
                )
            one, many = (_median([r.cpu_percent for r in stream_results[c]]) for c in (1, args.clients))
            print(f"CPU ratio {args.clients} clients / 1 client: {many / one:.2f}x")

            idle_results: dict[int, list[tuple[float, float]]] = {0: [], args.idle: []}
            for _ in range(args.runs):
                for idle in (0, args.idle):
                    idle_results[idle].append(asyncio.run(idle_run(port, token, idle, args.requests)))
            print(f"\nGET /api/v1/system/health, {args.requests} requests (median of {args.runs} runs):")
            print(f"{'idle streams':>13} {'p50 ms':>8} {'p99 ms':>8}")
            for idle, runs in idle_results.items():
                print(
                    f"{idle:>13} {_median([r[0] for r in runs]):>8.2f} {_median([r[1] for r in runs]):>8.2f}"
                )
            base, loaded = (_median([r[1] for r in idle_results[i]]) for i in (0, args.idle))
            print(f"health p99 ratio {args.idle} idle streams / none: {loaded / base:.2f}x")
        finally:
            server.terminate()
            server.join()


if __name__ == "__main__":
    main()
