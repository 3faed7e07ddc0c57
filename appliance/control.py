"""``ApplianceControls``: the one implementation of ``contracts.Controls`` that REST, MQTT and the UI use.

Detection on/off, sensitivity and the detector profile are kept in the settings store (they survive a
restart, as a Home Assistant switch is expected to) and applied to the running pipeline; every change,
and every step of a recalibration, is announced on the hub as ``ControlState`` (topic ``controls``).
Zones are configured through the live configuration, with the same validation as the REST API.
``restart`` asks the composition root to stop and start the process again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from appliance.config import ZoneConfig
from appliance.contracts.control import (
    DETECTOR_PROFILES,
    SENSITIVITY_RANGE,
    ControlError,
    ControlState,
    DetectorProfile,
)
from appliance.hub import Hub
from appliance.live_config import ConfigRejectedError, LiveConfig
from appliance.pipeline import Pipeline
from appliance.pose.motion import MotionSettings, tuned
from appliance.store.settings import SettingsStore, overlay

log = logging.getLogger(__name__)

CONTROLS_KIND = "controls"
CONTROLS_ID = "default"
DEFAULT_SENSITIVITY = 50.0
# How often the calibration's progress is announced while it runs.
_CALIBRATION_POLL_S = 0.5


class ApplianceControls:
    def __init__(
        self,
        pipeline: Pipeline,
        live_config: LiveConfig,
        hub: Hub,
        store: SettingsStore,
        detector: MotionSettings,
        restart: Callable[[], None] | None,
    ) -> None:
        self._pipeline = pipeline
        self._live_config = live_config
        self._hub = hub
        self._store = store
        self._detector = detector
        self._restart = restart
        self._sensitivity = DEFAULT_SENSITIVITY
        self._profile: DetectorProfile = "balanced"
        self._watcher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @classmethod
    async def load(
        cls,
        pipeline: Pipeline,
        live_config: LiveConfig,
        hub: Hub,
        store: SettingsStore,
        detector: MotionSettings,
        restart: Callable[[], None] | None,
    ) -> ApplianceControls:
        """The controls as last saved (defaults before any change), applied and announced."""
        controls = cls(pipeline, live_config, hub, store, detector, restart)
        saved = overlay((), await store.load(CONTROLS_KIND)).get(CONTROLS_ID, {})
        pipeline.detection_enabled = bool(saved.get("detection_enabled", True))
        controls._sensitivity = float(saved.get("sensitivity", DEFAULT_SENSITIVITY))
        profile = saved.get("profile", "balanced")
        controls._profile = profile if profile in DETECTOR_PROFILES else "balanced"
        controls._retune()
        controls._announce()
        return controls

    def state(self) -> ControlState:
        calibrated, links = self._pipeline.calibration()
        return ControlState(
            timestamp=time.time(),
            detection_enabled=self._pipeline.detection_enabled,
            sensitivity=self._sensitivity,
            profile=self._profile,
            calibrating=calibrated < links,
            calibrated_links=calibrated,
            links=links,
        )

    async def set_detection(self, enabled: bool) -> ControlState:
        async with self._lock:
            self._pipeline.detection_enabled = enabled
            await self._save()
        log.info("detection switched", extra={"fields": {"enabled": enabled}})
        return self._announce()

    async def set_sensitivity(self, value: float) -> ControlState:
        low, high = SENSITIVITY_RANGE
        if not low <= value <= high:
            raise ControlError("sensitivity", f"must be between {low:g} and {high:g}, got {value:g}")
        async with self._lock:
            self._sensitivity = float(value)
            self._retune()
            await self._save()
        return self._announce()

    async def set_profile(self, profile: str) -> ControlState:
        if profile not in DETECTOR_PROFILES:
            raise ControlError("profile", f"must be one of {', '.join(DETECTOR_PROFILES)}, got {profile!r}")
        async with self._lock:
            self._profile = profile
            self._retune()
            await self._save()
        return self._announce()

    async def recalibrate(self) -> ControlState:
        self._pipeline.recalibrate()
        log.info("recalibrating: the room should be empty and still", extra={"fields": {}})
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch_calibration(), name="calibration")
        return self._announce()

    async def configure_zone(self, zone_id: str, settings: Mapping[str, Any]) -> dict[str, Any]:
        try:
            # As strictly as a REST body (JSON Schema's typing: "yes" is not a boolean).
            zone = ZoneConfig.model_validate_json(json.dumps({**settings, "id": zone_id}), strict=True)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "zone"
            raise ControlError(field, first["msg"].removeprefix("Value error, ")) from None
        exists = any(z.id == zone_id for z in self._live_config.zones)
        try:
            await self._live_config.put_zone(zone, create=not exists)
        except ConfigRejectedError as exc:
            problem = exc.problems[0]
            raise ControlError(problem.field, problem.message) from None
        return zone.model_dump(mode="json")

    @property
    def can_restart(self) -> bool:
        return self._restart is not None

    async def restart(self) -> None:
        if self._restart is None:
            raise ControlError("restart", "only an appliance started with 'invispose run' can restart itself")
        log.warning("restart requested", extra={"fields": {}})
        self._restart()

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher

    # -- helpers ----------------------------------------------------------------------------------------

    def _retune(self) -> None:
        self._pipeline.retune(tuned(self._detector, self._profile, self._sensitivity))

    def _announce(self) -> ControlState:
        state = self.state()
        self._hub.publish(state)
        return state

    async def _save(self) -> None:
        await self._store.put(
            CONTROLS_KIND,
            CONTROLS_ID,
            {
                "detection_enabled": self._pipeline.detection_enabled,
                "sensitivity": self._sensitivity,
                "profile": self._profile,
            },
        )

    async def _watch_calibration(self) -> None:
        """Announce the calibration's progress until every link has learnt the empty room."""
        last = None
        while True:
            await asyncio.sleep(_CALIBRATION_POLL_S)
            state = self.state()
            progress = (state.calibrated_links, state.links)
            if progress != last:
                self._hub.publish(state)
                last = progress
            if not state.calibrating:
                return
