"""Requests per second and latency of ``GET /api/v1/pose/current`` under 50 concurrent keep-alive clients,
and what authentication and rate limiting cost.

The server is the real application (simulated room, pipeline running) in its own process on loopback, so
the load generator does not share its event loop or its CPU time. Two servers are measured:

- ``secured``: as shipped, each client with its own ``ivp_`` API token (looked up in the database on every
  request, as Home Assistant would call it), under the highest rate limits the configuration accepts, so
  that no request is throttled (one token for all 50 clients would exceed its bucket and measure 429s);
- ``open``: the same application with the security layer's ``access_middleware`` (token check, scope check
  and rate limit) taken out of its middleware list before it starts. The configuration has no switch for
  this on purpose; everything else (Host/Origin checks, metrics, error middleware, response stamping) stays.

Each figure is the median of ``--runs`` runs of ``--seconds`` seconds. Run: ``python -m bench.bench_api``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import statistics
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
from aiohttp import ClientSession, TCPConnector, web

from appliance.api import security
from appliance.api.keys import HUB
from appliance.app import build_app
from appliance.config import load_config

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config" / "appliance.yaml"


def pick_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


ROUTE = "/api/v1/pose/current"
CLIENTS = 50
ADMIN = {"username": "bench", "password": "bench password 1"}
# The highest limits the configuration accepts: a bench run stays far inside the bucket.
NO_THROTTLE = {"per_minute": 100_000, "burst": 10_000}
_MS = 1000.0


def _serve(mode: str, port: int, data_dir: str, ready: Connection) -> None:
    """Child process: the application on ``port`` until terminated; sends one token per client (or none)."""
    config = load_config(
        DEFAULT_CONFIG,
        overrides={
            "data_dir": data_dir,
            "mdns.enabled": False,  # a bench is not an appliance to be found on the network
            "auth.rate_limits.authenticated": NO_THROTTLE,
            "auth.rate_limits.anonymous": NO_THROTTLE,
        },
    )
    app = build_app(config)
    if mode == "open":
        app.middlewares.remove(security.access_middleware)

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        tokens: list[str] = []
        async with ClientSession() as session:
            base = f"http://127.0.0.1:{port}"
            login = await (await session.post(f"{base}/api/v1/auth/setup", json=ADMIN)).json()
            if mode == "secured":
                headers = {"Authorization": f"Bearer {login['access_token']}"}
                for index in range(CLIENTS):
                    body = {"name": f"bench-{index}", "scopes": ["pose:read"]}
                    created = await session.post(f"{base}/api/v1/auth/tokens", json=body, headers=headers)
                    tokens.append((await created.json())["token"])
        while app[HUB].latest("pose") is None:  # noqa: ASYNC110 - the hub offers no event
            await asyncio.sleep(0.05)
        ready.send(tokens)
        await asyncio.Event().wait()

    asyncio.run(main())


@dataclass(frozen=True, slots=True)
class RunResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


async def _load(port: int, tokens: list[str], seconds: float) -> RunResult:
    url = f"http://127.0.0.1:{port}{ROUTE}"
    latencies: list[float] = []
    errors = 0
    async with ClientSession(connector=TCPConnector(limit=CLIENTS)) as session:
        deadline = time.perf_counter() + seconds

        async def client(index: int) -> None:
            nonlocal errors
            headers = {"Authorization": f"Bearer {tokens[index]}"} if tokens else {}
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                async with session.get(url, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(CLIENTS)))
        elapsed = time.perf_counter() - began
    values = np.asarray(latencies) * _MS
    return RunResult(
        len(latencies) / elapsed, float(np.percentile(values, 50)), float(np.percentile(values, 99)), errors
    )


def measure(mode: str, seconds: float, runs: int) -> list[RunResult]:
    port = pick_free_port()
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    with tempfile.TemporaryDirectory() as data_dir:
        server = context.Process(target=_serve, args=(mode, port, data_dir, send), daemon=True)
        server.start()
        try:
            tokens = receive.recv()
            asyncio.run(_load(port, tokens, 1.0))  # warm-up: connections, caches
            return [asyncio.run(_load(port, tokens, seconds)) for _ in range(runs)]
        finally:
            server.terminate()
            server.join()


def _median(results: list[RunResult]) -> RunResult:
    return RunResult(
        statistics.median(r.requests_per_s for r in results),
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
        sum(r.errors for r in results),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one run")
    parser.add_argument("--runs", type=int, default=3, help="runs per server; the median is reported")
    args = parser.parse_args()
    medians = {}
    for mode in ("secured", "open"):
        results = measure(mode, args.seconds, args.runs)
        medians[mode] = _median(results)
        for r in results:
            figures = f"{r.requests_per_s:8.0f} req/s  p50 {r.p50_ms:6.2f} ms  p99 {r.p99_ms:6.2f} ms"
            print(f"  {mode:8} run: {figures}")
    print(f"GET {ROUTE}, {CLIENTS} keep-alive clients, median of {args.runs} x {args.seconds:.0f} s:")
    for mode, r in medians.items():
        print(
            f"{mode:8} {r.requests_per_s:8.0f} req/s  p50 {r.p50_ms:6.2f} ms  p99 {r.p99_ms:6.2f} ms  "
            f"non-200: {r.errors}"
        )
    secured, opened = medians["secured"], medians["open"]
    print(
        f"auth + rate limiting: throughput x{secured.requests_per_s / opened.requests_per_s:.2f}, "
        f"p50 x{secured.p50_ms / opened.p50_ms:.2f}, p99 x{secured.p99_ms / opened.p99_ms:.2f} "
        "(secured / open)"
    )


if __name__ == "__main__":
    main()
