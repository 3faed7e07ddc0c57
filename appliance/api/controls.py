"""``/api/v1/system/controls``, ``calibrate`` and ``restart``: what a user may change while it runs.

The same changes are offered over MQTT (Home Assistant's switch, number, select and buttons) and in the
web UI; all go through ``appliance.control.ApplianceControls``.
"""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import Field

from appliance.api.errors import error_response
from appliance.api.resource_keys import controls
from appliance.api.routing import ApiModel, ApiRouter, Scope, model_response
from appliance.contracts.control import ControlError, ControlState
from appliance.contracts.schemas import ControlStateModel

router = ApiRouter()
_TAGS = ["system"]
_ACCEPTED = 202


class ControlsChange(ApiModel):
    """Only the fields given are changed."""

    detection_enabled: bool | None = Field(None, description="false: stop publishing readings")
    sensitivity: float | None = Field(
        None, ge=0, le=100, description="50: as configured; +25 halves the threshold"
    )
    profile: Literal["balanced", "responsive", "steady"] | None = Field(
        None, description="responsive: quicker and twitchier; steady: slower and calmer"
    )


def _model(state: ControlState) -> ControlStateModel:
    return ControlStateModel.model_validate(state.to_dict())


@router.get(
    "/api/v1/system/controls",
    scope=Scope.SYSTEM_READ,
    summary="Detection on/off, sensitivity, detector profile and calibration progress",
    response=ControlStateModel,
    tags=_TAGS,
)
async def get_controls(request: web.Request, query: None, body: None) -> ControlStateModel:
    return _model(controls(request.app).state())


@router.put(
    "/api/v1/system/controls",
    scope=Scope.CONFIG_WRITE,
    summary="Change detection, sensitivity or the detector profile (kept across restarts)",
    body=ControlsChange,
    response=ControlStateModel,
    tags=_TAGS,
)
async def put_controls(request: web.Request, query: None, body: ControlsChange) -> ControlStateModel:
    service = controls(request.app)
    state = service.state()
    if body.detection_enabled is not None:
        state = await service.set_detection(body.detection_enabled)
    if body.sensitivity is not None:
        state = await service.set_sensitivity(body.sensitivity)
    if body.profile is not None:
        state = await service.set_profile(body.profile)
    return _model(state)


@router.post(
    "/api/v1/system/calibrate",
    scope=Scope.CONFIG_WRITE,
    summary="Learn the empty room again (keep it empty and still for detector.calibration_s)",
    response=ControlStateModel,
    status=_ACCEPTED,
    tags=_TAGS,
)
async def calibrate(request: web.Request, query: None, body: None) -> ControlStateModel:
    """Answers at once (202); ``calibrating`` turns false when every link has learnt the room, which
    the ``controls`` topic announces (WebSocket, MQTT)."""
    return _model(await controls(request.app).recalibrate())


@router.post(
    "/api/v1/system/restart",
    scope=Scope.ADMIN_ALL,
    summary="Stop cleanly and start again",
    status=_ACCEPTED,
    tags=_TAGS,
    responses={409: "this appliance was not started with 'invispose run' and cannot restart itself"},
)
async def restart(request: web.Request, query: None, body: None) -> web.Response:
    service = controls(request.app)
    if not service.can_restart:
        return error_response(
            409, "cannot_restart", "only an appliance started with 'invispose run' can restart itself"
        )
    try:
        await service.restart()
    except ControlError as exc:
        return error_response(409, "cannot_restart", exc.message)
    return model_response(_model(service.state()), status=_ACCEPTED)
