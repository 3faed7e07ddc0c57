"""Settings' integrations in a real Chromium against the real application: a webhook made in the page
delivers signed events to a real receiver on loopback, its test and deliveries show, it is changed and
deleted; the MQTT section against a real Mosquitto (connected, then the broker gone, then back); the video
section with its outputs, a snapshot and the MJPEG stream; and each section's "off" text."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from appliance.api.keys import HUB
from appliance.contracts import EventType
from tests.e2e.test_ui_pages import admin_token, api_json, poll
from tests.e2e.ui_support import UiSession, onboard, screenshot, serve
from tests.factories import event
from tests.mqtt_support import running_mosquitto
from tests.webhook_support import SECRET, Received, Receiver, hook, until

pytestmark = pytest.mark.slow
HEX_64 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture
def expect() -> Any:
    return pytest.importorskip("playwright.async_api").expect


@pytest.fixture
async def ui(browser: Any) -> AsyncIterator[UiSession]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    yield UiSession(context)
    await context.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    started = await Receiver(secret="").start()  # the secret is the one the page makes
    yield started
    await started.stop()


async def show_integrations(page: Any) -> None:
    """A window tall enough for the webhooks and MQTT cards, scrolled to them (below the banner)."""
    await page.set_viewport_size({"width": 1280, "height": 1600})
    await page.evaluate(
        """() => {
            const banner = document.getElementById("simulated-banner");
            const top = document.getElementById("webhooks-card").getBoundingClientRect().top + window.scrollY;
            window.scrollTo(0, top - (banner.hidden ? 0 : banner.offsetHeight) - 12);
        }"""
    )


async def test_webhook_made_in_settings_delivers_signed_events_and_is_deleted(
    ui: UiSession, expect: Any, tmp_path: Path, receiver: Receiver
) -> None:
    with running_mosquitto(tmp_path) as broker:  # for the screenshot: MQTT connected beside the webhook
        server = await serve(
            tmp_path, **{"webhooks.allow_loopback": True, "mdns.enabled": False, "mqtt": broker.settings()}
        )
        try:
            page = await ui.page(str(server.make_url("/")))
            await onboard(page, expect)
            await page.click("#nav a[data-page=settings]")
            await expect(page.locator("#webhooks")).to_contain_text("No webhooks yet")

            # The names and wildcards it offers come from the appliance's own OpenAPI document.
            await page.get_by_text("Which events").click()
            choices = page.locator("#webhook-form details")
            for name in ("person.*", "alert.*", "person.fall_detected", "analytics.report_generated"):
                await expect(choices).to_contain_text(name)

            # A pattern that is no event: the API's own words come back, and nothing is made.
            await page.fill("#webhook-url", receiver.url("/from-ui"))
            await page.fill("#webhook-events", "person.flying")
            await page.click("#create-webhook")
            await expect(page.locator("#webhooks-error")).to_contain_text("'person.flying' is not an event")

            # The secret is made in the browser, before the webhook exists, so the receiver has it first.
            secret = await page.input_value("#webhook-secret")
            assert HEX_64.match(secret), secret
            receiver.secret = secret
            await page.fill("#webhook-events", "person.fall_detected, alert.*")
            await page.click("#create-webhook")
            await expect(page.locator("#new-webhook-box")).to_contain_text("shown here for the last time")
            assert await page.input_value("#new-webhook-secret") == secret
            assert await page.input_value("#webhook-secret") != secret  # the next webhook gets a new one
            card = page.locator("#webhooks article.webhook")
            await expect(card).to_have_count(1)
            await expect(card).to_contain_text(receiver.url("/from-ui"))
            await expect(card.locator(".webhook-state")).to_contain_text("on")
            token = await admin_token(server)
            _, listed = await api_json(server, "/api/v1/webhooks", token)
            (made,) = listed["items"]
            assert made["events"] == ["person.fall_detected", "alert.*"] and made["active"] is True

            # A real event from the hub reaches the receiver, signed with the page's secret.
            fall = event(EventType.PERSON_FALL_DETECTED, person_id=7, zone="sofa")
            server.app[HUB].publish(fall)
            await until(
                lambda: any(r.event_type == "person.fall_detected" for r in receiver.received), "the fall"
            )
            assert not receiver.bad_signatures, receiver.bad_signatures

            await card.get_by_role("button", name="Send test").click()
            await expect(card.locator(".test-result")).to_contain_text(
                re.compile(r"Test delivered: the receiver answered HTTP 204 in \d+ ms")
            )
            assert receiver.received[-1].event_type == "webhook.test"
            assert not receiver.bad_signatures, receiver.bad_signatures

            await expect(card.locator(".webhook-state")).to_contain_text("1 delivered", timeout=10_000)
            await card.get_by_role("button", name="Deliveries").click()
            row = card.locator('.deliveries tr[data-outcome="delivered"]:has-text("person.fall_detected")')
            await expect(row).to_contain_text("HTTP 204")
            await expect(page.locator("#mqtt-connection")).to_have_text("connected", timeout=10_000)
            await show_integrations(page)
            await screenshot(page, "settings", for_docs=True)
            await page.set_viewport_size({"width": 375, "height": 812})
            await card.scroll_into_view_if_needed()
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, f"with a webhook the page is {width} px wide on a 375 px screen"
            await screenshot(page, "phone-settings-webhook")
            await page.set_viewport_size({"width": 1280, "height": 900})

            # Paused and narrowed from the page, as the API then shows it.
            await card.locator("input[name=active]").uncheck()
            await expect(card.locator(".webhook-state")).to_contain_text("paused")
            await card.locator("input[name=events]").fill("alert.*")
            await card.get_by_role("button", name="Save").click()
            await expect(card.locator("input[name=events]")).to_have_value("alert.*")
            _, listed = await api_json(server, "/api/v1/webhooks", token)
            assert [(h["events"], h["active"]) for h in listed["items"]] == [(["alert.*"], False)]

            # Deleted only on the second click.
            delete = card.get_by_role("button", name="Delete")
            await delete.click()
            await expect(card).to_contain_text("Really delete it")
            assert len((await api_json(server, "/api/v1/webhooks", token))[1]["items"]) == 1
            await card.get_by_role("button", name=re.compile("Really delete")).click()
            await expect(page.locator("#webhooks")).to_contain_text("No webhooks yet")
            assert (await api_json(server, "/api/v1/webhooks", token))[1]["items"] == []
            # The refused pattern, on purpose: its 400, and Chromium's console line about it.
            ui.assert_clean(
                allowed=r"^400 .*/api/v1/webhooks$|^console: Failed to load resource: .* 400 \(Bad Request\)$"
            )
        finally:
            await server.close()


async def test_a_dead_letter_shows_with_its_error_and_is_replayed_from_settings(
    ui: UiSession, expect: Any, tmp_path: Path, receiver: Receiver
) -> None:
    answers = [410]  # gone: a final answer, so the delivery becomes a dead letter at once

    async def answer(received: Received) -> web.StreamResponse:
        return web.Response(status=answers[-1])

    receiver.answer = answer
    receiver.secret = SECRET
    seed = hook(receiver, "node-red", events=["person.fall_detected"])
    server = await serve(
        tmp_path, **{"webhooks.allow_loopback": True, "mdns.enabled": False, "webhooks.endpoints": [seed]}
    )
    try:
        page = await ui.page(str(server.make_url("/")))
        await onboard(page, expect)
        await page.click("#nav a[data-page=settings]")
        card = page.locator('#webhooks article[data-webhook-id="node-red"]')
        await expect(card).to_contain_text("node-red, from appliance.yaml")
        await expect(card.get_by_role("button", name="Replay dead letters")).to_be_hidden()
        token = await admin_token(server)
        server.app[HUB].publish(event(EventType.PERSON_FALL_DETECTED, person_id=3))

        async def dead() -> bool:
            _, body = await api_json(server, "/api/v1/webhooks/node-red", token)
            return bool(body["status"]["dead_letters"] == 1)

        await poll(dead)  # the page polls too: its figures follow without a reload
        await expect(card.locator(".webhook-state")).to_contain_text("1 dead letter ·", timeout=10_000)
        await expect(card).to_contain_text("Last error:")
        await expect(card.locator(".webhook-state")).to_contain_text("last: HTTP 410")

        answers.append(204)
        await card.get_by_role("button", name="Replay dead letters").click()
        await expect(card.locator(".test-result")).to_have_text(
            "1 dead letter sent again, before newer events."
        )
        await until(lambda: len(receiver.received) == 2, "the replayed delivery")
        assert receiver.received[0].delivery_id == receiver.received[1].delivery_id  # the same delivery
        assert not receiver.bad_signatures, receiver.bad_signatures

        async def delivered() -> bool:
            _, body = await api_json(server, "/api/v1/webhooks/node-red/deliveries", token)
            return [a["outcome"] for a in body["items"]] == ["delivered", "dead"]

        await poll(delivered)
        await expect(card.locator(".webhook-state")).to_contain_text("0 dead letters", timeout=10_000)
        await expect(card.get_by_role("button", name="Replay dead letters")).to_be_hidden()
        await card.get_by_role("button", name="Deliveries").click()
        rows = card.locator(".deliveries tbody tr")
        await expect(rows).to_have_count(2)
        await expect(rows.nth(0)).to_contain_text("delivered: HTTP 204")
        await expect(rows.nth(1)).to_contain_text("failed for good: HTTP 410")
        ui.assert_clean()
    finally:
        await server.close()


async def test_mqtt_section_follows_a_real_broker(ui: UiSession, expect: Any, tmp_path: Path) -> None:
    with running_mosquitto(tmp_path) as broker:
        server = await serve(tmp_path, **{"mdns.enabled": False, "mqtt": broker.settings()})
        try:
            page = await ui.page(str(server.make_url("/")))
            await onboard(page, expect)
            await page.click("#nav a[data-page=settings]")
            status = page.locator("#mqtt-status")
            await expect(page.locator("#mqtt-connection")).to_have_text("connected", timeout=10_000)
            await expect(status).to_contain_text(f"127.0.0.1:{broker.port}")
            await expect(status).to_contain_text("set in appliance.yaml (mqtt.host)")
            broker.stop()
            await expect(page.locator("#mqtt-connection")).to_have_text("not connected", timeout=10_000)
            await expect(page.locator("#mqtt-error")).not_to_be_empty()
            broker.start()
            await expect(page.locator("#mqtt-connection")).to_have_text("connected", timeout=10_000)
            await expect(status).to_contain_text(re.compile(r"Connections\s*2 of"))
            ui.assert_clean()
        finally:
            await server.close()


async def test_integrations_that_are_off_say_how_to_turn_them_on(
    ui: UiSession, expect: Any, tmp_path: Path
) -> None:
    server = await serve(tmp_path, **{"webhooks.enabled": False, "video.enabled": False})
    try:
        page = await ui.page(str(server.make_url("/")))
        await onboard(page, expect)
        await page.click("#nav a[data-page=settings]")
        await expect(page.locator("#mqtt-off")).to_have_text(
            re.compile(r"^MQTT is off: set mqtt.enabled: true in appliance.yaml")
        )
        await expect(page.locator("#webhooks-off")).to_contain_text("set webhooks.enabled: true")
        await expect(page.locator("#webhook-form")).to_be_hidden()
        await expect(page.locator("#video-off")).to_contain_text("set video.enabled: true")
        await expect(page.locator("#video-controls")).to_be_hidden()
        ui.assert_clean()
    finally:
        await server.close()


async def test_video_section_shows_outputs_a_snapshot_and_the_mjpeg_stream(
    ui: UiSession, expect: Any, tmp_path: Path
) -> None:
    server = await serve(tmp_path)
    try:
        page = await ui.page(str(server.make_url("/")))
        await onboard(page, expect)
        await page.click("#nav a[data-page=settings]")
        outputs = page.locator("#video-outputs")
        await expect(outputs.locator('tr[data-output="mjpeg"]')).to_contain_text("idle")
        addresses = page.locator("#video-addresses")
        await expect(addresses).to_contain_text(str(server.make_url("/api/v1/stream/mjpeg")))
        await expect(addresses).to_contain_text(str(server.make_url("/api/v1/pose/snapshot.jpg")))
        await page.click("#video-snapshot")
        still = page.locator("#video-still")
        await expect(still).to_be_visible()
        size = await still.evaluate("(img) => img.decode().then(() => [img.naturalWidth, img.naturalHeight])")
        assert size == [1280, 720]
        await page.click("#video-watch")
        await expect(page.locator("#video-watch")).to_have_attribute("aria-pressed", "true")
        await poll(lambda: page.locator("#video-mjpeg").evaluate("(img) => img.naturalWidth > 0"))
        mjpeg = outputs.locator('tr[data-output="mjpeg"]')
        await expect(mjpeg).to_contain_text("running", timeout=10_000)
        await page.click("#video-watch")
        await expect(page.locator("#video-mjpeg")).to_have_count(0)
        await expect(mjpeg).to_contain_text("idle", timeout=10_000)
        # Closing the MJPEG stream (the user's "Stop watching") is an aborted request, by design.
        ui.assert_clean(
            allowed=r"^request failed: .*/api/v1/stream/mjpeg\?access_token=\S+ net::ERR_ABORTED$"
        )
    finally:
        await server.close()
