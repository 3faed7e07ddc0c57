"""The overlay over WebRTC with aiortc, signalled WHEP-style: the browser POSTs its SDP offer and gets the
answer; DELETE on the session's URL ends it. Each viewer has its own H.264 encoder (VP8 if the browser
offers no H.264), fed the frames the sink renders.

WebRTC would send packets off the box unless told not to, so:

- no ICE server at all (aiortc's default asks a public STUN server, which leaves the network);
- the host candidates offered are ``video.webrtc.host_addresses`` when set: aioice has no interface option
  and skips 127.0.0.1, so its address lookup is replaced (process-wide, once per setting) by that list;
- the offer's candidates that could not be reached from those addresses are dropped: mDNS names (``.local``,
  which aioice would resolve by multicast) whenever the addresses are restricted, and every address that
  is not loopback when only loopback is offered.
"""

from __future__ import annotations

import asyncio
import fractions
import ipaddress
import logging
import time
import uuid
from collections.abc import Callable
from typing import Protocol

import aioice.ice
import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from appliance.integrations.video.ffmpeg import Frame
from appliance.integrations.video.settings import WebRtcSettings

log = logging.getLogger(__name__)

_CLOCK_RATE = 90_000  # RTP video clock
_PREFERRED_CODECS = ("video/H264", "video/VP8", "video/rtx")
_ORIGINAL_HOST_ADDRESSES = aioice.ice.get_host_addresses


class FrameSource(Protocol):
    async def next_frame(self, after: int) -> tuple[int, Frame] | None:
        """The first frame newer than version ``after`` and its version; None once the video stops."""


class PeerLimitError(Exception):
    """Every WebRTC slot is taken."""


class OfferError(ValueError):
    """The offer is not one this server can answer; the message says why."""


def restrict_host_addresses(addresses: list[str]) -> None:
    """Make aioice offer exactly ``addresses`` as host candidates (all of the box's when empty)."""
    if not addresses:
        aioice.ice.get_host_addresses = _ORIGINAL_HOST_ADDRESSES
        return

    def configured(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in addresses if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = configured


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:  # a name, such as an mDNS one
        return False


def reachable_candidates(sdp: str, settings: WebRtcSettings) -> str:
    """The offer without the candidates this server must not try (see the module docstring)."""
    if not settings.host_addresses:
        return sdp
    kept = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            fields = line.split()
            address = fields[4] if len(fields) > 4 else ""
            if address.endswith(".local") or (settings.loopback_only and not _is_loopback(address)):
                continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n"


class OverlayTrack(MediaStreamTrack):
    """The rendered frames as a video track, timed by the wall clock of their arrival."""

    kind = "video"

    def __init__(self, source: FrameSource, sent: Callable[[], None]) -> None:
        super().__init__()
        self._source = source
        self._sent = sent
        self._seen = 0
        self._started: float | None = None

    async def recv(self) -> av.VideoFrame:
        got = await self._source.next_frame(self._seen)
        if got is None:
            self.stop()
            raise MediaStreamError
        self._seen, frame = got
        now = time.monotonic()
        if self._started is None:
            self._started = now
        video = av.VideoFrame.from_ndarray(frame, format="bgr24")
        video.pts = round((now - self._started) * _CLOCK_RATE)
        video.time_base = fractions.Fraction(1, _CLOCK_RATE)
        self._sent()
        return video


class WebRtcPeers:
    """The open WebRTC sessions, by id."""

    def __init__(self, settings: WebRtcSettings, source: FrameSource, on_change: Callable[[], None]) -> None:
        self.settings = settings
        self.source = source
        self.on_change = on_change
        self.peers: dict[str, RTCPeerConnection] = {}
        self.opened = 0
        self.frames_sent = 0
        restrict_host_addresses([str(a) for a in settings.host_addresses])

    @property
    def count(self) -> int:
        return len(self.peers)

    def _frame_sent(self) -> None:
        self.frames_sent += 1

    async def answer(self, offer_sdp: str) -> tuple[str, str]:
        """A new session answering ``offer_sdp``: its id and the answer SDP."""
        if len(self.peers) >= self.settings.max_peers:
            raise PeerLimitError(f"{self.settings.max_peers} WebRTC viewers already watch")
        if "m=video" not in offer_sdp:
            raise OfferError("the offer has no video section (add a recvonly video transceiver)")
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        session = uuid.uuid4().hex
        try:
            transceiver = pc.addTransceiver(OverlayTrack(self.source, self._frame_sent), direction="sendonly")
            codecs = RTCRtpSender.getCapabilities("video").codecs
            # Codec preferences are honoured only when set before the remote description.
            transceiver.setCodecPreferences(
                sorted(
                    (c for c in codecs if c.mimeType in _PREFERRED_CODECS),
                    key=lambda c: _PREFERRED_CODECS.index(c.mimeType),
                )
            )
            offer = RTCSessionDescription(sdp=reachable_candidates(offer_sdp, self.settings), type="offer")
            await pc.setRemoteDescription(offer)
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            await pc.close()
            if isinstance(exc, ValueError | LookupError):
                raise OfferError(f"cannot answer this offer: {exc}") from exc
            raise
        self.peers[session] = pc
        self.opened += 1

        @pc.on("connectionstatechange")
        async def _state_changed() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self.close(session)

        self.on_change()
        return session, pc.localDescription.sdp

    async def close(self, session: str) -> bool:
        pc = self.peers.pop(session, None)
        if pc is None:
            return False
        await pc.close()
        self.on_change()
        return True

    async def close_all(self) -> None:
        await asyncio.gather(*(self.close(s) for s in list(self.peers)), return_exceptions=True)
