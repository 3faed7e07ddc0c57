"""Commands over MQTT: ``<base>/command/<name>`` in, one answer on ``<base>/response/<name>`` out.

| command | payload | does |
|---|---|---|
| ``system/detection`` | ``ON`` / ``OFF`` (also ``true``/``false``, ``1``/``0``) | readings on or off |
| ``system/sensitivity`` | a number, 0..100 | the detector's sensitivity |
| ``system/profile`` | ``balanced``, ``responsive`` or ``steady`` | the detector profile |
| ``system/calibrate`` | anything (Home Assistant's button sends ``PRESS``) | learn the empty room again |
| ``system/restart`` | anything | stop cleanly and start again |
| ``zone/<zone>/configure`` | the zone as JSON (``name``, ``polygon``, ``restricted``) | create or replace |

Every command goes through ``contracts.Controls``, the same doors as REST, with the same validation. The
answer (``CommandResponse``) says ``ok`` with the result (the controls' state, or the zone as saved), or
an ``error`` with a code, the field at fault and what is allowed. Bad JSON, unknown commands and refused
values are answered like any other; nothing a client sends stops the sink.

Who may send commands is the broker's business: MQTT does not say who published a message, so the
broker's ACL (only Home Assistant's and this appliance's accounts may write ``<base>/command/#``) is the
security boundary.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from appliance.contracts import ControlError, Controls
from appliance.integrations.mqtt.discovery import (
    CALIBRATE_COMMAND,
    DETECTION_COMMAND,
    PROFILE_COMMAND,
    RESTART_COMMAND,
    SENSITIVITY_COMMAND,
)
from appliance.integrations.mqtt.topics import Publication, Topics

log = logging.getLogger(__name__)

MAX_COMMAND_BYTES = 65_536
ZONE_COMMAND = "zone/<zone>/configure"
KNOWN_COMMANDS = (
    DETECTION_COMMAND,
    SENSITIVITY_COMMAND,
    PROFILE_COMMAND,
    CALIBRATE_COMMAND,
    RESTART_COMMAND,
    ZONE_COMMAND,
)
_TRUE = frozenset({"on", "true", "1"})
_FALSE = frozenset({"off", "false", "0"})

ErrorCode = Literal["bad_payload", "bad_json", "invalid_value", "refused", "unknown_command", "failed"]


class CommandError(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: ErrorCode = Field(
        description="bad_payload: not UTF-8 text, or too large; bad_json: not JSON, or not an object; "
        "invalid_value: not a value of the kind the command takes; refused: the appliance said no (see "
        "field); unknown_command; failed: the appliance could not do it (see its log)"
    )
    message: str
    field: str | None = Field(None, description="the value at fault")
    known: list[str] | None = Field(None, description="the commands there are (unknown_command)")


class CommandResponse(BaseModel):
    """The answer to a command, on ``<base>/response/<command>``."""

    model_config = ConfigDict(extra="forbid")

    command: str = Field(description="the command answered, as in its topic: system/sensitivity")
    ok: bool
    result: dict[str, Any] | None = Field(
        None, description="the controls' state after the command, or the zone as saved"
    )
    error: CommandError | None = None


# Shipped as docs/schemas/mqtt-command-response.schema.json.
PROTOCOL_SCHEMAS: dict[str, type[BaseModel]] = {"mqtt-command-response": CommandResponse}


class RefusedError(Exception):
    """A command that is answered with an error."""

    def __init__(
        self, code: ErrorCode, message: str, field: str | None = None, known: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.error = CommandError(code=code, message=message, field=field, known=known)


class CommandHandler:
    def __init__(self, controls: Controls, topics: Topics) -> None:
        self.controls = controls
        self.topics = topics
        self.handled = 0
        self.refused = 0

    async def handle(self, name: str, payload: bytes) -> Publication:
        """Carry out one command; the answer to publish."""
        self.handled += 1
        try:
            result = await self._run(name, payload)
        except RefusedError as exc:
            return self._refused(name, exc.error)
        return self._answer(CommandResponse(command=name, ok=True, result=result))

    def refuse_retained(self, name: str) -> Publication:
        """The answer to a command the broker kept (retain flag) and replayed on subscribing: it is not run,
        or it would run again on every reconnect."""
        self.handled += 1
        message = (
            "a retained command is not run (it would run again on every reconnect): publish commands "
            "without the retain flag, and clear this one by publishing an empty retained message"
        )
        return self._refused(name, CommandError(code="refused", message=message))

    def _refused(self, name: str, error: CommandError) -> Publication:
        self.refused += 1
        return self._answer(CommandResponse(command=name, ok=False, error=error))

    def _answer(self, response: CommandResponse) -> Publication:
        text = response.model_dump_json(exclude_none=True)
        return Publication(self.topics.response(response.command), text, qos=1, retain=False, reading=False)

    async def _run(self, name: str, payload: bytes) -> dict[str, Any]:
        if len(payload) > MAX_COMMAND_BYTES:
            raise RefusedError("bad_payload", f"a command is at most {MAX_COMMAND_BYTES} bytes")
        try:
            text = payload.decode().strip()
        except UnicodeDecodeError:
            raise RefusedError("bad_payload", "the payload is not UTF-8 text") from None
        action = self._action(name, text)
        try:
            return await action()
        except ControlError as exc:
            raise RefusedError("refused", exc.message, exc.field) from None
        except Exception as exc:
            log.exception("mqtt command failed", extra={"fields": {"command": name}})
            raise RefusedError("failed", f"{type(exc).__name__}: {exc}") from None

    def _action(self, name: str, text: str) -> Callable[[], Awaitable[dict[str, Any]]]:
        controls = self.controls
        if name == DETECTION_COMMAND:
            enabled = _switch(text)
            return lambda: _state(controls.set_detection(enabled))
        if name == SENSITIVITY_COMMAND:
            value = _number(text, "sensitivity")
            return lambda: _state(controls.set_sensitivity(value))
        if name == PROFILE_COMMAND:
            return lambda: _state(controls.set_profile(text))
        if name == CALIBRATE_COMMAND:
            return lambda: _state(controls.recalibrate())
        if name == RESTART_COMMAND:
            return self._restart
        parts = name.split("/")
        if len(parts) == 3 and parts[0] == "zone" and parts[2] == "configure" and parts[1]:
            settings = _json_object(text)
            return lambda: controls.configure_zone(parts[1], settings)
        raise RefusedError("unknown_command", f"no command {name!r}", known=list(KNOWN_COMMANDS))

    async def _restart(self) -> dict[str, Any]:
        # The answer is queued before the appliance stops, and the sink sends what it owes as it stops.
        await self.controls.restart()
        return {"restarting": True}


async def _state(change: Awaitable[Any]) -> dict[str, Any]:
    state = await change
    result: dict[str, Any] = state.to_dict()
    return result


def _switch(text: str) -> bool:
    word = text.lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise RefusedError("invalid_value", f"send ON or OFF, got {text[:40]!r}", "detection_enabled")


def _number(text: str, field: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise RefusedError("invalid_value", f"send a number, got {text[:40]!r}", field) from None


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise RefusedError("bad_json", f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise RefusedError(
            "bad_json", 'send the zone as a JSON object: {"name": ..., "polygon": [[x, y], ...]}'
        )
    return value
