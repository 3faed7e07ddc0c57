"""The add-on's start: /data/options.json, the Supervisor's MQTT service, and the appliance run from them.

The Supervisor is the one part that cannot run here: a local aiohttp server stands in for it, answering
``GET /services/mqtt`` as the Supervisor does (``{"result": "ok", "data": {...}}``; 400 with
``"Service not enabled"`` when no add-on provides MQTT; 403 to an add-on without ``mqtt:want``), and
checking the add-on's Bearer token. It is the only stand-in in these tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from appliance.addon import INGRESS_PROXY, AddonError, BrokerService, read_options, supervisor_mqtt
from appliance.cli.addon import addon_config
from appliance.config import AppConfig
from tests.conftest import DEFAULT_CONFIG, REPO, pick_free_port
from tests.service_support import Service, get_json

TOKEN = "4f0a9c1d2e3b5a6978c0d1e2f3a4b5c6"
MOSQUITTO = {
    "host": "core-mosquitto",
    "port": 1883,
    "ssl": False,
    "protocol": "3.1.1",
    "username": "addons",
    "password": "Ohb6eeNg",
    "addon": "core_mosquitto",
}


@dataclass
class Supervisor:
    """What the stand-in answers, and what it was asked."""

    mqtt: dict[str, Any] | None = None
    status: int = 200
    requests: list[tuple[str, str | None]] = field(default_factory=list)

    def app(self) -> web.Application:
        async def service(request: web.Request) -> web.Response:
            self.requests.append((request.path, request.headers.get("Authorization")))
            if request.headers.get("Authorization") != f"Bearer {TOKEN}":
                return web.json_response({"result": "error", "message": "Unauthorized"}, status=401)
            if self.status == 403:
                return web.json_response(
                    {"result": "error", "message": "No access to mqtt service!"}, status=403
                )
            if self.mqtt is None:
                return web.json_response({"result": "error", "message": "Service not enabled"}, status=400)
            return web.json_response({"result": "ok", "data": self.mqtt})

        app = web.Application()
        app.router.add_get("/services/{service}", service)
        return app


@pytest.fixture
async def supervisor(aiohttp_server: Any) -> tuple[Supervisor, str]:
    stand_in = Supervisor()
    server = await aiohttp_server(stand_in.app(), host="127.0.0.1")
    return stand_in, str(server.make_url("")).rstrip("/")


def options_file(tmp_path: Path, **options: Any) -> Path:
    path = tmp_path / "options.json"
    path.write_text(json.dumps({"log_level": "info", "mqtt": True, "ingress_role": "admin", **options}))
    return path


async def test_the_broker_is_taken_from_the_supervisor_with_the_add_on_s_token(
    supervisor: tuple[Supervisor, str],
) -> None:
    stand_in, url = supervisor
    stand_in.mqtt = MOSQUITTO
    broker = await supervisor_mqtt(url, TOKEN)
    assert broker == BrokerService("core-mosquitto", 1883, False, "addons", "Ohb6eeNg")
    assert stand_in.requests == [("/services/mqtt", f"Bearer {TOKEN}")]


async def test_no_broker_add_on_means_no_broker_and_a_refusal_says_what_to_fix(
    supervisor: tuple[Supervisor, str],
) -> None:
    stand_in, url = supervisor
    assert await supervisor_mqtt(url, TOKEN) is None
    stand_in.status = 403
    with pytest.raises(AddonError, match=r"mqtt:want"):
        await supervisor_mqtt(url, TOKEN)
    with pytest.raises(AddonError, match=r"401"):
        await supervisor_mqtt(url, "wrong")
    with pytest.raises(AddonError, match="did not answer"):
        await supervisor_mqtt(f"http://127.0.0.1:{pick_free_port()}", TOKEN)


def test_bad_options_are_refused_with_the_key(tmp_path: Path) -> None:
    with pytest.raises(AddonError, match=r"ingress_role"):
        read_options(options_file(tmp_path, ingress_role="owner"))
    with pytest.raises(AddonError, match=r"does not exist"):
        read_options(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(AddonError, match=r"cannot be read"):
        read_options(tmp_path / "broken.json")


def args(tmp_path: Path, url: str, config: Path = DEFAULT_CONFIG, **options: Any) -> argparse.Namespace:
    return argparse.Namespace(
        options=options_file(tmp_path, **options), config=config, data_dir=tmp_path / "data", supervisor=url
    )


def configure(namespace: argparse.Namespace) -> AppConfig:
    """``addon_config`` runs its own event loop (as the command does): off this test's loop."""
    result: list[AppConfig | BaseException] = []

    def work() -> None:
        try:
            result.append(addon_config(namespace))
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=30)
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


async def test_the_appliance_is_configured_for_the_add_on(
    supervisor: tuple[Supervisor, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = supervisor
    monkeypatch.setenv("SUPERVISOR_TOKEN", TOKEN)
    config = await asyncio.to_thread(configure, args(tmp_path, url, log_level="debug", ingress_role="viewer"))
    assert config.data_dir == tmp_path / "data"
    assert config.server.log_level == "debug"
    assert str(config.auth.ingress_proxy) == INGRESS_PROXY
    assert config.auth.ingress_role == "viewer"


async def test_the_appliance_publishes_to_the_supervisor_s_broker(
    supervisor: tuple[Supervisor, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stand_in, url = supervisor
    stand_in.mqtt = MOSQUITTO
    monkeypatch.setenv("SUPERVISOR_TOKEN", TOKEN)
    mqtt: Any = getattr(await asyncio.to_thread(configure, args(tmp_path, url)), "mqtt")  # noqa: B009
    assert (mqtt.enabled, mqtt.host, mqtt.port, mqtt.username) == (True, "core-mosquitto", 1883, "addons")
    assert mqtt.password.get_secret_value() == "Ohb6eeNg" and mqtt.tls is None
    stand_in.requests.clear()
    off: Any = getattr(await asyncio.to_thread(configure, args(tmp_path, url, mqtt=False)), "mqtt")  # noqa: B009
    assert off.enabled is False and stand_in.requests == []


@pytest.fixture
def addon_process(tmp_path: Path) -> Iterator[tuple[Service, Path]]:
    """``invispose addon`` as the start script runs it, with the Supervisor stand-in on its own thread."""
    stand_in = Supervisor()
    port = pick_free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(stand_in.app())
    loop.run_until_complete(runner.setup())
    supervisor_port = pick_free_port()
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", supervisor_port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    config = tmp_path / "appliance.yaml"
    config.write_text(
        DEFAULT_CONFIG.read_text()
        .replace("host: 0.0.0.0", "host: 127.0.0.1")
        .replace("port: 8099", f"port: {port}")
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "appliance", "addon", "--options", str(options_file(tmp_path)),
         "--config", str(config), "--data-dir", str(tmp_path / "data"),
         "--supervisor", f"http://127.0.0.1:{supervisor_port}"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "SUPERVISOR_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    service = Service(process, port)
    try:
        yield service, tmp_path / "data"
    finally:
        if process.poll() is None:
            service.stop()
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        assert stand_in.requests == [("/services/mqtt", f"Bearer {TOKEN}")]


def test_the_add_on_starts_serves_and_keeps_its_data_in_the_data_folder(
    addon_process: tuple[Service, Path],
) -> None:
    service, data_dir = addon_process
    service.wait_healthy(60)
    assert (data_dir / "jwt_secret").is_file()
    status, session = get_json(f"{service.base}/api/v1/auth/session")
    assert status == 200 and session["signed_in"] is False  # direct access: the appliance's own login
    code, stderr = service.stop()
    assert code == 0, stderr
    assert "the Supervisor has no MQTT broker" in stderr
