"""The README's receiver code, run as printed against real deliveries: Python's ``verify`` and the Node
server accept what the appliance signs, and refuse a tampered body, a wrong secret and an old replay."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from appliance.api.keys import HUB
from tests.app_support import start
from tests.conftest import REPO, pick_free_port
from tests.factories import event
from tests.webhook_support import SECRET, Receiver, hook, until, webhook_overrides

README = (REPO / "README.md").read_text()


def readme_block(language: str, marker: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)
    (block,) = [b for b in blocks if marker in b]
    return block


def signed(body: bytes, t: int, secret: str = SECRET) -> str:
    """An X-InvisPose-Signature as the specification defines it (written here, not the appliance's)."""
    return f"t={t},v1={hmac.new(secret.encode(), f'{t}.'.encode() + body, hashlib.sha256).hexdigest()}"


async def test_the_python_verify_accepts_deliveries_and_refuses_the_rest(
    aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INVISPOSE_WEBHOOK_SECRET", SECRET)
    namespace: dict[str, Any] = {}
    exec(readme_block("python", "def verify("), namespace)
    verify = namespace["verify"]
    receiver = await Receiver().start()
    try:
        client, _ = await start(aiohttp_client, tmp_path, silent=True, **webhook_overrides(hook(receiver)))
        client.app[HUB].publish(event())
        await until(lambda: len(receiver.received) >= 2, "system.started and the event")
    finally:
        await receiver.stop()
    for received in receiver.received:
        assert verify(received.body, received.headers["X-InvisPose-Signature"])
    body, header = receiver.received[-1].body, receiver.received[-1].headers["X-InvisPose-Signature"]
    assert not verify(body.replace(b"person.detected", b"person.lost"), header)
    assert not verify(body, signed(body, int(time.time()), "some-other-secret-value"))
    assert not verify(body, signed(body, int(time.time()) - 600))  # a replay of a 10-minute-old delivery
    assert verify(body, signed(body, int(time.time()) - 60))
    assert not verify(body, "v1=deadbeef")


async def test_the_node_receiver_verifies_refuses_replays_and_deduplicates(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (Debian package nodejs; make test installs it)")
    script = tmp_path / "receiver.js"
    script.write_text(readme_block("js", "function verify("))
    port = pick_free_port()
    server = await asyncio.create_subprocess_exec(
        node,
        str(script),
        env={**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "INVISPOSE_WEBHOOK_SECRET": SECRET},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/invispose"
    try:
        deadline = time.monotonic() + 20
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.post(url, data=b"{}") as refused:
                        assert refused.status == 401  # not signed
                    break
                except aiohttp.ClientConnectorError:
                    assert server.returncode is None, await server.communicate()
                    assert time.monotonic() < deadline, "the Node receiver never listened"
                    await asyncio.sleep(0.1)
            client, admin = await start(aiohttp_client, tmp_path, silent=True, **webhook_overrides(
                {"id": "node", "url": url, "events": ["person.*"], "secret": SECRET},
                {"id": "wrong", "url": url, "events": ["person.*"], "secret": "not-the-receivers-secret"},
            ))  # fmt: skip
            tested = await (await client.post("/api/v1/webhooks/node/test", headers=admin)).json()
            assert (tested["delivered"], tested["status"]) == (True, 204)
            wrong = await (await client.post("/api/v1/webhooks/wrong/test", headers=admin)).json()
            assert (wrong["delivered"], wrong["status"]) == (False, 401)
            # The same delivery twice (a retry after a lost answer) is handled once.
            body = (
                b'{"id": "e1", "delivery_id": "d1", "event_type": "person.lost", "timestamp": 1, '
                b'"data": {"data": {"person_id": 4}}}'
            )
            for _ in range(2):
                headers = {"X-InvisPose-Signature": signed(body, int(time.time()))}
                async with session.post(url, data=body, headers=headers) as answer:
                    assert answer.status == 204
            old = {"X-InvisPose-Signature": signed(body, int(time.time()) - 600)}
            async with session.post(url, data=body, headers=old) as replayed:
                assert replayed.status == 401
    finally:
        server.terminate()
        out, err = await asyncio.wait_for(server.communicate(), 10)
    assert out.decode().splitlines().count('person.lost {"person_id":4}') == 1, (out, err)
