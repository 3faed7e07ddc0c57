"""MQTT commands without a broker: what each command does to the appliance and the answer it publishes,
with the appliance's real controls wired as the app wires them (pipeline, live configuration, settings
store on SQLite, hub), without its HTTP side: the mutation run pays these tests for every mutant they
reach.

The payloads are those Home Assistant's MQTT entities send (its switch ``ON``/``OFF``, its number the
value as text, its select the option, its button ``PRESS``); the answers are checked against the shipped
JSON Schema (docs/schemas/mqtt-command-response.schema.json). tests/integration/test_mqtt.py sends the
same commands through Mosquitto.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from appliance.config import AppConfig
from appliance.control import ApplianceControls
from appliance.csi.sources.factory import build_source
from appliance.hub import Hub
from appliance.integrations.mqtt.commands import CommandHandler
from appliance.integrations.mqtt.topics import Publication, Topics
from appliance.live_config import LiveConfig
from appliance.pipeline import Pipeline
from appliance.pose.motion import RoomMotion
from appliance.store.database import Database
from appliance.store.settings import SettingsStore
from tests.auth_support import config_in
from tests.conftest import REPO

SCHEMA = json.loads((REPO / "docs" / "schemas" / "mqtt-command-response.schema.json").read_text())
BASE = "invispose/box"
HALL = {"name": "Hall", "polygon": [[3.0, 0.2], [4.5, 0.2], [4.5, 1.5], [3.0, 1.5]]}


class Commands:
    """A command handler on the appliance's controls, answering as the MQTT sink would publish."""

    def __init__(self, handler: CommandHandler, parts: Parts) -> None:
        self.handler = handler
        self.parts = parts

    async def send(self, name: str, payload: str | bytes) -> dict[str, Any]:
        published = await self.handler.handle(name, payload.encode() if isinstance(payload, str) else payload)
        return answer_of(published, name)


@dataclass
class Parts:
    pipeline: Pipeline
    live_config: LiveConfig
    hub: Hub
    store: SettingsStore
    config: AppConfig

    async def controls(self, restart: Callable[[], None] | None = None) -> ApplianceControls:
        return await ApplianceControls.load(
            self.pipeline, self.live_config, self.hub, self.store, self.config.detector, restart
        )


def answer_of(published: Publication, name: str) -> dict[str, Any]:
    assert (published.topic, published.qos, published.retain, published.reading) == (
        f"{BASE}/response/{name}", 1, False, False,
    )  # fmt: skip
    answer: dict[str, Any] = json.loads(published.payload)
    jsonschema.validate(answer, SCHEMA)
    return answer


def handler(controls: ApplianceControls) -> CommandHandler:
    return CommandHandler(controls, Topics("invispose", "homeassistant", "box"))


@pytest.fixture
async def commands(tmp_path: Path) -> AsyncIterator[Commands]:
    config = config_in(tmp_path)
    database = await Database.open(tmp_path / "invispose.sqlite3")
    hub = Hub()
    # pyserial's loopback port, which nobody writes to (the pipeline is never run here anyway).
    silent = build_source("esp32_serial", {"url": "loop://"})
    pipeline = Pipeline([silent], RoomMotion(config.detector), hub, rate_hz=10, link_timeout_s=3.0)
    store = SettingsStore(database)
    parts = Parts(pipeline, await LiveConfig.load(config, store, pipeline, hub), hub, store, config)
    controls = await parts.controls()
    try:
        yield Commands(handler(controls), parts)
    finally:
        await controls.close()
        await database.close()


async def test_home_assistants_switch_turns_detection_off_and_on(commands: Commands) -> None:
    pipeline = commands.parts.pipeline
    for payload, enabled in [("OFF", False), ("ON", True), ("false", False), ("true", True), ("0", False),
                             ("1", True), (" off\n", False), ("On", True)]:  # fmt: skip
        answer = await commands.send("system/detection", payload)
        assert answer["ok"] is True and answer["command"] == "system/detection"
        assert answer["result"]["detection_enabled"] is enabled, payload
        assert pipeline.detection_enabled is enabled
        assert "error" not in answer


async def test_a_switch_payload_that_is_neither_on_nor_off_is_refused_and_changes_nothing(
    commands: Commands,
) -> None:
    answer = await commands.send("system/detection", "maybe" * 20)
    assert answer == {
        "command": "system/detection",
        "ok": False,
        "error": {
            "code": "invalid_value",
            "message": f"send ON or OFF, got {('maybe' * 8)!r}",  # the first 40 characters
            "field": "detection_enabled",
        },
    }
    assert commands.parts.pipeline.detection_enabled is True


async def test_the_number_sets_the_sensitivity_and_the_select_the_profile(commands: Commands) -> None:
    answer = await commands.send("system/sensitivity", "75")
    assert answer["result"]["sensitivity"] == 75.0
    # 50 is the configured threshold factor (12, appliance.yaml's default) and each 25 up halves it.
    assert commands.parts.pipeline.detector.settings.threshold_factor == pytest.approx(6.0)
    answer = await commands.send("system/profile", "steady")
    assert answer["ok"] and answer["result"]["profile"] == "steady"
    assert answer["result"]["sensitivity"] == 75.0


async def test_a_sensitivity_that_is_not_a_number_or_out_of_range_is_refused(commands: Commands) -> None:
    assert (await commands.send("system/sensitivity", "loud"))["error"] == {
        "code": "invalid_value",
        "message": "send a number, got 'loud'",
        "field": "sensitivity",
    }
    assert (await commands.send("system/sensitivity", "150"))["error"] == {
        "code": "refused",
        "message": "must be between 0 and 100, got 150",
        "field": "sensitivity",
    }
    assert (await commands.send("system/profile", "loud"))["error"] == {
        "code": "refused",
        "message": "must be one of balanced, responsive, steady, got 'loud'",
        "field": "profile",
    }


async def test_the_button_starts_a_calibration(commands: Commands) -> None:
    answer = await commands.send("system/calibrate", "PRESS")
    assert answer["ok"] is True
    result = answer["result"]
    # The controls' state as the defaults leave it: a silent source has no links to calibrate.
    assert {k: v for k, v in result.items() if k != "timestamp"} == {
        "detection_enabled": True, "sensitivity": 50.0, "profile": "balanced", "calibrating": False,
        "calibrated_links": 0, "links": 0,
    }  # fmt: skip
    assert isinstance(result["timestamp"], float)


async def test_restart_is_answered_before_the_appliance_stops(commands: Commands) -> None:
    asked: list[str] = []
    restartable = await commands.parts.controls(lambda: asked.append("restart"))
    answer = answer_of(await handler(restartable).handle("system/restart", b"PRESS"), "system/restart")
    assert answer == {"command": "system/restart", "ok": True, "result": {"restarting": True}}
    assert asked == ["restart"]
    # An appliance not started by 'invispose run' (a test, a development server) cannot restart itself.
    assert (await commands.send("system/restart", "PRESS"))["error"] == {
        "code": "refused",
        "field": "restart",
        "message": "only an appliance started with 'invispose run' can restart itself",
    }


async def test_a_zone_is_created_from_its_json_with_the_rest_apis_validation(commands: Commands) -> None:
    answer = await commands.send("zone/hall/configure", json.dumps(HALL))
    assert answer["ok"] is True
    assert answer["result"]["id"] == "hall" and answer["result"]["polygon"] == HALL["polygon"]
    assert [z.id for z in commands.parts.live_config.zones if z.id == "hall"] == ["hall"]
    outside = await commands.send(
        "zone/hall/configure", json.dumps({**HALL, "polygon": [[9, 9], [9, 8], [8, 8]]})
    )
    assert outside["error"]["code"] == "refused" and "outside the room" in outside["error"]["message"]
    bad_id = await commands.send("zone/Hall!/configure", json.dumps(HALL))
    assert bad_id["error"]["code"] == "refused" and bad_id["error"]["field"] == "id"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            "{not json",
            "not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        ),
        ("[1, 2]", 'send the zone as a JSON object: {"name": ..., "polygon": [[x, y], ...]}'),
    ],
)
async def test_a_zone_that_is_not_a_json_object_is_refused(
    commands: Commands, payload: str, message: str
) -> None:
    answer = await commands.send("zone/hall/configure", payload)
    assert answer["error"] == {"code": "bad_json", "message": message}


@pytest.mark.parametrize(
    "name", ["system/dance", "zone/hall", "zone//configure", "zone/hall/remove", "x/hall/configure"]
)
async def test_an_unknown_command_is_answered_with_the_commands_there_are(
    commands: Commands, name: str
) -> None:
    answer = await commands.send(name, "PRESS")
    assert answer == {
        "command": name,
        "ok": False,
        "error": {
            "code": "unknown_command",
            "message": f"no command {name!r}",
            "known": [
                "system/detection", "system/sensitivity", "system/profile", "system/calibrate",
                "system/restart", "zone/<zone>/configure",
            ],
        },
    }  # fmt: skip


async def test_payloads_that_are_not_text_or_too_large_are_refused(commands: Commands) -> None:
    assert (await commands.send("system/detection", b"\xff\xfe"))["error"] == {
        "code": "bad_payload",
        "message": "the payload is not UTF-8 text",
    }
    assert (await commands.send("system/profile", b"s" * 65_537))["error"] == {
        "code": "bad_payload",
        "message": "a command is at most 65536 bytes",
    }
    # 64 KiB exactly is still a command (and is refused for what it says, not for its size).
    assert (await commands.send("system/profile", b"s" * 65_536))["error"]["code"] == "refused"


async def test_counts_of_commands_handled_and_refused(commands: Commands) -> None:
    await commands.send("system/detection", "ON")
    await commands.send("system/detection", "maybe")
    answer = answer_of(commands.handler.refuse_retained("system/detection"), "system/detection")
    assert answer["error"] == {
        "code": "refused",
        "message": "a retained command is not run (it would run again on every reconnect): publish commands "
        "without the retain flag, and clear this one by publishing an empty retained message",
    }
    assert (commands.handler.handled, commands.handler.refused) == (3, 2)


async def test_a_control_that_fails_is_answered_and_logged_and_the_next_command_still_runs(
    commands: Commands, caplog: pytest.LogCaptureFixture
) -> None:
    # The settings can no longer be saved (as with a database file damaged under the appliance).
    await commands.parts.store.database.execute("DROP TABLE settings")
    with caplog.at_level(logging.ERROR, logger="appliance.integrations.mqtt.commands"):
        answer = await commands.send("system/detection", "OFF")
    assert answer["error"]["code"] == "failed"
    assert answer["error"]["message"] == "OperationalError: no such table: settings"
    [logged] = caplog.records
    assert (logged.getMessage(), logged.exc_info is not None) == ("mqtt command failed", True)
    assert logged.fields == {"command": "system/detection"}  # type: ignore[attr-defined]
    assert (await commands.send("system/sensitivity", "x" * 50))["error"]["message"] == (
        f"send a number, got {'x' * 40!r}"
    )
