"""An endpoint down for 30 s (nobody listening: connections refused), then up: every event published
meanwhile is delivered, in order, signed. In its own module: it takes 30 s by design, so the mutation
run (``make mutate``) selects the quicker delivery tests only."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from appliance.contracts import Event
from tests.conftest import pick_free_port
from tests.webhook_support import Receiver, event_ids, hook, publish, sink_of, started, until


@pytest.mark.slow
async def test_an_endpoint_down_for_30_s_gets_every_event_in_order_when_it_is_back(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    port = pick_free_port()  # nobody listens there until the receiver starts: connections are refused
    receiver = Receiver(port=port)
    client, _ = await started(
        aiohttp_client, tmp_path, hook(receiver, retry_policy={"max_backoff_s": 2.0, "max_attempts": 1000})
    )
    sent: list[Event] = []
    began = time.monotonic()
    while time.monotonic() - began < 30:
        sent += publish(client, 1)
        await asyncio.sleep(1.5)
    sink = sink_of(client)
    assert sink.stats().details["endpoints"]["recv"]["backlog"] == len(sent) + 1  # and system.started
    assert sink.stats().details["endpoints"]["recv"]["failed_attempts"] >= 5
    await receiver.start()
    try:
        await until(lambda: len(event_ids(receiver)) == len(sent), "the backlog delivered", timeout_s=30)
    finally:
        await receiver.stop()
    assert event_ids(receiver) == [e.id for e in sent]
    assert receiver.bad_signatures == []
    assert sink.stats().details["endpoints"]["recv"]["backlog"] == 0
