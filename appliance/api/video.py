"""``/api/v1/stream/...`` and ``/api/v1/pose/snapshot.jpg``: the overlay video's doors. The video itself
is ``integrations.video``.

Browsers cannot put a header on ``<img>`` (MJPEG, snapshot) or on a native HLS player's requests, so the
streams take the token as ``?access_token=`` too. MJPEG, the snapshot and WebRTC draw on the streaming
rate bucket (each request opens a stream); the HLS and DASH files, which a player fetches every few
seconds, on the authenticated one, and their playlists are served with the caller's URL token on every
reference.
"""

from __future__ import annotations

import asyncio

from aiohttp import hdrs, web
from pydantic import BaseModel, Field, SecretStr, field_validator

from appliance.api.auth import CLIENT_IP, PRINCIPAL
from appliance.api.errors import error_response
from appliance.api.resource_keys import RESOURCES
from appliance.api.routing import ACCESS_TOKEN_PARAM, ApiModel, ApiRouter, RateTier, Scope
from appliance.integrations.video.outputs import OutputStatus
from appliance.integrations.video.segments import (
    DASH_MANIFEST,
    MASTER_PLAYLIST,
    content_type,
    with_access_token,
)
from appliance.integrations.video.settings import PushUrl
from appliance.integrations.video.sink import (
    MJPEG_PATH,
    WEBRTC_PATH,
    PushLimitError,
    TooManyViewersError,
    VideoSink,
    VideoStatus,
)
from appliance.integrations.video.webrtc import OfferError, PeerLimitError

router = ApiRouter()
_TAGS = ["video"]
SDP_CONTENT_TYPE = "application/sdp"
MJPEG_BOUNDARY = "frame"
_RETRY_AFTER_S = 5
_NO_VIDEO = {404: "the overlay video (or this output) is disabled"}


def video_sink(request: web.Request) -> VideoSink | None:
    sinks = request.app[RESOURCES].sinks
    sink = sinks.sink("video") if sinks is not None else None
    return sink if isinstance(sink, VideoSink) else None


def _disabled(what: str = "the overlay video", key: str = "video.enabled") -> web.Response:
    return error_response(404, "video_disabled", f"{what} is disabled ({key}: false)")


def _busy(code: str, message: str) -> web.Response:
    response = error_response(503, code, message)
    response.headers[hdrs.RETRY_AFTER] = str(_RETRY_AFTER_S)
    return response


# --------------------------------------------------------------------------------------------------------
# Status and pushes


@router.get(
    "/api/v1/stream/status",
    scope=Scope.SYSTEM_READ,
    summary="The overlay video: the render loop and each output's state, rate, restarts and last error",
    response=VideoStatus,
    tags=_TAGS,
    responses=_NO_VIDEO,
)
async def stream_status(request: web.Request, query: None, body: None) -> VideoStatus | web.Response:
    sink = video_sink(request)
    return _disabled() if sink is None else sink.status()


class PushRequest(ApiModel):
    url: SecretStr | None = Field(
        None,
        description="an rtmp:// or rtmps:// ingest URL with its stream key; omitted: start again every "
        "push of video.rtmp_urls. The key is never shown back.",
    )

    @field_validator("url")
    @classmethod
    def _push_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            PushUrl.parse(value.get_secret_value())
        return value


class PushQuery(ApiModel):
    id: str | None = Field(
        None, max_length=16, description="the push to stop (rtmp-<n>); omitted: every push"
    )


class PushList(BaseModel):
    pushes: list[OutputStatus]


@router.post(
    "/api/v1/stream/rtmp",
    scope=Scope.STREAM_PUBLISH,
    summary="Start an RTMP(S) push, or every configured push again",
    body=PushRequest,
    response=PushList,
    tags=_TAGS,
    responses={**_NO_VIDEO, 409: "as many pushes as allowed already exist"},
)
async def start_rtmp(request: web.Request, query: None, body: PushRequest) -> PushList | web.Response:
    """Pushes added here last until the appliance restarts; put permanent ones in ``video.rtmp_urls``.
    The answer lists the pushes started, each with its id (to stop it) and its URL with the key hidden."""
    sink = video_sink(request)
    if sink is None:
        return _disabled()
    url = None if body.url is None else PushUrl.parse(body.url.get_secret_value())
    try:
        return PushList(pushes=sink.start_push(url))
    except PushLimitError as exc:
        return error_response(409, "too_many_pushes", str(exc))


@router.delete(
    "/api/v1/stream/rtmp",
    scope=Scope.STREAM_PUBLISH,
    summary="Stop one RTMP push, or all of them",
    query=PushQuery,
    response=PushList,
    tags=_TAGS,
    responses={404: "the overlay video is disabled, or there is no such push"},
)
async def stop_rtmp(request: web.Request, query: PushQuery, body: None) -> PushList | web.Response:
    sink = video_sink(request)
    if sink is None:
        return _disabled()
    stopped = sink.stop_push(query.id)
    if stopped is None:
        return error_response(
            404, "no_such_push", f"there is no push {query.id!r}", {"pushes": sorted(sink.pushes)}
        )
    return PushList(pushes=stopped)


# --------------------------------------------------------------------------------------------------------
# HLS and DASH


async def _segment_file(request: web.Request, name: str, manifest: str, kind: str) -> web.Response:
    sink = video_sink(request)
    if sink is None:
        return _disabled()
    if sink.segment_files is None or not (sink.settings.hls if kind == "hls" else sink.settings.dash):
        return _disabled(kind.upper(), f"video.{kind}")
    files = sink.segment_files
    viewer = f"{request[PRINCIPAL].kind}:{request[PRINCIPAL].id}@{request[CLIENT_IP]}"
    if name == manifest:
        sink.hls_viewer(viewer)  # starts the encoder if nobody watched
        path = await files.wait_for(name, sink.settings.startup_timeout_s, viewer)
        if path is None:
            return _busy("stream_starting", "the encoder has not written the playlist yet; retry shortly")
    else:
        wrong_kind = name.endswith(".mpd") if kind == "hls" else name.endswith(".m3u8")
        path = None if wrong_kind else files.path(name)
        if path is None:
            return error_response(404, "no_such_file", f"{name!r} is not a current {kind.upper()} file")
        sink.hls_viewer(viewer)
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except FileNotFoundError:  # removed by ffmpeg since it was listed
        return error_response(404, "no_such_file", f"{name!r} has left the playlist")
    token = request.query.get(ACCESS_TOKEN_PARAM)
    is_playlist = not name.endswith(".m4s")
    if is_playlist and token is not None and hdrs.AUTHORIZATION not in request.headers:
        data = with_access_token(name, data.decode(), token).encode()
    return web.Response(
        body=data,
        content_type=content_type(name),
        headers={hdrs.CACHE_CONTROL: "no-cache" if is_playlist else "max-age=60"},
    )


@router.get(
    "/api/v1/stream/hls/{name}",
    scope=Scope.STREAM_SUBSCRIBE,
    summary=f"HLS of the overlay: {MASTER_PLAYLIST}, its media playlist and segments",
    tags=_TAGS,
    content_types=["application/vnd.apple.mpegurl", "video/iso.segment"],
    token_in_query=True,
    responses={**_NO_VIDEO, 503: "the encoder is starting; retry after Retry-After seconds"},
)
async def hls_file(request: web.Request, query: None, body: None) -> web.Response:
    """Open ``index.m3u8``: the first request starts the encoder and waits for the first segment (about
    one keyframe interval); encoding stops once no viewer has asked for anything for
    ``video.viewer_timeout_s``."""
    return await _segment_file(request, request.match_info["name"], MASTER_PLAYLIST, "hls")


@router.get(
    "/api/v1/stream/dash/{name}",
    scope=Scope.STREAM_SUBSCRIBE,
    summary=f"MPEG-DASH of the overlay: {DASH_MANIFEST} and its segments",
    tags=_TAGS,
    content_types=["application/dash+xml", "video/iso.segment"],
    token_in_query=True,
    responses={**_NO_VIDEO, 503: "the encoder is starting; retry after Retry-After seconds"},
)
async def dash_file(request: web.Request, query: None, body: None) -> web.Response:
    """Open ``manifest.mpd``; the segments are those of HLS (one encode serves both)."""
    return await _segment_file(request, request.match_info["name"], DASH_MANIFEST, "dash")


# --------------------------------------------------------------------------------------------------------
# MJPEG and the snapshot


@router.get(
    MJPEG_PATH,
    scope=Scope.STREAM_SUBSCRIBE,
    summary="The overlay as MJPEG (multipart JPEG frames), for <img> and simple viewers",
    tags=_TAGS,
    tier=RateTier.STREAMING,
    content_types=[f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}"],
    responses={**_NO_VIDEO, 503: "every MJPEG slot is taken (video.max_mjpeg_viewers)"},
)
async def mjpeg(request: web.Request, query: None, body: None) -> web.StreamResponse:
    """Runs until the viewer leaves; a slow viewer skips frames rather than falling behind."""
    sink = video_sink(request)
    if sink is None:
        return _disabled()
    try:
        frames = sink.mjpeg()
    except TooManyViewersError as exc:
        return _busy("too_many_viewers", f"{exc}; retry later or raise video.max_mjpeg_viewers")
    response = web.StreamResponse(
        headers={
            hdrs.CONTENT_TYPE: f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}",
            hdrs.CACHE_CONTROL: "no-store",
        }
    )
    await response.prepare(request)
    try:
        async for jpeg in frames:
            head = f"--{MJPEG_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
            await response.write(head.encode() + jpeg + b"\r\n")
    except ConnectionResetError:  # the viewer left
        pass
    finally:
        await frames.aclose()
    return response


@router.get(
    "/api/v1/pose/snapshot.jpg",
    scope=Scope.POSE_READ,
    summary="The overlay now as a JPEG (Home Assistant's camera image)",
    tags=_TAGS,
    tier=RateTier.STREAMING,
    content_types=["image/jpeg"],
    responses={**_NO_VIDEO, 503: "the video is restarting; retry after Retry-After seconds"},
)
async def snapshot(request: web.Request, query: None, body: None) -> web.Response:
    sink = video_sink(request)
    if sink is None:
        return _disabled()
    try:
        jpeg = await sink.snapshot()
    except RuntimeError as exc:
        return _busy("video_unavailable", str(exc))
    return web.Response(body=jpeg, content_type="image/jpeg", headers={hdrs.CACHE_CONTROL: "no-store"})


# --------------------------------------------------------------------------------------------------------
# WebRTC


@router.post(
    WEBRTC_PATH,
    scope=Scope.STREAM_SUBSCRIBE,
    summary="Watch the overlay over WebRTC: POST an SDP offer (application/sdp), get the answer (WHEP)",
    tags=_TAGS,
    tier=RateTier.STREAMING,
    status=201,
    content_types=[SDP_CONTENT_TYPE],
    responses={
        **_NO_VIDEO,
        400: "the offer cannot be answered (no video, no common codec, not SDP)",
        415: "the body is not application/sdp",
        503: "every WebRTC slot is taken (video.webrtc.max_peers)",
    },
)
async def webrtc_offer(request: web.Request, query: None, body: None) -> web.Response:
    """The body is the browser's SDP offer with a receive-only video section; the answer comes back with
    ``Location``, the session's URL, to DELETE when the viewer leaves. No ICE server is used: the
    browser must reach the appliance directly (same network)."""
    sink = video_sink(request)
    if sink is None or sink.webrtc is None:
        return _disabled("WebRTC", "video.webrtc.enabled")
    if request.content_type != SDP_CONTENT_TYPE:
        return error_response(
            415, "unsupported_media_type", f"send the offer as {SDP_CONTENT_TYPE}",
            {"content_type": request.content_type},
        )  # fmt: skip
    offer = await request.text()
    try:
        session, answer = await sink.webrtc.answer(offer)
    except PeerLimitError as exc:
        return _busy("too_many_viewers", f"{exc}; retry later or raise video.webrtc.max_peers")
    except OfferError as exc:
        return error_response(400, "bad_offer", str(exc))
    return web.Response(
        status=201,
        text=answer,
        content_type=SDP_CONTENT_TYPE,
        headers={hdrs.LOCATION: f"{WEBRTC_PATH}/{session}"},
    )


@router.delete(
    WEBRTC_PATH + "/{session}",
    scope=Scope.STREAM_SUBSCRIBE,
    summary="End a WebRTC session",
    tags=_TAGS,
    tier=RateTier.STREAMING,
    status=204,
    responses={404: "no such session (it may have ended already)"},
)
async def webrtc_end(request: web.Request, query: None, body: None) -> web.Response:
    sink = video_sink(request)
    session = request.match_info["session"]
    if sink is None or sink.webrtc is None or not await sink.webrtc.close(session):
        return error_response(404, "no_such_session", "there is no such WebRTC session")
    return web.Response(status=204)
