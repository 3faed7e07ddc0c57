"""The ``video:`` section, and the push URLs whose stream keys never reach a log or an API answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import quote, urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, IPvAnyAddress, SecretStr, model_validator

PUSH_SCHEMES = ("rtmp", "rtmps")
REDACTED = "***"


@dataclass(frozen=True, slots=True)
class PushUrl:
    """An RTMP(S) ingest URL. Its stream key (the path after the application, any query, any password)
    is a secret: ``redacted`` is what logs and answers show, and ``scrub`` removes the secret parts from
    any text that may quote the URL (ffmpeg's errors)."""

    url: str

    @classmethod
    def parse(cls, text: str) -> PushUrl:
        """Refuses anything ffmpeg could not push to with the reason; never echoes the key."""
        parts = urlsplit(text.strip())
        if parts.scheme not in PUSH_SCHEMES:
            raise ValueError(f"a push URL starts with {' or '.join(s + '://' for s in PUSH_SCHEMES)}")
        if not parts.hostname:
            raise ValueError("a push URL names a server: rtmp://HOST[:PORT]/APP/STREAM-KEY")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ValueError("the push URL's port is not a number from 1 to 65535") from None
        if not parts.path.strip("/"):
            raise ValueError("a push URL has an application and a stream key: rtmp://HOST/APP/STREAM-KEY")
        if any(c.isspace() for c in text.strip()):
            raise ValueError("a push URL contains no spaces")
        return cls(text.strip())

    @property
    def redacted(self) -> str:
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
        user = f"{REDACTED}@" if parts.username or parts.password else ""
        segments = parts.path.strip("/").split("/")
        # rtmp://HOST/APP/KEY: the application is public (YouTube's live2, Twitch's app), the rest is not.
        kept = segments[0] if len(segments) > 1 else ""
        path = f"/{kept}/{REDACTED}" if kept else f"/{REDACTED}"
        return f"{parts.scheme}://{user}{host}{port}{path}"

    @property
    def secrets(self) -> tuple[str, ...]:
        """The secret parts as they may appear in text, longest first (so no part is left half-masked)."""
        parts = urlsplit(self.url)
        segments = parts.path.strip("/").split("/")
        found = ["/".join(segments[1:]) if len(segments) > 1 else segments[0], parts.query]
        found += [parts.password or "", parts.username or ""]
        found += [quote(s, safe="") for s in found]
        return tuple(sorted({s for s in found if s}, key=len, reverse=True))

    def scrub(self, text: str) -> str:
        """``text`` with the URL redacted and every secret part masked."""
        text = text.replace(self.url, self.redacted)
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text

    def __repr__(self) -> str:
        return f"PushUrl({self.redacted!r})"


def _push_url(value: SecretStr) -> SecretStr:
    PushUrl.parse(value.get_secret_value())
    return value


PushUrlText = Annotated[SecretStr, AfterValidator(_push_url)]


def _address(value: IPvAnyAddress) -> IPvAnyAddress:
    if value.is_unspecified or value.is_multicast:
        raise ValueError("give a unicast address of this box, such as 192.168.1.20 or 127.0.0.1")
    return value


class WebRtcSettings(BaseModel):
    """``video.webrtc``: the WHEP-style WebRTC stream at ``/api/v1/stream/webrtc``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        True, description="Serve the overlay over WebRTC (each viewer has its own encoder)."
    )
    max_peers: int = Field(4, ge=1, le=32, description="WebRTC viewers at once; more are refused (503).")
    host_addresses: list[Annotated[IPvAnyAddress, AfterValidator(_address)]] = Field(
        default_factory=list,
        description="The only addresses offered to browsers as ICE candidates. Empty: every address of "
        "the box. No STUN or TURN server is ever asked, so WebRTC stays on the local network; "
        "[127.0.0.1] keeps it on the box itself.",
    )

    @property
    def loopback_only(self) -> bool:
        return bool(self.host_addresses) and all(a.is_loopback for a in self.host_addresses)


class VideoSettings(BaseModel):
    """The ``video:`` section: the live skeleton-overlay video and where it goes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        True, description="Offer the overlay video. Nothing is rendered or encoded until an output needs it."
    )
    width: int = Field(1280, ge=160, le=3840, multiple_of=2, description="Frame width in pixels (even).")
    height: int = Field(720, ge=90, le=2160, multiple_of=2, description="Frame height in pixels (even).")
    fps: int = Field(15, ge=1, le=60, description="Frames per second rendered and encoded.")
    bitrate_kbps: int = Field(1500, ge=100, le=50_000, description="H.264 bit rate of the encoded outputs.")
    keyframe_interval_s: float = Field(
        2.0, ge=0.5, le=10.0, description="Seconds between keyframes; also the HLS/DASH segment length."
    )
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"] = Field(
        "veryfast", description="libx264 preset: faster ones use less CPU for a larger stream."
    )
    rtmp_urls: list[PushUrlText] = Field(
        default_factory=list,
        description="RTMP or RTMPS ingest URLs pushed to from start (a Restream or YouTube ingest URL is one "
        "of them); keep keys in secrets.yaml with !secret. Their keys never appear in logs or answers.",
    )
    hls: bool = Field(True, description="Serve HLS at /api/v1/stream/hls/index.m3u8 while someone watches.")
    dash: bool = Field(
        True, description="Serve MPEG-DASH at /api/v1/stream/dash/manifest.mpd while someone watches."
    )
    playlist_segments: int = Field(
        5, ge=2, le=30, description="Segments listed in the HLS and DASH playlists (older ones are deleted)."
    )
    viewer_timeout_s: float = Field(
        15.0, ge=2.0, le=600.0, description="An HLS/DASH viewer silent this long has left; encoding stops."
    )
    startup_timeout_s: float = Field(
        10.0, ge=1.0, le=60.0, description="How long a first HLS/DASH request waits for the playlist."
    )
    jpeg_quality: int = Field(80, ge=10, le=100, description="JPEG quality of MJPEG and the snapshot.")
    max_mjpeg_viewers: int = Field(10, ge=1, le=100, description="MJPEG viewers at once; more get 503.")
    snapshot_interval_s: float = Field(
        5.0,
        ge=0,
        le=3600,
        description="Seconds between overlay snapshots for Home Assistant's MQTT camera (rendered only while "
        "MQTT is on); 0: no snapshots and no camera entity.",
    )
    restart_first_s: float = Field(
        1.0, gt=0, le=60, description="First wait before ffmpeg is started again after a failure."
    )
    restart_max_s: float = Field(
        8.0, gt=0, le=600, description="Longest wait between restarts (the waits double up to it)."
    )
    stall_timeout_s: float = Field(
        10.0, ge=2.0, le=300.0, description="An encoder that reports no progress this long is restarted."
    )
    ffmpeg: str = Field("ffmpeg", min_length=1, description="The ffmpeg program (a name on PATH or a path).")
    webrtc: WebRtcSettings = Field(default_factory=WebRtcSettings)

    @model_validator(mode="after")
    def _consistent(self) -> VideoSettings:
        gop = self.fps * self.keyframe_interval_s
        if abs(gop - round(gop)) > 1e-6:
            raise ValueError(
                f"fps x keyframe_interval_s must be a whole number of frames (it is {gop:g}); "
                "for example 15 fps with 2 s"
            )
        if self.restart_first_s > self.restart_max_s:
            raise ValueError("restart_first_s must not be above restart_max_s")
        return self

    @property
    def keyframe_frames(self) -> int:
        return round(self.fps * self.keyframe_interval_s)

    @property
    def push_urls(self) -> list[PushUrl]:
        return [PushUrl.parse(u.get_secret_value()) for u in self.rtmp_urls]
