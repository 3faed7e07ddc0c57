"""Webhook throughput and the outbox's cost, each a median of ``--runs`` runs, beside a baseline measured in
the same run.

- Deliveries per second: ``--events`` events published on the hub at once, each written to the outbox,
  signed, POSTed to a receiver on 127.0.0.1 (its own process, answering 204 at once) and logged, through
  the real ``WebhookSink``; against plain aiohttp POSTs of the same body to the same receiver, one at a
  time (no outbox, no signature, no log): what the durability and bookkeeping cost.
- The outbox's write cost per event: one event per transaction (what the sink does when events come one
  at a time, as they do) and ``--batch`` per transaction (a burst), on a temporary file on the disk that
  holds ``--dir``; against appending the same event to an in-memory queue (what a sink that may lose
  events would do).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.connection
import statistics
import tempfile
import time
from collections import deque
from pathlib import Path

import aiohttp
from aiohttp import web

from appliance.contracts import Event, EventType
from appliance.hub import Hub, Message
from appliance.integrations.runner import SinkRunner
from appliance.integrations.webhooks.settings import WebhookSettings
from appliance.integrations.webhooks.signing import envelope
from appliance.integrations.webhooks.sink import WebhookSink
from appliance.store.database import Database
from appliance.store.settings import SettingsStore
from appliance.store.webhooks import OutboxEvent, WebhookOutbox

SECRET = "bench-secret-0123456789"


def _receiver(ready: multiprocessing.connection.Connection) -> None:
    async def accept(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    async def serve() -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", accept)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        ready.send(runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(serve())


def _event(n: int) -> Event:
    return Event(
        EventType.PERSON_ENTERED_ZONE, {"person_id": n % 4, "zone": "kitchen", "position": [1.2, 3.4]}
    )


async def _deliveries_per_s(directory: Path, url: str, events: int) -> float:
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        database = await Database.open(Path(tmp) / "bench.sqlite3")
        hub = Hub()
        settings = WebhookSettings.model_validate(
            {"allow_loopback": True, "endpoints": [{"id": "bench", "url": url, "secret": SECRET}]}
        )
        sink = WebhookSink(WebhookOutbox(database), SettingsStore(database), hub, settings)
        async with SinkRunner([sink], hub):
            began = time.perf_counter()
            for n in range(events):
                hub.publish(_event(n))
            while True:  # the sink has no completion event; 1 ms polls cost far less than a delivery
                if sink.stats().delivered >= events:
                    break
                await asyncio.sleep(0.001)
            elapsed = time.perf_counter() - began
        await database.close()
    return events / elapsed


async def _plain_posts_per_s(url: str, events: int) -> float:
    event = _event(0)
    body = envelope(event.id, event.type.value, event.time, "d", Message.of(event).text)
    async with aiohttp.ClientSession() as session:
        began = time.perf_counter()
        for _ in range(events):
            async with session.post(url, data=body) as response:
                await response.read()
        return events / (time.perf_counter() - began)


async def _outbox_ms_per_event(directory: Path, events: int, batch: int) -> float:
    items = [
        OutboxEvent(e.id, e.type.value, e.time, Message.of(e).text, ("bench",))
        for e in map(_event, range(events))
    ]
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        database = await Database.open(Path(tmp) / "bench.sqlite3")
        outbox = WebhookOutbox(database)
        began = time.perf_counter()
        for start in range(0, events, batch):
            await outbox.enqueue(items[start : start + batch])
        elapsed = time.perf_counter() - began
        await database.close()
    return elapsed * 1000.0 / events


def _memory_ms_per_event(events: int) -> float:
    messages = [Message.of(_event(n)) for n in range(events)]
    queue: deque[Message] = deque()
    began = time.perf_counter()
    for message in messages:
        queue.append(message)
    return (time.perf_counter() - began) * 1000.0 / events


async def main(args: argparse.Namespace) -> None:
    parent, child = multiprocessing.Pipe()
    receiver = multiprocessing.Process(target=_receiver, args=(child,), daemon=True)
    receiver.start()
    url = f"http://127.0.0.1:{parent.recv()}/hook"
    try:
        sink_rates, plain_rates, single_ms, batch_ms, memory_ms = [], [], [], [], []
        for _ in range(args.runs):
            sink_rates.append(await _deliveries_per_s(args.dir, url, args.events))
            plain_rates.append(await _plain_posts_per_s(url, args.events))
            single_ms.append(await _outbox_ms_per_event(args.dir, args.events, 1))
            batch_ms.append(await _outbox_ms_per_event(args.dir, args.events, args.batch))
            memory_ms.append(_memory_ms_per_event(args.events))
    finally:
        receiver.terminate()
        receiver.join()
    sink_rate, plain_rate = statistics.median(sink_rates), statistics.median(plain_rates)
    single, batched, memory = (statistics.median(v) for v in (single_ms, batch_ms, memory_ms))
    print(f"webhooks: {args.events} events x {args.runs} runs, medians")
    print(
        f"  delivered through the outbox: {sink_rate:8.0f} deliveries/s   "
        f"plain POSTs, no outbox: {plain_rate:8.0f}/s   ({sink_rate / plain_rate:.2f}x)"
    )
    print(
        f"  outbox write, 1 event per transaction:  {single:.3f} ms/event "
        f"({single / memory:,.0f}x an in-memory queue's {memory * 1000:.2f} us)"
    )
    print(
        f"  outbox write, {args.batch} per transaction: {batched:.3f} ms/event "
        f"({batched / memory:,.0f}x the in-memory queue)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1000, help="events per run (default 1000)")
    parser.add_argument("--runs", type=int, default=5, help="runs; medians are printed (default 5)")
    parser.add_argument(
        "--batch", type=int, default=100, help="events per transaction in a burst (default 100)"
    )
    parser.add_argument(
        "--dir", type=Path, default=Path(tempfile.gettempdir()), help="where the temporary databases go"
    )
    asyncio.run(main(parser.parse_args()))
