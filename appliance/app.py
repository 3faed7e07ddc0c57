"""Composition root: builds every part from the validated configuration and wires it to the hub.

This is the only module that knows all the others; everything below it sees just its own inputs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from appliance import __version__
from appliance.api import auth, controls, events, openapi, room, security, stream, system, video, webhooks
from appliance.api.errors import error_middleware
from appliance.api.keys import CONFIG, DATABASE, HUB, MODEL_UNAVAILABLE, PIPELINE, STARTED_AT
from appliance.api.metrics import metrics_middleware
from appliance.api.onboarding import ONBOARDING, start_onboarding
from appliance.api.resource_keys import RESOURCES
from appliance.api.resources import run_resources, setup_resources
from appliance.api.routing import ApiRouter, install
from appliance.config import AppConfig, Esp32UdpSourceConfig, SimulatorSourceConfig, SourceConfig
from appliance.contracts import Controls, Event, EventType
from appliance.control import ApplianceControls
from appliance.csi.simulator import Impairments, RoomSimulator, Scenario
from appliance.csi.sources import CsiSource, factory
from appliance.csi.sources.simulated import SimulatedSource
from appliance.hub import Hub
from appliance.integrations.base import Sink
from appliance.integrations.history import HistoryRecorder
from appliance.integrations.mdns import (
    Advertisement,
    BrokerNotFoundError,
    MdnsAdvertiser,
    hardware_model,
    locate_broker,
)
from appliance.integrations.mqtt import BrokerLocator, DeviceInfo, MqttSink, resolve_device_id
from appliance.integrations.reports import ScheduledReports
from appliance.integrations.runner import SinkRunner
from appliance.integrations.video.render import RoomPlan
from appliance.integrations.video.sink import VideoSink
from appliance.integrations.webhooks.sink import WebhookSink
from appliance.integrations.websocket import WebSocketStream
from appliance.live_config import LiveConfig
from appliance.pipeline import Pipeline, stop_task
from appliance.pose.camera import camera_for_room
from appliance.pose.estimator import SensingEstimator
from appliance.pose.motion import RoomMotion
from appliance.pose.runtime import ModelUnavailableError
from appliance.pose.scene import Scene
from appliance.pose.sensing.classifier import SensingModel
from appliance.pose.sensing.geometry import RoomGeometry
from appliance.pose.sensing.likelihood import LikelihoodUnavailableError, LinkLikelihood
from appliance.store.accounts import AccountStore
from appliance.store.database import DATABASE_FILE, Database
from appliance.store.history import HistoryStore
from appliance.store.settings import SettingsStore
from appliance.store.webhooks import WebhookOutbox
from appliance.systemd import SystemdNotifier, keep_systemd_informed

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).parent / "web"
# The overlay video's HLS and DASH files, in the data directory.
VIDEO_DIR = "video"
# JSON bodies larger than this are refused with 413 before they are read.
MAX_REQUEST_BYTES = 1 * 2**20


def build_source(config: AppConfig, source: SourceConfig) -> CsiSource:
    if not isinstance(source, SimulatorSourceConfig):
        return factory.build_source(
            source.type, source.model_dump(exclude={"type"}), base_dir=config.data_dir
        )
    room = config.room.to_spec()
    simulator = RoomSimulator(
        room,
        Scenario.demo(room, seed=source.seed),
        seed=source.seed,
        packet_rate_hz=source.packet_rate_hz,
        snr_db=source.snr_db,
        impairments=None if source.impairments else Impairments.none(),
    )
    return SimulatedSource(simulator, name=source.name, realtime=source.realtime)


def build_estimator(config: AppConfig) -> tuple[SensingEstimator | None, str | None]:
    """The sensing path, or None and why not (disabled, or its model or likelihood could not load)."""
    settings = config.sensing
    if not settings.enabled:
        return None, "disabled in the configuration (sensing.enabled: false)"
    try:
        model = SensingModel(settings.model, num_threads=settings.threads)
        likelihood = LinkLikelihood.load(settings.likelihood)
    except (ModelUnavailableError, LikelihoodUnavailableError) as exc:
        log.warning("sensing unavailable, using the motion detector", extra={"fields": {"why": str(exc)}})
        return None, str(exc)
    return (
        SensingEstimator(
            model,
            likelihood,
            RoomGeometry.from_room_spec(config.room.to_spec()),
            Scene(config.scene, config.zones),
            settings,
            rate_hz=config.prep.rate_hz,
            calibration_s=config.detector.calibration_s,
        ),
        None,
    )


@dataclass(slots=True)
class RestartRequest:
    """Set by the restart control; ``run`` replaces the process once the service has stopped."""

    requested: bool = False


RESTART = web.AppKey("restart", RestartRequest)


def build_app(config: AppConfig, *, can_restart: bool = False) -> web.Application:
    """The application; ``can_restart`` only for the service itself (``run``): a restart stops it with
    SIGTERM and starts the same command again."""
    app = web.Application(
        middlewares=[metrics_middleware, error_middleware, *security.middlewares()],
        client_max_size=MAX_REQUEST_BYTES,
    )
    hub = Hub()
    estimator, model_unavailable = build_estimator(config)
    pipeline = Pipeline(
        [build_source(config, s) for s in config.sources],
        RoomMotion(config.detector),
        hub,
        rate_hz=config.pipeline.rate_hz,
        link_timeout_s=config.pipeline.link_timeout_s,
        status_interval_s=config.pipeline.status_interval_s,
        prep=config.prep,
        estimator=estimator,
    )
    app[CONFIG] = config
    app[HUB] = hub
    app[PIPELINE] = pipeline
    app[STARTED_AT] = time.time()
    app[MODEL_UNAVAILABLE] = model_unavailable or ""
    security.setup_security(app, config)
    app[auth.LOGIN_GUARD] = auth.LoginGuard(config.auth.login_attempts_per_minute)
    # Start-up order: the database, the services on it (history, live configuration), the sinks, then the
    # pipeline that feeds them; shutdown runs in reverse, so the sinks deliver what the pipeline published
    # last before the database closes.
    install(
        app,
        ui,
        system.router,
        controls.router,
        room.router,
        events.router,
        auth.router,
        openapi.router,
        stream.router,
        video.router,
        webhooks.router,
        *setup_resources(app),
    )
    # Open streams are closed when shutdown begins; otherwise aiohttp would wait for them to end.
    app.on_shutdown.append(_close_streams)
    app.router.add_static("/ui/", WEB_DIR, append_version=True)
    app.cleanup_ctx.extend([_database_ctx, _services_ctx, _sinks_ctx, _pipeline_ctx, _systemd_ctx])
    if can_restart:
        app[RESTART] = RestartRequest()
    return app


def build_sinks(
    config: AppConfig, hub: Hub, history: HistoryStore, database: Database, controls: Controls
) -> list[Sink]:
    """The enabled sinks, in the order they start (the history recorder first: it must see the first
    frames)."""
    sinks: list[Sink] = []
    if config.history.enabled:
        sinks.append(HistoryRecorder(history, hub, config.history))
    if config.webhooks.enabled:
        sinks.append(WebhookSink(WebhookOutbox(database), SettingsStore(database), hub, config.webhooks))
    if config.reports.enabled and config.history.enabled:
        sinks.append(ScheduledReports(history, hub, config.reports))
    if config.websocket.enabled:
        sinks.append(WebSocketStream(hub, config.websocket))
    if config.mqtt.enabled:
        device_id = resolve_device_id(config.mqtt, config.data_dir.expanduser())
        # The camera entity shows the video's snapshots: listed only while they are on.
        camera = config.video.enabled and config.video.snapshot_interval_s > 0
        sinks.append(
            MqttSink(
                hub,
                config.mqtt,
                mqtt_device(config),
                device_id,
                controls,
                broker_locator(config),
                camera=camera,
            )
        )
    if config.video.enabled:
        directory = config.data_dir.expanduser().resolve() / VIDEO_DIR
        sinks.append(VideoSink(hub, config.video, room_plan(config), directory))
    if config.mdns.enabled:
        sinks.append(MdnsAdvertiser(config.mdns, advertisement(config)))
    return sinks


def mqtt_device(config: AppConfig) -> DeviceInfo:
    """How Home Assistant lists this appliance; its web UI is the configuration URL."""
    host = config.server.host
    if host in ("0.0.0.0", "::", ""):
        host = f"{socket.gethostname()}.local"
    return DeviceInfo(
        name=f"InvisPose {config.room.name}",
        model="WiFi sensing appliance",
        manufacturer="InvisPose",
        sw_version=__version__,
        configuration_url=f"http://{host}:{config.server.port}/",
    )


def broker_locator(config: AppConfig) -> BrokerLocator | None:
    """How the MQTT sink finds a broker when ``mqtt.host`` is not set: browsing mDNS on the interfaces
    ``mdns`` may use (none while mDNS is off)."""
    if not config.mdns.enabled:
        return None
    interfaces = config.mdns.interface_list

    async def over_mdns() -> tuple[str, int] | None:
        try:
            return await locate_broker(interfaces=interfaces)
        except BrokerNotFoundError as exc:
            log.warning("%s", exc)
            return None

    return over_mdns


def mqtt_prefix(config: AppConfig) -> str:
    """The topics' prefix this appliance publishes under (``<topic_prefix>/<device_id>``), for the mDNS
    record; empty while MQTT is off."""
    if not config.mqtt.enabled:
        return ""
    device_id = resolve_device_id(config.mqtt, config.data_dir.expanduser())
    return f"{config.mqtt.topic_prefix}/{device_id}"


def advertisement(config: AppConfig) -> Advertisement:
    """What mDNS says about this appliance."""
    udp_ports = [s.port for s in config.sources if isinstance(s, Esp32UdpSourceConfig)]
    return Advertisement(
        appliance_id=appliance_id(config.data_dir.expanduser().resolve()),
        port=config.server.port,
        version=__version__,
        name=f"InvisPose {config.room.name}",
        mqtt_prefix=mqtt_prefix(config),
        model=hardware_model(),
        csi_udp_port=udp_ports[0] if udp_ports else None,
    )


APPLIANCE_ID_FILE = "appliance_id"


def appliance_id(data_dir: Path) -> str:
    """This appliance's stable id, made on first start and kept in the data directory."""
    path = data_dir / APPLIANCE_ID_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        made = uuid.uuid4().hex[:12]
        path.write_text(made + "\n")
        return made


def room_plan(config: AppConfig) -> RoomPlan:
    """The room as the overlay video draws it: floor, radios, and the floor's corners in the overlay view."""
    room = config.room
    corners = [
        (0.0, 0.0, 0.0),
        (room.width_m, 0.0, 0.0),
        (room.width_m, room.depth_m, 0.0),
        (0.0, room.depth_m, 0.0),
    ]
    outline = camera_for_room(room.width_m, room.depth_m, room.height_m).project(corners)
    return RoomPlan(
        width_m=room.width_m,
        depth_m=room.depth_m,
        nodes=tuple((node.id, node.position[0], node.position[1]) for node in room.nodes),
        floor_outline=tuple((float(u), float(v)) for u, v in outline),
    )


ui = ApiRouter()


@ui.get("/", public=True, summary="The local web UI", content_types=["text/html"], tags=["ui"])
async def _index(request: web.Request, query: None, body: None) -> web.StreamResponse:
    prefix = security.ingress_path(request) if auth.INGRESS_USER in request else None
    if prefix is None:
        return web.FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})
    # Under Home Assistant's ingress the page's relative URLs resolve against X-Ingress-Path, even when
    # the panel was opened without its trailing slash.
    page = await asyncio.to_thread((WEB_DIR / "index.html").read_text, encoding="utf-8")
    page = page.replace("<head>", f'<head>\n  <base href="{prefix}/">', 1)
    return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-cache"})


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    """The database and what lives in it (accounts), open for the application's lifetime."""
    config = app[CONFIG]
    data_dir = config.data_dir.expanduser().resolve()
    # The login secret is made on a box's first start: without it, the box is new (see onboarding).
    new_box = not (data_dir / auth.SECRET_FILE).exists()
    database = await Database.open(data_dir / DATABASE_FILE)
    app[DATABASE] = database
    accounts = AccountStore(database)
    app[auth.AUTHENTICATOR] = auth.Authenticator(
        accounts,
        auth.load_or_create_secret(data_dir),
        jwt_ttl_s=config.auth.jwt_ttl_minutes * 60.0,
    )
    app[ONBOARDING] = start_onboarding(data_dir, users=await accounts.user_count(), new_box=new_box)
    try:
        yield
    finally:
        accounts.close()
        await database.close()


async def _close_streams(app: web.Application) -> None:
    sinks = app[RESOURCES].sinks
    stream_sink = sinks.sink("websocket") if sinks is not None else None
    if isinstance(stream_sink, WebSocketStream):
        await stream_sink.close_all()
    video_sink = sinks.sink("video") if sinks is not None else None
    if isinstance(video_sink, VideoSink):
        await video_sink.close_viewers()


async def _services_ctx(app: web.Application) -> AsyncIterator[None]:
    """The history and the live configuration on the open database, and the routes' background tasks."""
    resources, config, database = app[RESOURCES], app[CONFIG], app[DATABASE]
    resources.history = HistoryStore(database)
    settings = SettingsStore(database)
    resources.live_config = await LiveConfig.load(config, settings, app[PIPELINE], app[HUB])
    restart = app.get(RESTART)
    resources.controls = await ApplianceControls.load(
        app[PIPELINE],
        resources.live_config,
        app[HUB],
        settings,
        config.detector,
        None if restart is None else lambda: _request_restart(restart),
    )
    try:
        async with run_resources(app):
            yield
    finally:
        await resources.controls.close()


def _request_restart(restart: RestartRequest) -> None:
    restart.requested = True
    os.kill(os.getpid(), signal.SIGTERM)


async def _sinks_ctx(app: web.Application) -> AsyncIterator[None]:
    resources = app[RESOURCES]
    if resources.history is None:
        raise RuntimeError("the services context opens the history before the sinks start")
    if resources.controls is None:
        raise RuntimeError("the services context loads the controls before the sinks start")
    sinks = build_sinks(app[CONFIG], app[HUB], resources.history, app[DATABASE], resources.controls)
    async with SinkRunner(sinks, app[HUB]) as runner:
        resources.sinks = runner
        yield


async def _pipeline_ctx(app: web.Application) -> AsyncIterator[None]:
    pipeline, hub = app[PIPELINE], app[HUB]
    config = app[CONFIG]
    task = asyncio.create_task(pipeline.run(), name="pipeline")
    hub.publish(Event(EventType.SYSTEM_STARTED, {"version": __version__, "source": pipeline.source_kind}))
    log.info(
        "pipeline started",
        extra={
            "fields": {
                "source": pipeline.source_kind,
                "room": config.room.name,
                "sources": len(config.sources),
            }
        },
    )
    yield
    hub.publish(Event(EventType.SYSTEM_STOPPED, {"uptime_s": round(time.time() - app[STARTED_AT], 1)}))
    await stop_task(task)
    log.info("pipeline stopped")


async def _systemd_ctx(app: web.Application) -> AsyncIterator[None]:
    """Under systemd (``Type=notify``): ready once the pipeline runs, watchdog pings while it runs."""
    notifier = SystemdNotifier.from_environment()
    if notifier is None:
        yield
        return
    pipeline = app[PIPELINE]
    task = asyncio.create_task(keep_systemd_informed(notifier, lambda: pipeline.last_tick), name="systemd")
    try:
        yield
    finally:
        notifier.notify("STOPPING=1")
        await stop_task(task)
        notifier.close()


def run(config: AppConfig) -> None:
    """Serve until SIGINT or SIGTERM, then stop the pipeline and close every part in order; after a
    restart request, start the same command again in this process's place."""
    app = build_app(config, can_restart=True)

    async def started(_app: web.Application) -> None:
        # After every part has started (the contexts run first), so that a part that fails never
        # follows a "listening" line.
        log.info(
            "listening",
            extra={
                "fields": {
                    "url": f"http://{config.server.host}:{config.server.port}/",
                    "data_dir": str(config.data_dir),
                }
            },
        )

    app.on_startup.append(started)
    web.run_app(
        app,
        host=config.server.host,
        port=config.server.port,
        print=None,
        access_log=None,
        shutdown_timeout=5.0,
    )
    if app[RESTART].requested:
        log.info("restarting", extra={"fields": {"argv": sys.orig_argv}})
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
