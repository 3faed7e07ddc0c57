"""Running as a Home Assistant add-on (an "app" in Home Assistant 2026.2 on): its options, and the broker
of the Supervisor's MQTT service.

The Supervisor writes the options the user set on the add-on's page to ``/data/options.json``, maps the
add-on's own config folder at ``/config`` (where ``appliance.yaml`` lives, editable like any file there),
and gives the add-on a token (``$SUPERVISOR_TOKEN``) for its API at ``http://supervisor``. ``invispose
addon`` turns these into overrides on top of the user's ``appliance.yaml``:

- ``data_dir`` is ``/data`` (kept in the add-on's backups), the log level is the option's;
- ingress: requests from the Supervisor's proxy (172.30.32.2) are Home Assistant users, with the
  ``ingress_role`` option's rights;
- MQTT: with the ``mqtt`` option on and no broker named in ``appliance.yaml`` (``mqtt.host``), the broker
  the Supervisor's MQTT service announces (the Mosquitto add-on: host, port, TLS and an account made for
  this add-on); with it off, no MQTT.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from appliance.config import AppConfig

log = logging.getLogger(__name__)

OPTIONS_FILE = Path("/data/options.json")
DATA_DIR = Path("/data")
SUPERVISOR_URL = "http://supervisor"
# The Supervisor's address on its network: where ingress requests come from.
INGRESS_PROXY = "172.30.32.2"
_TIMEOUT_S = 10.0


class AddonError(Exception):
    """The add-on cannot start as configured; the message says what to change."""


class AddonOptions(BaseModel):
    """``/data/options.json``: the options of ``addons/invispose/config.yaml`` (its ``schema``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="How much is logged.")
    mqtt: bool = Field(True, description="Publish to MQTT, with Home Assistant discovery.")
    ingress_role: Literal["admin", "viewer"] = Field(
        "admin", description="What Home Assistant users may do in the panel."
    )


@dataclass(frozen=True, slots=True)
class BrokerService:
    """What the Supervisor's MQTT service announces (``GET /services/mqtt``)."""

    host: str
    port: int
    ssl: bool
    username: str | None
    password: str | None


def read_options(path: Path) -> AddonOptions:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AddonError(f"{path} does not exist: is this running as a Home Assistant add-on?") from None
    except (OSError, ValueError) as exc:
        raise AddonError(f"{path} cannot be read: {exc}") from None
    try:
        return AddonOptions.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg']}" for e in exc.errors()
        )
        raise AddonError(f"{path}: {problems}") from None


async def supervisor_mqtt(base_url: str, token: str) -> BrokerService | None:
    """The broker the Supervisor's MQTT service names, or None when no add-on provides one."""
    url = f"{base_url.rstrip('/')}/services/mqtt"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=_TIMEOUT_S)) as session,
            session.get(url, headers={"Authorization": f"Bearer {token}"}) as answer,
        ):
            body = await answer.json(content_type=None)
            status = answer.status
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise AddonError(f"the Supervisor did not answer at {url}: {exc}") from None
    message = body.get("message", "") if isinstance(body, dict) else ""
    if status == 400:
        # The Supervisor's answer when no add-on provides the service ("Service not enabled").
        log.warning("the Supervisor has no MQTT broker", extra={"fields": {"supervisor": message}})
        return None
    if status in (401, 403):
        raise AddonError(
            f"the Supervisor refused the MQTT service ({status}: {message}); the add-on's config.yaml must "
            "list services: [mqtt:want]"
        )
    data = body.get("data") if isinstance(body, dict) else None
    if status != 200 or not isinstance(data, dict):
        raise AddonError(f"the Supervisor's MQTT service answered {status}: {message or body!r}")
    try:
        return BrokerService(
            host=str(data["host"]),
            port=int(data["port"]),
            ssl=bool(data.get("ssl", False)),
            username=data.get("username"),
            password=data.get("password"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise AddonError(f"the Supervisor's MQTT service answered without a usable broker: {exc}") from None


def names_a_broker(config: AppConfig) -> bool:
    """Whether the user's appliance.yaml names an MQTT broker itself (then the Supervisor's is not asked)."""
    return config.mqtt.host is not None


def overrides(options: AddonOptions, broker: BrokerService | None, data_dir: Path) -> dict[str, Any]:
    """The add-on's settings on top of appliance.yaml (dotted keys, as ``load_config`` takes them)."""
    result: dict[str, Any] = {
        "data_dir": str(data_dir),
        "server.log_level": options.log_level,
        "auth.ingress_proxy": INGRESS_PROXY,
        "auth.ingress_role": options.ingress_role,
    }
    if not options.mqtt:
        result["mqtt.enabled"] = False
    elif broker is not None:
        result.update(
            {
                "mqtt.enabled": True,
                "mqtt.host": broker.host,
                "mqtt.port": broker.port,
                "mqtt.username": broker.username,
                "mqtt.password": broker.password,
                "mqtt.tls": {} if broker.ssl else None,
            }
        )
    return result
