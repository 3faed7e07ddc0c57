"""Builds the hardware and replay sources from plain settings, for the configuration layer to call.

The configuration models live with the rest of the configuration; this keeps the sources free of pydantic
and the composition root free of constructor details: ``build_source(entry.type, entry.model_dump(...))``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from appliance.csi.formats.registry import AUTO
from appliance.csi.sources import CsiSource
from appliance.csi.sources.replay import ReplaySource
from appliance.csi.sources.serial import SerialSource
from appliance.csi.sources.tcp import AtherosTcpSource
from appliance.csi.sources.udp import UdpSource

ESP32_SERIAL: Final = "esp32_serial"
ESP32_UDP: Final = "esp32_udp"
ATHEROS_TCP: Final = "atheros_tcp"
REPLAY: Final = "replay"
SOURCE_TYPES: Final = (ESP32_SERIAL, ESP32_UDP, ATHEROS_TCP, REPLAY)


def _serial(options: Mapping[str, Any]) -> CsiSource:
    return SerialSource(**options)


def _udp(options: Mapping[str, Any]) -> CsiSource:
    return UdpSource(**options)


def _tcp(options: Mapping[str, Any]) -> CsiSource:
    return AtherosTcpSource(**options)


def _replay(options: Mapping[str, Any]) -> CsiSource:
    # The configuration says ``format`` (what users know from ``csi dump --format``); the class, ``fmt``.
    settings = dict(options)
    return ReplaySource(fmt=settings.pop("format", AUTO), **settings)


_BUILDERS: Final[dict[str, Callable[[Mapping[str, Any]], CsiSource]]] = {
    ESP32_SERIAL: _serial,
    ESP32_UDP: _udp,
    ATHEROS_TCP: _tcp,
    REPLAY: _replay,
}


def build_source(
    source_type: str,
    options: Mapping[str, Any],
    *,
    base_dir: Path | None = None,
) -> CsiSource:
    """A source of ``source_type`` (one of ``SOURCE_TYPES``) from its settings.

    ``options`` are the constructor's keyword arguments (the config entry without ``type``).
    A relative
    replay ``path`` is taken from ``base_dir`` (the data directory) when given.
    """
    builder = _BUILDERS.get(source_type)
    if builder is None:
        raise ValueError(f"unknown source type {source_type!r}; known: {', '.join(SOURCE_TYPES)}")
    if source_type == REPLAY and base_dir is not None:
        options = {**options, "path": base_dir / Path(options["path"])}
    return builder(options)
