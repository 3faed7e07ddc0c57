"""The ``mqtt:`` section of the configuration, and the appliance's stable MQTT device id."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, FilePath, SecretStr, model_validator

# Home Assistant's discovery topic matcher allows these characters in a device id.
DEVICE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# A topic prefix: levels of safe characters, no wildcards, no empty level.
_TOPIC_PREFIX_PATTERN = r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$"
DEVICE_ID_FILE = "mqtt_device_id"
DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883


class MqttTlsSettings(BaseModel):
    """``mqtt.tls``: connect over TLS. Without ``ca`` the system's trusted CAs verify the broker."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca: FilePath | None = Field(None, description="PEM file of the CA that signed the broker's certificate.")
    cert: FilePath | None = Field(None, description="Client certificate (PEM), for brokers that ask for one.")
    key: FilePath | None = Field(
        None, description="Private key (PEM, no passphrase) of the client certificate."
    )
    insecure: bool = Field(
        False,
        description="Accept any certificate and host name (encrypts but does not authenticate the broker: "
        "only for a broker you reach over a network you trust).",
    )

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> MqttTlsSettings:
        if (self.cert is None) != (self.key is None):
            raise ValueError("tls: give both cert and key, or neither")
        return self


class MqttSettings(BaseModel):
    """The ``mqtt:`` section: the broker, the topics, and Home Assistant discovery."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="Publish to an MQTT broker, with Home Assistant discovery.")
    host: str | None = Field(
        None,
        min_length=1,
        max_length=253,
        description="Broker host name or address. Empty: find a broker over mDNS (_mqtt._tcp).",
    )
    port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description=f"Broker port (default {DEFAULT_PORT}; {DEFAULT_TLS_PORT} with tls).",
    )
    username: str | None = Field(
        None, min_length=1, description="Broker account; its ACL is what secures commands."
    )
    password: SecretStr | None = Field(None, description="Password of the broker account (use !secret).")
    tls: MqttTlsSettings | None = Field(None, description="Connect over TLS (ca, cert, key, insecure).")
    client_id: str | None = Field(
        None, min_length=1, max_length=64, description="MQTT client id (default: invispose-<device_id>)."
    )
    topic_prefix: str = Field(
        "invispose",
        pattern=_TOPIC_PREFIX_PATTERN,
        description="Topics are <topic_prefix>/<device_id>/... (no wildcards, no leading or trailing /).",
    )
    discovery_prefix: str = Field(
        "homeassistant",
        pattern=_TOPIC_PREFIX_PATTERN,
        description="Home Assistant's discovery prefix (its MQTT integration's setting).",
    )
    device_id: str | None = Field(
        None,
        pattern=DEVICE_ID_PATTERN,
        description="This appliance's id in topics and in Home Assistant. Empty: one is made on first start "
        f"and kept in the data directory ({DEVICE_ID_FILE}), so entity ids survive restarts.",
    )
    keepalive: int = Field(
        30,
        ge=5,
        le=3600,
        description="Seconds between keepalives; the broker declares the appliance offline (last will) "
        "within 1.5 times this after it vanishes without closing its connection.",
    )
    timeout_s: float = Field(
        10.0, gt=0, le=120, description="Longest wait for the broker to accept a connection or a message."
    )
    reconnect_min_s: float = Field(1.0, gt=0, le=600, description="First wait before reconnecting.")
    reconnect_max_s: float = Field(
        60.0, gt=0, le=3600, description="Longest wait between reconnection attempts (with random jitter)."
    )
    queue_messages: int = Field(
        1000,
        ge=10,
        le=1_000_000,
        description="Events (qos 1/2) kept for the broker while it is slow or away; beyond this the "
        "oldest are dropped and counted. Readings never queue: only each topic's latest is sent.",
    )
    fall_hold_s: int = Field(
        300, ge=1, le=86_400, description="Seconds Home Assistant's fall sensor stays on after a fall."
    )

    @model_validator(mode="after")
    def _reconnect_range(self) -> MqttSettings:
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s must not exceed reconnect_max_s")
        return self

    @property
    def broker_port(self) -> int:
        if self.port is not None:
            return self.port
        return DEFAULT_TLS_PORT if self.tls is not None else DEFAULT_PORT


def saved_device_id(settings: MqttSettings, data_dir: Path) -> str | None:
    """The configured device id, else the one kept in ``data_dir``; None if there is neither yet."""
    if settings.device_id is not None:
        return settings.device_id
    path = data_dir / DEVICE_ID_FILE
    try:
        saved = path.read_text().strip()
    except FileNotFoundError:
        return None
    if not re.fullmatch(DEVICE_ID_PATTERN, saved):
        raise ValueError(
            f"{path} holds {saved[:80]!r}, which is not a device id ([A-Za-z0-9_-], at most 64): "
            "restore it, or delete it to make a new one (Home Assistant then sees a new device)"
        )
    return saved


def resolve_device_id(settings: MqttSettings, data_dir: Path) -> str:
    """The device id in use: configured, kept in ``data_dir``, or made now and kept there."""
    found = saved_device_id(settings, data_dir)
    if found is not None:
        return found
    made = f"invispose_{uuid.uuid4().hex[:8]}"
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / DEVICE_ID_FILE).write_text(made + "\n")
    return made
