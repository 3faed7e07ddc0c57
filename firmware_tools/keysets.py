"""Which NVS keys each firmware reads, and the checks a node's settings must pass before any are written.

- ``esp-csi``: the ``invispose`` namespace, documented in docs/node-nvs.md for authors of firmware built on
  Espressif's esp-csi examples. Those examples take Wi-Fi and everything else from menuconfig (and keep
  Wi-Fi in RAM), so a firmware reads these keys once its author adds the few lines the page shows.
- ``ruview``: RuView's ``esp32-csi-node`` firmware (``main/nvs_config.c``) reads namespace ``csi_cfg``:
  ``ssid``, ``password``, ``target_ip`` (dotted IPv4), ``target_port`` (u16), ``node_id`` (u8) and
  ``csi_channel`` (u8). It has no rate key (it sends at most 50 frames/s).
- ``espectre``: ESPectre is an ESPHome component. ESPHome keeps Wi-Fi credentials in its own preference
  store under hashed keys, so there is nothing to write into NVS; its example configs enable Improv Serial,
  which ``provision --improv`` speaks.
"""

from __future__ import annotations

import ipaddress
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from firmware_tools.nvs import NvsEntry, NvsError

INVISPOSE_NAMESPACE: Final = "invispose"
RUVIEW_NAMESPACE: Final = "csi_cfg"
MAX_SSID_BYTES: Final = 32
MAX_RATE_HZ: Final = 1000


class SettingsError(ValueError):
    """A node setting that no firmware could use; says which and why."""


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """What a node needs to send CSI to the appliance. ``ssid``/``password`` are None with --keep-wifi."""

    ssid: str | None
    password: str | None
    sink_host: str
    sink_port: int
    node_id: int
    channel: int | None = None
    rate_hz: int | None = None

    def __post_init__(self) -> None:
        if self.ssid is not None:
            check_wifi(self.ssid, self.password or "")
        if not self.sink_host:
            raise SettingsError("the sink host is empty")
        if not 1 <= self.sink_port <= 0xFFFF:
            raise SettingsError(f"sink port {self.sink_port} is outside 1..65535")
        if not 0 <= self.node_id <= 0xFF:
            raise SettingsError(f"node id {self.node_id} is outside 0..255 (firmware store it in one byte)")
        if self.channel is not None and not (1 <= self.channel <= 14 or 36 <= self.channel <= 177):
            raise SettingsError(
                f"channel {self.channel} is neither a 2.4 GHz (1-14) nor a 5 GHz (36-177) one"
            )
        if self.rate_hz is not None and not 1 <= self.rate_hz <= MAX_RATE_HZ:
            raise SettingsError(f"rate {self.rate_hz} Hz is outside 1..{MAX_RATE_HZ}")


def check_wifi(ssid: str, password: str) -> None:
    size = len(ssid.encode("utf-8"))
    if not 1 <= size <= MAX_SSID_BYTES:
        raise SettingsError(f"the SSID is {size} bytes long; Wi-Fi allows 1 to {MAX_SSID_BYTES} bytes")
    if not password:
        return
    if len(password) == 64:
        if not all(c in string.hexdigits for c in password):
            raise SettingsError("a 64-character password must be the hex PSK; a passphrase has 8 to 63")
    elif not 8 <= len(password) <= 63 or not password.isascii():
        raise SettingsError(
            f"a WPA2 passphrase has 8 to 63 ASCII characters, this one has {len(password)}; "
            "an open network has none (--password '')"
        )


@dataclass(frozen=True, slots=True)
class KeySet:
    name: str
    namespace: str | None  # None: the firmware reads nothing from NVS
    wifi_keys: tuple[str, str]
    summary: str
    entries: Callable[[NodeSettings], list[NvsEntry]]


def _invispose_entries(s: NodeSettings) -> list[NvsEntry]:
    ns = INVISPOSE_NAMESPACE
    out = []
    if s.ssid is not None:
        out += [NvsEntry(ns, "ssid", "string", s.ssid), NvsEntry(ns, "password", "string", s.password or "")]
    out += [
        NvsEntry(ns, "sink_host", "string", s.sink_host),
        NvsEntry(ns, "sink_port", "u16", s.sink_port),
        NvsEntry(ns, "node_id", "u8", s.node_id),
    ]
    if s.channel is not None:
        out.append(NvsEntry(ns, "channel", "u8", s.channel))
    if s.rate_hz is not None:
        out.append(NvsEntry(ns, "rate_hz", "u16", s.rate_hz))
    return out


def _ruview_entries(s: NodeSettings) -> list[NvsEntry]:
    try:
        address = ipaddress.ip_address(s.sink_host)
    except ValueError:
        address = None
    if address is None or address.version != 4:
        raise SettingsError(
            f"RuView's firmware needs the sink as a dotted IPv4 address (its target_ip), not {s.sink_host!r}"
        )
    if s.rate_hz is not None:
        raise SettingsError(
            "RuView's firmware has no rate setting (it sends at most 50 frames/s); drop --rate"
        )
    ns = RUVIEW_NAMESPACE
    out = []
    if s.ssid is not None:
        out += [NvsEntry(ns, "ssid", "string", s.ssid), NvsEntry(ns, "password", "string", s.password or "")]
    out += [
        NvsEntry(ns, "target_ip", "string", s.sink_host),
        NvsEntry(ns, "target_port", "u16", s.sink_port),
        NvsEntry(ns, "node_id", "u8", s.node_id),
    ]
    if s.channel is not None:
        out.append(NvsEntry(ns, "csi_channel", "u8", s.channel))
    return out


def _no_entries(_s: NodeSettings) -> list[NvsEntry]:
    raise SettingsError(
        "ESPectre is built on ESPHome, which keeps Wi-Fi settings in its own store rather than NVS keys: "
        "provision it with --improv (its example configs enable improv_serial)"
    )


KEY_SETS: Final[dict[str, KeySet]] = {
    "esp-csi": KeySet(
        "esp-csi",
        INVISPOSE_NAMESPACE,
        ("ssid", "password"),
        "namespace 'invispose' (docs/node-nvs.md), for firmware built on esp-csi",
        _invispose_entries,
    ),
    "ruview": KeySet(
        "ruview", RUVIEW_NAMESPACE, ("ssid", "password"), "RuView's namespace 'csi_cfg'", _ruview_entries
    ),
    "espectre": KeySet("espectre", None, ("", ""), "none: ESPHome-based, use --improv", _no_entries),
}


def key_set(name: str) -> KeySet:
    try:
        return KEY_SETS[name]
    except KeyError:
        raise SettingsError(f"unknown firmware key set {name!r}; known: {', '.join(KEY_SETS)}") from None


def parse_extra(text: str, namespace: str | None) -> NvsEntry:
    """``KEY=TYPE:VALUE`` (``tdm_slot=u8:1``, ``zone_name=string:hall``) in the key set's namespace."""
    if namespace is None:
        raise SettingsError("this firmware reads no NVS keys, so --set has nowhere to go")
    key, sep, typed = text.partition("=")
    vtype, sep2, raw = typed.partition(":")
    if not sep or not sep2:
        raise SettingsError(f"--set {text!r}: write KEY=TYPE:VALUE, e.g. tdm_slot=u8:1")
    try:
        value: int | str | bytes
        if vtype == "string":
            value = raw
        elif vtype == "blob":
            value = bytes.fromhex(raw)
        else:
            value = int(raw, 0)
        return NvsEntry(namespace, key, vtype, value)
    except (ValueError, NvsError) as exc:
        raise SettingsError(f"--set {text!r}: {exc}") from exc
