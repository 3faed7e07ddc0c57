"""The appliance's YAML configuration: load, substitute, validate, and explain what is wrong.

Validation happens here, at the door, so the rest of the code trusts its inputs. A file that fails produces
one ``ConfigError`` listing every problem as ``file:line: key.path: what is wrong (what is allowed)``, and
no part of the service starts on it.

Two substitutions run before validation: ``${NAME}`` / ``${NAME:-default}`` inside any string, from the
environment, and ``!secret name``, looked up in ``secrets.yaml`` beside the config file (Home Assistant's
convention), so passwords and tokens stay out of the main file.
"""

from __future__ import annotations

import os
import re
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyAddress,
    IPvAnyNetwork,
    ValidationError,
    model_validator,
)

from appliance.csi.prep import PrepSettings
from appliance.csi.simulator import NodeSpec, RoomSpec
from appliance.integrations.history import HistorySettings
from appliance.integrations.mdns import MdnsSettings
from appliance.integrations.mqtt import MqttSettings
from appliance.integrations.reports import ReportSettings
from appliance.integrations.webhooks.settings import WebhookSettings
from appliance.integrations.websocket import WebSocketSettings
from appliance.pose.estimator import ModelSettings
from appliance.pose.motion import MotionSettings
from appliance.pose.scene import SceneSettings

SECRETS_FILE = "secrets.yaml"
_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

# --------------------------------------------------------------------------------------------------------
# Errors


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path or '(top level)'}: {self.message}"


class ConfigError(Exception):
    """Everything wrong with one configuration file."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = tuple(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


# --------------------------------------------------------------------------------------------------------
# Models: every section rejects unknown keys; every field says what it is for.


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Section):
    host: str = Field("0.0.0.0", description="Address the web UI and API listen on.")
    port: int = Field(8099, ge=1, le=65535, description="TCP port of the web UI and API.")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log verbosity.")
    log_format: Literal["text", "json"] = Field(
        "text", description="text: key=value lines for people; json: one object per line for collectors."
    )


class NodeConfig(_Section):
    id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,32}$", description="Stable name of the node.")
    kind: Literal["esp32", "atheros"] = Field(description="Hardware family; sets the CSI shape.")
    role: Literal["tx", "rx"] = Field(description="tx sends the packets, rx measures CSI on them.")
    position: tuple[float, float, float] = Field(description="[x, y, z] in metres from the room's corner.")
    antennas: int = Field(1, ge=1, le=4, description="Antennas used (ESP32: 1; Atheros: rx 3, tx 2).")
    antenna_spacing_m: float = Field(0.0613, gt=0, le=0.5, description="Spacing of an antenna array.")


class RoomConfig(_Section):
    name: str = Field("Room", description="Shown in the UI and in Home Assistant.")
    width_m: float = Field(gt=0.5, le=50, description="Extent along x.")
    depth_m: float = Field(gt=0.5, le=50, description="Extent along y.")
    height_m: float = Field(2.7, gt=1.5, le=10, description="Floor to ceiling.")
    channel_mhz: int = Field(2437, ge=2412, le=5885, description="WiFi channel centre frequency.")
    doors: list[tuple[float, float]] = Field(
        default_factory=list, description="Floor points [x, y] on the walls where people enter and leave."
    )
    nodes: list[NodeConfig] = Field(min_length=2, description="CSI nodes and routers, with positions.")

    @model_validator(mode="after")
    def _nodes_fit(self) -> RoomConfig:
        ids = [n.id for n in self.nodes]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"node ids must be unique; repeated: {', '.join(duplicates)}")
        for node in self.nodes:
            x, y, z = node.position
            if not (0 <= x <= self.width_m and 0 <= y <= self.depth_m and 0 <= z <= self.height_m):
                raise ValueError(
                    f"node {node.id!r} at {list(node.position)} is outside the room "
                    f"(0..{self.width_m} x 0..{self.depth_m} x 0..{self.height_m} m)"
                )
        roles = {n.role for n in self.nodes}
        if roles != {"tx", "rx"}:
            raise ValueError("the room needs at least one node with role tx and one with role rx")
        return self

    def to_spec(self) -> RoomSpec:
        return RoomSpec(
            width_m=self.width_m,
            depth_m=self.depth_m,
            height_m=self.height_m,
            channel_mhz=self.channel_mhz,
            doors=tuple(self.doors),
            nodes=tuple(
                NodeSpec(
                    id=n.id,
                    kind=n.kind,
                    role=n.role,
                    position=n.position,
                    antennas=n.antennas,
                    antenna_spacing_m=n.antenna_spacing_m,
                )
                for n in self.nodes
            ),
        )


class SimulatorSourceConfig(_Section):
    type: Literal["simulator"] = Field(description="The built-in simulated room (no hardware needed).")
    name: str = Field("simulated-room", description="Source name shown in status.")
    scenario: Literal["demo"] = Field(
        "demo", description="demo: people walk in, sit, lie down and leave, in a loop."
    )
    seed: int = Field(7, description="Same seed, same room and same people, packet for packet.")
    packet_rate_hz: float = Field(100.0, gt=0, le=1000, description="Packets per second on every link.")
    snr_db: float = Field(30.0, ge=0, le=60, description="Signal-to-noise ratio of the simulated radios.")
    impairments: bool = Field(
        True, description="Simulate real hardware faults: phase offsets, AGC steps, loss, jitter."
    )
    realtime: bool = Field(True, description="Pace frames in real time (false: as fast as possible).")


_LINK_ID = r"^[A-Za-z0-9_.:-]{1,64}$"


class Esp32SerialSourceConfig(_Section):
    type: Literal["esp32_serial"] = Field(description="An ESP32 running esp-csi on a serial port (USB).")
    name: str | None = Field(None, description="Source name shown in status (default esp32-serial:<url>).")
    url: str = Field(
        description="Port: /dev/ttyUSB0, /dev/serial/by-id/..., socket://host:port, rfc2217://host:port."
    )
    baudrate: int = Field(
        921600, ge=9600, le=4_000_000, description="Serial speed; esp-csi prints at 921600."
    )
    link: str | None = Field(
        None,
        pattern=_LINK_ID,
        description="Link id for every frame of this port, e.g. ap-rx1. Unset: from the line's MAC "
        "(mac_links, else esp32-<mac>).",
    )
    mac_links: dict[str, str] = Field(
        default_factory=dict, description="Transmitter MAC -> link id, used when link is unset."
    )
    reconnect_max_s: float = Field(
        10.0, gt=0, le=300, description="Longest wait between attempts to reopen a port that went away."
    )


class Esp32UdpSourceConfig(_Section):
    type: Literal["esp32_udp"] = Field(
        description="ESP32 nodes sending ADR-018, Micro-ESPectre or CSI_DATA datagrams."
    )
    name: str = Field("esp32-udp", description="Source name shown in status.")
    host: str = Field("0.0.0.0", description="Address to listen on.")
    port: int = Field(
        5566, ge=1, le=65535, description="UDP port the nodes send to (Micro-ESPectre's default is 5001)."
    )
    links: dict[str, str] = Field(
        default_factory=dict,
        description="ADR-018 node id, sender IP or CSI_DATA MAC -> link id. Unset: esp32-<node id> or "
        "esp32-<sender IP>.",
    )
    queue_frames: int = Field(
        8192,
        ge=16,
        le=1_000_000,
        description="Frames held for a slow pipeline before the oldest are dropped.",
    )


class AtherosTcpSourceConfig(_Section):
    type: Literal["atheros_tcp"] = Field(description="Atheros CSI Tool routers streaming recv_csi over TCP.")
    name: str = Field("atheros-tcp", description="Source name shown in status.")
    host: str = Field("0.0.0.0", description="Address to listen on.")
    port: int = Field(
        5567,
        ge=1,
        le=65535,
        description="TCP port; on the router: recv_csi /proc/self/fd/3 3>&1 >/dev/null | nc BOX 5567",
    )
    links: dict[str, str] = Field(
        default_factory=dict, description="Router IP -> link id. Unset: atheros-<router ip>."
    )
    max_connections: int = Field(
        16,
        ge=1,
        le=1024,
        description="Router streams open at once; a connection beyond this is closed at once (logged).",
    )


class ReplaySourceConfig(_Section):
    type: Literal["replay"] = Field(description="Play a recording or capture file as if it were live.")
    name: str | None = Field(None, description="Source name shown in status (default replay:<file>).")
    path: Path = Field(description="Recording or capture file; relative paths are taken from data_dir.")
    format: str = Field("auto", description="File format (see `invispose csi dump --help`); auto detects it.")
    speed: float | None = Field(
        1.0, gt=0, le=1000, description="Times real time; null plays as fast as possible."
    )
    loop: bool = Field(True, description="Start again at the end.")


SourceConfig = Annotated[
    SimulatorSourceConfig
    | Esp32SerialSourceConfig
    | Esp32UdpSourceConfig
    | AtherosTcpSourceConfig
    | ReplaySourceConfig,
    Field(discriminator="type"),
]


class ZoneConfig(_Section):
    id: str = Field(pattern=r"^[a-z0-9_]{1,32}$", description="Stable id used in topics and events.")
    name: str = Field(description="Shown in the UI.")
    polygon: list[tuple[float, float]] = Field(min_length=3, description="Floor polygon [[x, y], ...].")
    restricted: bool = Field(False, description="Entering raises alert.restricted_zone_breach.")


class PipelineConfig(_Section):
    rate_hz: float = Field(10.0, gt=0, le=50, description="PoseFrames published per second.")
    link_timeout_s: float = Field(
        3.0, gt=0, le=60, description="A link silent this long is down (router.disconnected)."
    )
    status_interval_s: float = Field(
        30.0,
        ge=1,
        le=3600,
        description="The status (topic status, MQTT system/status) is published on every change of a "
        "source or link and at least this often.",
    )


_HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?")
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


class RateLimitConfig(_Section):
    per_minute: int = Field(ge=1, le=100_000, description="Sustained requests per minute (refill rate).")
    burst: int = Field(ge=1, le=10_000, description="Requests allowed at once before the rate applies.")


class RateLimitsConfig(_Section):
    """Token buckets per tier: anonymous per client IP, the other two per token or user."""

    anonymous: RateLimitConfig = Field(
        default_factory=lambda: RateLimitConfig(per_minute=120, burst=60),
        description="Requests without a valid token (UI files, health, login), per client IP.",
    )
    authenticated: RateLimitConfig = Field(
        default_factory=lambda: RateLimitConfig(per_minute=1200, burst=120),
        description="API requests with a valid token, per token (the web UI polls twice a second).",
    )
    streaming: RateLimitConfig = Field(
        default_factory=lambda: RateLimitConfig(per_minute=30, burst=10),
        description="Opening WebSocket and video streams, per token.",
    )


class AuthConfig(_Section):
    """Who may use the API and from where. Every route but health, login, onboarding, the OpenAPI
    document and the web UI's files needs a token; these settings only tune that, never switch it off."""

    jwt_ttl_minutes: int = Field(
        720, ge=5, le=10_080, description="Lifetime of a login (web UI session token), in minutes."
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Extra names this box is reached by (Host header), besides localhost, its hostname, "
        "<hostname>.local, server.host and any IP address; guards against DNS rebinding.",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Web origins (scheme://host[:port]) whose pages may call the API from a browser. "
        "Empty: only the appliance's own UI.",
    )
    rate_limits: RateLimitsConfig = Field(default_factory=RateLimitsConfig)
    login_attempts_per_minute: int = Field(
        5, ge=1, le=100, description="Failed logins per client IP per minute before 429."
    )
    trusted_proxies: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="Reverse proxies (addresses or networks) whose X-Forwarded-For names the client.",
    )
    ingress_proxy: IPvAnyAddress | None = Field(
        None,
        description="Home Assistant's ingress proxy (172.30.32.2 in the add-on): requests from this address "
        "that carry X-Ingress-Path are signed in as the Home Assistant user, without the appliance's own "
        "login. Empty: no ingress; every request needs a token.",
    )
    ingress_role: Literal["admin", "viewer"] = Field(
        "admin",
        description="What Home Assistant users may do through ingress: admin (everything) or viewer (look "
        "and watch streams).",
    )

    @model_validator(mode="after")
    def _hosts_and_origins(self) -> AuthConfig:
        for host in self.allowed_hosts:
            if not _HOST_NAME.fullmatch(host):
                raise ValueError(f"allowed_hosts: {host!r} is not a host name (no scheme, port or path)")
        for origin in self.cors_origins:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(f"cors_origins: {origin!r} is not scheme://host[:port] (no path)")
        return self


class AppConfig(_Section):
    server: ServerConfig = Field(default_factory=ServerConfig)
    data_dir: Path = Field(Path("data"), description="State: database, secrets, recordings.")
    room: RoomConfig
    sources: list[SourceConfig] = Field(min_length=1, description="Where CSI comes from.")
    zones: list[ZoneConfig] = Field(default_factory=list)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    prep: PrepSettings = Field(default_factory=PrepSettings)
    detector: MotionSettings = Field(default_factory=MotionSettings)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    model: ModelSettings = Field(default_factory=ModelSettings)
    scene: SceneSettings = Field(default_factory=SceneSettings)
    history: HistorySettings = Field(default_factory=HistorySettings)
    reports: ReportSettings = Field(default_factory=ReportSettings)
    websocket: WebSocketSettings = Field(default_factory=WebSocketSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    mdns: MdnsSettings = Field(default_factory=MdnsSettings)

    @model_validator(mode="after")
    def _zones_fit(self) -> AppConfig:
        ids = [z.id for z in self.zones]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"zone ids must be unique; repeated: {', '.join(duplicates)}")
        width, depth = self.room.width_m, self.room.depth_m
        for index, zone in enumerate(self.zones):
            for x, y in zone.polygon:
                if not (0 <= x <= width and 0 <= y <= depth):
                    raise ValueError(
                        f"zones[{index}] ({zone.id}): corner [{x}, {y}] is outside the room "
                        f"(0..{width} x 0..{depth} m)"
                    )
        return self

    @model_validator(mode="after")
    def _sources_can_all_start(self) -> AppConfig:
        """Catch at the door what would otherwise leave a source dead at start-up."""
        listeners: dict[tuple[str, int], str] = {}
        serial_urls: set[str] = set()
        for index, source in enumerate(self.sources):
            where = f"sources[{index}] ({source.type})"
            if isinstance(source, Esp32UdpSourceConfig | AtherosTcpSourceConfig):
                protocol = "udp" if isinstance(source, Esp32UdpSourceConfig) else "tcp"
                key = (protocol, source.port)
                if key in listeners:
                    raise ValueError(
                        f"{where}: {protocol} port {source.port} is already used by {listeners[key]}"
                    )
                listeners[key] = where
            elif isinstance(source, Esp32SerialSourceConfig):
                if source.url in serial_urls:
                    raise ValueError(f"{where}: serial port {source.url} is listed twice")
                serial_urls.add(source.url)
            elif isinstance(source, ReplaySourceConfig):
                path = source.path if source.path.is_absolute() else self.data_dir / source.path
                if not path.is_file():
                    raise ValueError(
                        f"{where}: {path} does not exist (relative paths are taken from data_dir)"
                    )
        return self


# --------------------------------------------------------------------------------------------------------
# Loading


class _Composer:
    """Turns a composed YAML node tree into plain data while noting the line of every key and item."""

    def __init__(self, file: Path, secrets: Mapping[str, Any] | None, secrets_file: Path) -> None:
        self.file = file
        self.secrets = secrets
        self.secrets_file = secrets_file
        self.lines: dict[tuple[str | int, ...], int] = {}
        self.issues: list[ConfigIssue] = []
        self._scalars = yaml.SafeLoader("")

    def issue(self, node: yaml.Node, path: tuple[str | int, ...], message: str) -> None:
        self.issues.append(ConfigIssue(str(self.file), node.start_mark.line + 1, _dotted(path), message))

    def convert(self, node: yaml.Node, path: tuple[str | int, ...]) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self._scalars.construct_object(key_node)
                if not isinstance(key, str):
                    self.issue(key_node, path, f"keys must be text, got {key!r}")
                    continue
                if key in result:
                    self.issue(key_node, (*path, key), "this key appears twice in the same section")
                    continue
                self.lines[(*path, key)] = key_node.start_mark.line + 1
                result[key] = self.convert(value_node, (*path, key))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        if node.tag == "!secret":
            return self._secret(node, path)
        if node.tag.startswith("!"):
            self.issue(node, path, f"unknown tag {node.tag}; the only tag understood is !secret")
            return None
        value = self._scalars.construct_object(node)
        if isinstance(value, str) and "${" in value:
            return self._substitute_env(node, path, value)
        return value

    def _secret(self, node: yaml.ScalarNode, path: tuple[str | int, ...]) -> Any:
        name = node.value
        if self.secrets is None:
            self.issue(node, path, f"!secret {name} needs {self.secrets_file}, which does not exist")
            return None
        if name not in self.secrets:
            known = ", ".join(sorted(self.secrets)) or "none"
            self.issue(node, path, f"secret {name!r} is not in {self.secrets_file} (it has: {known})")
            return None
        return self.secrets[name]

    def _substitute_env(self, node: yaml.ScalarNode, path: tuple[str | int, ...], text: str) -> str:
        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            value = os.environ.get(name)
            if value is not None:
                return value
            if default is not None:
                return default
            self.issue(
                node, path, f"environment variable {name} is not set (set it, or write ${{{name}:-default}})"
            )
            return ""

        return _ENV_PATTERN.sub(replace, text)


def _read_yaml(path: Path) -> yaml.Node | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(str(path), None, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue(str(path), None, "", f"cannot read: {exc}")]) from None
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(
            [ConfigIssue(str(path), line, "", f"not valid YAML: {exc.problem or exc}")]
        ) from None


def _load_secrets(secrets_file: Path) -> dict[str, Any] | None:
    if not secrets_file.exists():
        return None
    node = _read_yaml(secrets_file)
    if node is None:
        return {}
    composer = _Composer(secrets_file, {}, secrets_file)
    data = composer.convert(node, ())
    if composer.issues:
        raise ConfigError(composer.issues)
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(str(secrets_file), 1, "", "must be a mapping of name: value")])
    return data


def load_config(path: str | Path, *, overrides: Mapping[str, Any] | None = None) -> AppConfig:
    """Read, substitute and validate ``path``; raise ``ConfigError`` with every problem found.

    ``overrides`` maps dotted key paths (``"server.port"``) to values given on the command line.
    """
    file = Path(path)
    secrets_file = file.parent / SECRETS_FILE
    node = _read_yaml(file)
    if node is None:
        raise ConfigError([ConfigIssue(str(file), None, "", "the file is empty")])
    composer = _Composer(file, _load_secrets(secrets_file), secrets_file)
    data = composer.convert(node, ())
    if composer.issues:
        raise ConfigError(composer.issues)
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(str(file), 1, "", "the top level must be a mapping of sections")])
    for dotted, value in (overrides or {}).items():
        _set_dotted(data, dotted, value)
    try:
        return AppConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, data, composer.lines, str(file))) from None


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    target = data
    for part in parents:
        child = target.setdefault(part, {})
        if not isinstance(child, dict):
            child = target[part] = {}
        target = child
    target[last] = value


# --------------------------------------------------------------------------------------------------------
# Explaining validation errors in the user's terms


def _explain(
    exc: ValidationError, data: Any, lines: Mapping[tuple[str | int, ...], int], file: str
) -> list[ConfigIssue]:
    issues = []
    for error in exc.errors():
        path = _data_path(data, error["loc"])
        line = _nearest_line(lines, path)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            allowed = _allowed_keys(error["loc"][:-1])
            message = f"unknown key; allowed here: {', '.join(allowed)}" if allowed else "unknown key"
        elif error["type"] == "missing":
            message = "required key is missing"
        elif error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            path = (*path, "type")
            line = _nearest_line(lines, path)
            expected = error.get("ctx", {}).get("expected_tags", "")
            message = f"unknown or missing type; allowed: {expected}"
        issues.append(ConfigIssue(file, line, _dotted(path), message))
    return issues


def _data_path(data: Any, loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """Drop the parts of a pydantic location that are not in the data (union tags, model names)."""
    path: list[str | int] = []
    node = data
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            if isinstance(node, dict) and node.get("type") == part:
                continue
            node = None
        path.append(part)
    return tuple(path)


def _nearest_line(lines: Mapping[tuple[str | int, ...], int], path: tuple[str | int, ...]) -> int | None:
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def _allowed_keys(loc: tuple[str | int, ...]) -> list[str]:
    """The keys of the model at a pydantic location; a union member is chosen by the tag in ``loc``."""
    tp: Any = AppConfig
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(part, int):
            args = get_args(tp)
            tp = args[0] if args else None
        elif isinstance(tp, type) and issubclass(tp, BaseModel):
            if part not in tp.model_fields:
                return []
            tp = tp.model_fields[part].annotation
        elif get_origin(tp) in (Union, types.UnionType):
            tagged = [m for m in get_args(tp) if part in get_args(m.model_fields["type"].annotation)]
            if not tagged:
                return []
            tp = tagged[0]
        else:
            return []
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return []


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            tp = members[0] if len(members) == 1 else tp
            if len(members) != 1:
                return tp
        else:
            return tp


def _dotted(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text
