"""WebRTC checks that run only inside a loopback-only network namespace: ``test_webrtc.py`` starts them
there (``unshare -n``), because WebRTC sends packets off the machine unless every part is told not to, and
a namespace with nothing but ``lo`` makes sure of it. The name does not start with ``test_`` so that the
suite never collects this file outside that namespace.

- The appliance's SDP answer offers 127.0.0.1 and nothing else (``video.webrtc.host_addresses``), prefers
  H.264, and an aiortc client receives frames from it.
- Headless Chromium (Debian's, with its mDNS hiding of local addresses off and loopback allowed) plays the
  stream: a ``<video>`` reaches ``readyState >= 2`` and a canvas grab of it shows the skeleton's colours.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from tests.app_support import Client, scoped, start
from tests.e2e.conftest import CHROMIUM_ARGS, chromium_path
from tests.video_support import Publisher, output, person_at, stream_status, until

WIDTH, HEIGHT, FPS = 320, 180, 10
VIDEO = {
    "video.width": WIDTH,
    "video.height": HEIGHT,
    "video.fps": FPS,
    "video.webrtc.host_addresses": ["127.0.0.1"],
}
# Beyond the usual loopback-only flags: no mDNS names in place of local addresses (Chromium would
# multicast them), and loopback candidates allowed (Chromium drops them by default).
WEBRTC_ARGS = [
    *CHROMIUM_ARGS,
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
]
PLAYER = """<!doctype html><html><body><script>
async function play(token) {
  const pc = new RTCPeerConnection({iceServers: []});
  window.pc = pc;
  pc.addTransceiver('video', {direction: 'recvonly'});
  const video = document.createElement('video');
  video.muted = true; video.autoplay = true; video.playsInline = true;
  document.body.appendChild(video);
  pc.ontrack = (e) => { video.srcObject = new MediaStream([e.track]); };
  await pc.setLocalDescription(await pc.createOffer());
  const response = await fetch('/api/v1/stream/webrtc', {
    method: 'POST',
    headers: {'Content-Type': 'application/sdp', 'Authorization': 'Bearer ' + token},
    body: pc.localDescription.sdp,
  });
  if (response.status !== 201) return {error: response.status + ' ' + await response.text()};
  window.session = response.headers.get('Location');
  await pc.setRemoteDescription({type: 'answer', sdp: await response.text()});
  const deadline = Date.now() + 15000;
  while (video.readyState < 2 && Date.now() < deadline) await new Promise(r => setTimeout(r, 50));
  await new Promise(r => setTimeout(r, 300));
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  const context = canvas.getContext('2d');
  context.drawImage(video, 0, 0);
  const pixels = context.getImageData(0, 0, canvas.width || 1, canvas.height || 1).data;
  let coloured = 0, lit = 0;
  for (let i = 0; i < pixels.length; i += 4) {
    const high = Math.max(pixels[i], pixels[i + 1], pixels[i + 2]);
    const low = Math.min(pixels[i], pixels[i + 1], pixels[i + 2]);
    if (high - low > 60) coloured++;
    if (high > 100) lit++;
  }
  let codec = null;
  (await pc.getStats()).forEach((s) => { if (s.type === 'codec') codec = s.mimeType; });
  return {readyState: video.readyState, width: video.videoWidth, height: video.videoHeight,
          coloured, lit, codec};
}
async function hangUp(token) {
  await fetch(window.session, {method: 'DELETE', headers: {'Authorization': 'Bearer ' + token},
                               keepalive: true});
  window.pc.close();
}
</script></body></html>"""


@pytest.fixture(autouse=True)
def _inside_a_loopback_only_namespace() -> None:
    # Not /sys/class/net: sysfs shows the namespace that mounted it, not this process's.
    interfaces = sorted(name for _, name in socket.if_nameindex())
    if interfaces != ["lo"]:
        pytest.fail(f"run through tests/e2e/test_webrtc.py (unshare -n); interfaces here: {interfaces}")


async def _viewer(aiohttp_client: Any, tmp_path: Path) -> tuple[Client, dict[str, str]]:
    client, admin = await start(aiohttp_client, tmp_path, silent=True, **VIDEO)
    return client, await scoped(client, admin, "stream:subscribe", "system:read")


async def test_the_answer_offers_only_127_0_0_1_and_an_aiortc_client_receives_frames(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client, viewer = await _viewer(aiohttp_client, tmp_path)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        transceiver = pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        async with Publisher(client, (person_at(1),)):
            response = await client.post(
                "/api/v1/stream/webrtc",
                data=pc.localDescription.sdp,
                headers={**viewer, "Content-Type": "application/sdp"},
            )
            assert response.status == 201, await response.text()
            assert response.content_type == "application/sdp"
            location = response.headers["Location"]
            answer = await response.text()
            candidates = [line for line in answer.splitlines() if line.startswith("a=candidate:")]
            assert candidates, answer
            assert {line.split()[4] for line in candidates} == {"127.0.0.1"}, candidates
            video_line = next(line for line in answer.splitlines() if line.startswith("m=video"))
            first_payload = video_line.split()[3]
            assert f"a=rtpmap:{first_payload} H264/90000" in answer, "H.264 is preferred"

            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            frame = await transceiver.receiver.track.recv()
            assert (frame.width, frame.height) == (WIDTH, HEIGHT)
            assert output(await stream_status(client, viewer), "webrtc")["viewers"] == 1
            assert (await client.delete(location, headers=viewer)).status == 204
            assert (await client.delete(location, headers=viewer)).status == 404
            assert output(await stream_status(client, viewer), "webrtc")["viewers"] == 0
    finally:
        await pc.close()


async def test_headless_chromium_plays_the_stream(aiohttp_client: Any, tmp_path: Path) -> None:
    async_api = pytest.importorskip("playwright.async_api", reason="playwright is installed by `make test`")
    executable = chromium_path()
    assert executable is not None, "Debian's chromium is installed by `make test`"
    client, viewer = await _viewer(aiohttp_client, tmp_path)
    token = viewer["Authorization"].removeprefix("Bearer ")
    page_url = str(client.make_url("/webrtc-player-under-test"))
    async with Publisher(client, (person_at(1),)), async_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=WEBRTC_ARGS
        )
        try:
            page = await browser.new_page()
            # Served from the appliance's own origin, as the web UI would be, so the POST is same-origin.
            await page.route(page_url, lambda route: route.fulfill(body=PLAYER, content_type="text/html"))
            await page.goto(page_url)
            played = await page.evaluate("token => play(token)", token)
            print(f"chromium played: {played}")
            assert "error" not in played, played
            assert played["readyState"] >= 2 and (played["width"], played["height"]) == (WIDTH, HEIGHT)
            assert played["coloured"] > 50, "the skeleton's colours are in the picture"
            assert played["lit"] > played["coloured"], "so is the overlay's text"
            await page.evaluate("token => hangUp(token)", token)
        finally:
            await browser.close()
    await until(
        lambda: _no_webrtc_viewer(client, viewer),
        10,
        "the session ends, and rendering with it, when the page hangs up",
    )


async def _no_webrtc_viewer(client: Client, viewer: dict[str, str]) -> bool:
    body = await stream_status(client, viewer)
    return output(body, "webrtc")["viewers"] == 0 and not body["render"]["active"]
