"""The overlay video's parts that need no server: push URLs and their secrecy, the ``video:`` settings,
playlists served with a URL token, the WebRTC offer's candidates, and the renderer (what every frame says,
read back with Tesseract OCR; where keypoints land, letterboxed)."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from appliance.config import ConfigError, load_config
from appliance.integrations.video.render import OverlayRenderer, OverlayScene, RoomPlan
from appliance.integrations.video.segments import with_access_token
from appliance.integrations.video.settings import PushUrl, WebRtcSettings
from appliance.integrations.video.webrtc import reachable_candidates
from tests.conftest import DEFAULT_CONFIG
from tests.video_support import STANDING, Image, person_at, pose_frame, saturation

# --------------------------------------------------------------------------------------------------------
# Push URLs: what may be shown of them


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rtmp://a.rtmp.youtube.com/live2/abcd-efgh-ijkl-mnop", "rtmp://a.rtmp.youtube.com/live2/***"),
        ("rtmps://live-api-s.facebook.com:443/rtmp/FB-1234?s_bl=1&a=Xyz", "rtmps://live-api-s.facebook.com:443/rtmp/***"),
        ("rtmp://user:pa55@ingest.example/app/key", "rtmp://***@ingest.example/app/***"),
        ("rtmp://127.0.0.1:1935/key-only", "rtmp://127.0.0.1:1935/***"),
        ("rtmp://[::1]:1935/live/k/sub", "rtmp://[::1]:1935/live/***"),
    ],
)  # fmt: skip
def test_a_push_url_is_shown_without_its_key(url: str, shown: str) -> None:
    push = PushUrl.parse(url)
    assert push.redacted == shown
    assert repr(push) == f"PushUrl({shown!r})"


def test_scrub_masks_every_secret_part_in_ffmpeg_text() -> None:
    push = PushUrl.parse("rtmp://user:pa55@127.0.0.1:1935/live/k3y/sub?token=t0k")
    said = (
        "[tcp @ 0x55] Connection to tcp://127.0.0.1:1935 failed: Connection refused\n"
        "rtmp://user:pa55@127.0.0.1:1935/live/k3y/sub?token=t0k: Connection refused\n"
        "[rtmp @ 0x56] Server error: stream k3y/sub is already publishing (user user, k3y%2Fsub)"
    )
    scrubbed = push.scrub(said)
    for secret in ("k3y", "pa55", "t0k", "k3y%2Fsub"):
        assert secret not in scrubbed
    assert "rtmp://***@127.0.0.1:1935/live/***: Connection refused" in scrubbed
    assert "Connection to tcp://127.0.0.1:1935 failed" in scrubbed


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://example.com/live/key", "a push URL starts with rtmp:// or rtmps://"),
        ("rtmp:///live/key", "a push URL names a server: rtmp://HOST[:PORT]/APP/STREAM-KEY"),
        ("rtmp://example.com", "a push URL has an application and a stream key: rtmp://HOST/APP/STREAM-KEY"),
        ("rtmp://example.com/", "a push URL has an application and a stream key: rtmp://HOST/APP/STREAM-KEY"),
        ("rtmp://example.com:99999/live/key", "the push URL's port is not a number from 1 to 65535"),
        ("rtmp://example.com/live/my key", "a push URL contains no spaces"),
    ],
)
def test_a_push_url_ffmpeg_could_not_use_is_refused_with_the_reason(url: str, reason: str) -> None:
    # The whole reason, and never the URL with its key.
    with pytest.raises(ValueError, match=f"^{re.escape(reason)}$"):
        PushUrl.parse(url)


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "224.0.0.251", "ff02::fb"])
def test_webrtc_is_offered_on_unicast_addresses_only(address: str) -> None:
    with pytest.raises(ValidationError) as refused:
        WebRtcSettings.model_validate({"host_addresses": ["127.0.0.1", address]})
    [error] = refused.value.errors()
    assert error["loc"] == ("host_addresses", 1)
    assert (
        error["msg"] == "Value error, give a unicast address of this box, such as 192.168.1.20 or 127.0.0.1"
    )


def test_a_bad_video_section_names_the_line_and_never_the_key(tmp_path: Path) -> None:
    config = tmp_path / "appliance.yaml"
    text = DEFAULT_CONFIG.read_text()
    text = text.replace("  width: 1280 ", "  width: 1281 ").replace(
        "  rtmp_urls: []", "  rtmp_urls: [http://ingest.example/live/hunter2-secret]"
    )
    config.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(config)
    problems = [str(issue) for issue in error.value.issues]
    assert any("video.width" in p and "multiple of 2" in p for p in problems), problems
    assert any("video.rtmp_urls[0]" in p and "rtmp://" in p for p in problems), problems
    assert "hunter2" not in str(error.value)


def test_keyframes_must_fall_on_whole_frames(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="whole number of frames"):
        load_config(DEFAULT_CONFIG, overrides={"data_dir": str(tmp_path), "video.keyframe_interval_s": 0.75})


# --------------------------------------------------------------------------------------------------------
# Playlists for a client that put its token in the URL


def test_every_reference_of_an_hls_playlist_carries_the_token() -> None:
    media = (
        "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:5\n"
        '#EXT-X-MAP:URI="init-0.m4s"\n#EXTINF:2.000000,\nchunk-0-00005.m4s\n'
        "#EXTINF:2.000000,\nchunk-0-00006.m4s\n"
    )
    assert with_access_token("media_0.m3u8", media, "ivp_a/b+c") == (
        "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:5\n"
        '#EXT-X-MAP:URI="init-0.m4s?access_token=ivp_a%2Fb%2Bc"\n#EXTINF:2.000000,\n'
        "chunk-0-00005.m4s?access_token=ivp_a%2Fb%2Bc\n#EXTINF:2.000000,\n"
        "chunk-0-00006.m4s?access_token=ivp_a%2Fb%2Bc\n"
    )


def test_a_dash_manifest_gets_the_token_on_its_templates_only() -> None:
    mpd = (
        '<MPD xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"\n'
        '\txmlns="urn:mpeg:dash:schema:mpd:2011"\n\ttype="dynamic">\n'
        '<SegmentTemplate timescale="10240" initialization="init-$RepresentationID$.m4s" '
        'media="chunk-$RepresentationID$-$Number%05d$.m4s" startNumber="1">\n</MPD>\n'
    )
    assert with_access_token("manifest.mpd", mpd, "tok") == (
        '<MPD xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"\n'
        '\txmlns="urn:mpeg:dash:schema:mpd:2011"\n\ttype="dynamic">\n'
        '<SegmentTemplate timescale="10240" initialization="init-$RepresentationID$.m4s?access_token=tok" '
        'media="chunk-$RepresentationID$-$Number%05d$.m4s?access_token=tok" startNumber="1">\n</MPD>\n'
    )


# --------------------------------------------------------------------------------------------------------
# WebRTC: the candidates of an offer the appliance will try

OFFER = (
    "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
    "a=candidate:1 1 udp 2113937151 127.0.0.1 50000 typ host generation 0\r\n"
    "a=candidate:2 1 udp 2113937151 192.168.1.57 50001 typ host generation 0\r\n"
    "a=candidate:3 1 udp 2113937151 4f2c1b7e-0d6a-4c1e-9a55-1f1d2a3b4c5d.local 50002 typ host\r\n"
    "a=candidate:4 1 udp 2113939711 ::1 50003 typ host generation 0\r\n"
    "a=end-of-candidates\r\n"
)


def _candidates(sdp: str) -> list[str]:
    return [line.split()[4] for line in sdp.splitlines() if line.startswith("a=candidate:")]


def test_loopback_only_keeps_only_loopback_candidates() -> None:
    kept = reachable_candidates(OFFER, WebRtcSettings.model_validate({"host_addresses": ["127.0.0.1"]}))
    assert _candidates(kept) == ["127.0.0.1", "::1"]
    assert "a=end-of-candidates" in kept and kept.startswith("v=0\r\nm=video")


def test_restricted_addresses_drop_mdns_names_which_would_be_resolved_by_multicast() -> None:
    kept = reachable_candidates(OFFER, WebRtcSettings.model_validate({"host_addresses": ["192.168.1.20"]}))
    assert _candidates(kept) == ["127.0.0.1", "192.168.1.57", "::1"]


def test_unrestricted_keeps_the_offer_as_it_is() -> None:
    assert reachable_candidates(OFFER, WebRtcSettings()) == OFFER


# --------------------------------------------------------------------------------------------------------
# The renderer


def ocr(image: Image) -> str:
    """What Tesseract reads in ``image`` (dark text on light reads best: the overlay is inverted)."""
    if shutil.which("tesseract") is None:
        pytest.skip("tesseract is not installed; `make test` installs tesseract-ocr")
    light = 255 - image.max(axis=2)
    ok, png = cv2.imencode(".png", light)
    assert ok
    result = subprocess.run(
        ["tesseract", "stdin", "stdout", "--psm", "11"], input=png.tobytes(), capture_output=True, check=True
    )
    return " ".join(result.stdout.decode().split())


def test_every_frame_says_what_it_is_read_back_by_ocr() -> None:
    renderer = OverlayRenderer(1280, 720, RoomPlan(5.0, 4.0))
    now = time.time()
    motion = dataclasses.replace(pose_frame(source="esp32"), estimator="motion", person_count=None)
    tracker = dataclasses.replace(pose_frame((person_at(3),), source="esp32"), estimator="tracker")
    scenes = [
        OverlayScene(pose_frame((person_at(3),)), now=now, fps=15.0),
        OverlayScene(tracker, now=now, fps=15.0),
        OverlayScene(motion, now=now, fps=15.0),
        OverlayScene(None, now=now),
        OverlayScene(pose_frame(source="esp32", ts=now - 30), now=now),
        OverlayScene(motion, detection_enabled=False, now=now),
    ]
    # One OCR pass over the six frames side by side is several times faster than five.
    frames = [renderer.render(scene) for scene in scenes]
    texts = ocr(np.vstack(frames)).split("estimated from WiFi")[1:]
    assert len(texts) == len(frames), texts
    assert "SIMULATED" in texts[0] and not any("SIMULATED" in text for text in texts[1:]), texts
    assert "pose model" in texts[0] and "#3 standing" in texts[0] and "15.0 fps" in texts[0]
    assert "tracker (skeleton drawn, not measured" in texts[1] and "#3 standing" in texts[1]
    assert "motion detector" in texts[2]
    assert "waiting for the first reading" in texts[3]
    assert "no new reading for 30 s" in texts[4]
    assert "detection is switched off" in texts[5]


@pytest.mark.parametrize(("width", "height"), [(640, 360), (640, 480), (800, 360)])
def test_keypoints_land_in_the_16_9_view_letterboxed_into_the_frame(width: int, height: int) -> None:
    """Overlay x/y are 0..1 in the virtual camera's 16:9 image (MODEL_CARD.md): a frame of another shape
    shows that image whole and centred, with bars above and below or left and right."""
    view_w, view_h = min(width, round(height * 16 / 9)), min(height, round(width * 9 / 16))
    left, top = (width - view_w) / 2, (height - view_h) / 2

    def in_frame(x: float, y: float) -> tuple[float, float]:
        return (left + x * view_w) / width, (top + y * view_h) / height

    corner = (0.85, 0.25)  # far enough from the centre that a frame filled wrongly would miss it
    persons = (person_at(1), person_at(2, (corner,) * len(STANDING)))
    image = OverlayRenderer(width, height, RoomPlan(5.0, 4.0)).render(OverlayScene(pose_frame(persons)))
    assert all(saturation(image, *in_frame(x, y)) > 100 for x, y in (*STANDING[5:], corner))
    if (width, height) != (640, 360):
        assert saturation(image, *corner) < 20, "stretched over the whole frame instead of letterboxed"


def test_joints_below_the_confidence_floor_are_not_drawn() -> None:
    renderer = OverlayRenderer(640, 360, RoomPlan(5.0, 4.0))
    unsure = renderer.render(OverlayScene(pose_frame((person_at(1, confidence=0.1),))))
    assert not np.any([saturation(unsure, x, y) > 20 for x, y in STANDING])
