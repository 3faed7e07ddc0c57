"""One delivery attempt (``WebhookSender.send``) against real HTTP servers on loopback, in process: what
reaches the receiver, and what the delivery log says when it does not work out.

The receivers (tests/webhook_support.py) check every signature from its definition (HMAC-SHA256 over
``<t>.<body>`` and over the body, computed with hmac/hashlib), never with the appliance's signing code.
Status lines are RFC 9110's reason phrases, as aiohttp sends them.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from appliance.integrations.webhooks.delivery import Attempt, WebhookSender, retry_after_s
from appliance.integrations.webhooks.guard import GuardedResolver, TargetPolicy
from appliance.integrations.webhooks.settings import WebhookConfig
from tests.webhook_support import SECRET, Received, Receiver

LOOPBACK = TargetPolicy(allow_loopback=True)
BODY = b'{"id": "e-1", "delivery_id": "d-1", "event_type": "person.detected", "data": {}}'
AGENT = "InvisPose/test"


def webhook(url: str, **fields: Any) -> WebhookConfig:
    return WebhookConfig.model_validate({"id": "recv", "url": url, "secret": SECRET, **fields})


@asynccontextmanager
async def sender(policy: TargetPolicy = LOOPBACK, **options: Any) -> AsyncIterator[WebhookSender]:
    """A sender built as the webhook sink builds it: the guard's resolver in the connector."""
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(policy), limit=0)
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
        yield WebhookSender(
            session,
            policy,
            timeout_s=options.get("timeout_s", 5.0),
            max_redirects=options.get("max_redirects", 3),
            user_agent=AGENT,
        )


@asynccontextmanager
async def receiving(answer: Callable[[Received], Awaitable[web.StreamResponse]]) -> AsyncIterator[Receiver]:
    receiver = await Receiver(answer=answer).start()
    try:
        yield receiver
    finally:
        await receiver.stop()


async def send(hook: WebhookConfig, **options: Any) -> Attempt:
    policy = options.pop("policy", LOOPBACK)
    async with sender(policy, **options) as s:
        return await s.send(hook, BODY, event_type="person.detected", delivery_id="d-1")


def answer(
    status: int, body: str = "", **headers: str
) -> Callable[[Received], Awaitable[web.StreamResponse]]:
    async def respond(received: Received) -> web.StreamResponse:
        return web.Response(status=status, text=body, headers=headers)

    return respond


async def test_a_delivery_carries_the_body_its_signatures_and_the_webhooks_headers() -> None:
    async with receiving(answer(204)) as receiver:
        attempt = await send(webhook(receiver.url("/in"), headers={"Authorization": "Bearer x"}))
    assert attempt == Attempt(204, attempt.latency_ms)
    assert attempt.succeeded
    [got] = receiver.received
    assert got.path == "/in" and got.body == BODY
    assert receiver.bad_signatures == []
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["User-Agent"] == AGENT
    assert got.headers["X-Event-Type"] == "person.detected"
    assert got.headers["X-Delivery-ID"] == "d-1"
    assert got.headers["Authorization"] == "Bearer x"


async def test_the_latency_is_the_answers_wait_in_milliseconds() -> None:
    async def slow(received: Received) -> web.StreamResponse:
        await asyncio.sleep(0.2)  # the answer's delay is what is measured, not a wait for a condition
        return web.Response(status=200)

    async with receiving(slow) as receiver:
        attempt = await send(webhook(receiver.url()))
    assert 200.0 <= attempt.latency_ms < 5000.0


async def test_an_error_answer_says_its_status_line_and_the_start_of_its_body() -> None:
    async with receiving(answer(500, "  database down\n" + "x" * 300)) as receiver:
        attempt = await send(webhook(receiver.url()))
    # 200 bytes of the answer, stripped: the 16 bytes "  database down\n" and 184 of the x's.
    assert attempt.error == "HTTP 500 Internal Server Error: database down\n" + "x" * 184
    assert (attempt.status, attempt.retry_after_s, attempt.final) == (500, None, False)


async def test_an_error_answer_without_a_body_is_its_status_line() -> None:
    async with receiving(answer(404)) as receiver:
        attempt = await send(webhook(receiver.url()))
    assert attempt.error == "HTTP 404 Not Found"
    assert 0.0 <= attempt.latency_ms < 5000.0


@pytest.mark.parametrize(
    ("status", "location", "error"),
    [
        (200, None, None),
        (299, None, None),
        (300, "/pick", "HTTP 300 Multiple Choices to /pick: not followed (a POST would become a GET); "
         "give the webhook the final URL"),
        (399, None, "HTTP 399: a redirect without Location"),  # no reason phrase: none is shown
        (400, None, "HTTP 400 Bad Request"),
    ],
)  # fmt: skip
async def test_2xx_is_success_and_3xx_a_redirect_at_both_ends_of_each_class(
    status: int, location: str | None, error: str | None
) -> None:
    async with receiving(answer(status, **({"Location": location} if location else {}))) as receiver:
        attempt = await send(webhook(receiver.url()))
    assert (attempt.status, attempt.error) == (status, error)


async def test_an_answer_that_is_not_utf8_is_shown_with_replacement_characters() -> None:
    async def latin1(received: Received) -> web.StreamResponse:
        return web.Response(status=502, body="Passerelle défaillante".encode("latin-1"))

    async with receiving(latin1) as receiver:
        attempt = await send(webhook(receiver.url()))
    assert attempt.error == "HTTP 502 Bad Gateway: Passerelle d\ufffdfaillante"


async def test_retry_after_as_an_http_date_is_counted_from_now() -> None:
    later = email.utils.formatdate(time.time() + 120, usegmt=True)  # RFC 9110 IMF-fixdate
    async with receiving(answer(503, **{"Retry-After": later})) as receiver:
        attempt = await send(webhook(receiver.url()))
    assert attempt.retry_after_s is not None and 100.0 <= attempt.retry_after_s <= 120.0


async def test_retry_after_comes_back_with_the_attempt() -> None:
    async with receiving(answer(429, **{"Retry-After": "7"})) as receiver:
        attempt = await send(webhook(receiver.url()))
    assert (attempt.status, attempt.retry_after_s) == (429, 7.0)
    assert attempt.error == "HTTP 429 Too Many Requests"


async def test_307_and_308_are_followed_with_the_same_post() -> None:
    async def moved(received: Received) -> web.StreamResponse:
        if received.path == "/old":
            return web.Response(status=307, headers={"Location": "/older"})
        if received.path == "/older":
            return web.Response(status=308, headers={"Location": "/new"})
        return web.Response(status=201)

    async with receiving(moved) as receiver:
        attempt = await send(webhook(receiver.url("/old"), headers={"Authorization": "Bearer x"}))
    assert attempt.status == 201 and attempt.error is None
    assert [r.path for r in receiver.received] == ["/old", "/older", "/new"]
    assert all(r.body == BODY and r.headers["Authorization"] == "Bearer x" for r in receiver.received)
    assert receiver.bad_signatures == []


async def test_the_webhooks_own_headers_never_go_to_another_origin() -> None:
    async with (
        receiving(answer(204)) as other,
        receiving(answer(308, Location=other.url("/there"))) as first,
    ):
        attempt = await send(webhook(first.url(), headers={"Authorization": "Bearer x"}))
    assert attempt.status == 204
    [got] = other.received
    assert "Authorization" not in got.headers
    assert got.headers["X-Delivery-ID"] == "d-1" and got.body == BODY and other.bad_signatures == []


async def test_redirects_stop_after_max_redirects() -> None:
    async with receiving(answer(307, Location="/again")) as receiver:
        attempt = await send(webhook(receiver.url()), max_redirects=2)
    assert len(receiver.received) == 3  # the first request and two redirects
    assert attempt.status == 307 and not attempt.final
    assert attempt.error == "HTTP 307 Temporary Redirect to /again: not followed after 2 redirects"


async def test_no_redirect_is_followed_when_max_redirects_is_0() -> None:
    async with receiving(answer(308, Location="/again")) as receiver:
        attempt = await send(webhook(receiver.url()), max_redirects=0)
    assert len(receiver.received) == 1
    assert attempt.error == "HTTP 308 Permanent Redirect to /again: not followed after 0 redirects"


async def test_other_redirects_are_final_answers_since_a_post_would_become_a_get() -> None:
    async with receiving(answer(302, Location="/get")) as receiver:
        attempt = await send(webhook(receiver.url()))
    assert len(receiver.received) == 1
    assert attempt.error == (
        "HTTP 302 Found to /get: not followed (a POST would become a GET); give the webhook the final URL"
    )


async def test_a_redirect_without_location_is_not_followed() -> None:
    async with receiving(answer(307)) as receiver:
        attempt = await send(webhook(receiver.url()))
    assert len(receiver.received) == 1
    assert attempt.error == "HTTP 307 Temporary Redirect: a redirect without Location"


async def test_a_redirect_away_from_http_is_final() -> None:
    async with receiving(answer(307, Location="ftp://files.example/drop")) as receiver:
        attempt = await send(webhook(receiver.url()))
    assert attempt.status == 307 and attempt.final
    assert attempt.error == "redirected to ftp://files.example/drop: not HTTP"
    assert 0.0 <= attempt.latency_ms < 5000.0


async def test_a_redirect_to_https_is_followed() -> None:
    # The receiver speaks plain HTTP, so the TLS handshake the redirect leads to fails: a retry.
    async with (
        receiving(answer(204)) as plain,
        receiving(answer(308, Location=f"https://127.0.0.1:{plain.port}/tls")) as receiver,
    ):
        attempt = await send(webhook(receiver.url()))
    assert len(receiver.received) == 1 and plain.received == []
    assert attempt.status is None and not attempt.final
    assert attempt.error is not None and "not HTTP" not in attempt.error


async def test_a_forbidden_address_is_refused_without_a_connection() -> None:
    async with receiving(answer(204)) as receiver:
        attempt = await send(webhook(receiver.url()), policy=TargetPolicy())
    assert receiver.received == []
    assert attempt.status is None and attempt.final
    assert (
        attempt.error
        == "target refused: 127.0.0.1 is loopback; set webhooks.allow_loopback: true to allow it"
    )
    assert 0.0 <= attempt.latency_ms < 5000.0


async def test_a_redirect_to_a_forbidden_address_is_refused() -> None:
    async with receiving(answer(307, Location="http://169.254.169.254/latest/meta-data")) as receiver:
        attempt = await send(webhook(receiver.url()))
    assert len(receiver.received) == 1
    assert attempt.status is None and attempt.final
    assert attempt.error == (
        "target refused: 169.254.169.254 is a cloud metadata endpoint; "
        "set webhooks.allow_cloud_metadata: true to allow it"
    )


async def test_a_name_resolving_to_a_forbidden_address_is_refused_by_the_resolver() -> None:
    async with receiving(answer(204)) as receiver:
        attempt = await send(webhook(f"http://localhost:{receiver.port}/hook"), policy=TargetPolicy())
    assert receiver.received == []
    assert attempt.status is None and attempt.final
    assert attempt.error is not None and attempt.error.startswith("target refused: localhost (")
    assert 0.0 <= attempt.latency_ms < 5000.0


async def test_a_closed_port_is_retried() -> None:
    receiver = await Receiver().start()
    await receiver.stop()  # its port, now closed
    attempt = await send(webhook(receiver.url()))
    assert attempt.status is None and not attempt.final
    assert attempt.error is not None and attempt.error.startswith("cannot connect: ")
    assert 0.0 <= attempt.latency_ms < 5000.0


async def test_no_answer_within_the_timeout_is_retried() -> None:
    never = asyncio.Event()

    async def hang(received: Received) -> web.StreamResponse:
        await never.wait()
        return web.Response(status=204)

    async with receiving(hang) as receiver:
        attempt = await send(webhook(receiver.url()), timeout_s=0.25)
        never.set()
    assert attempt.status is None and not attempt.final
    assert attempt.error == "no answer within 0.25 s"
    assert 250.0 <= attempt.latency_ms < 5000.0


async def test_a_connection_dropped_mid_answer_is_retried() -> None:
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        attempt = await send(webhook(f"http://127.0.0.1:{port}/hook"))
    assert attempt.status is None and not attempt.final
    assert attempt.error is not None and attempt.error.startswith("ServerDisconnectedError: ")
    assert 0.0 <= attempt.latency_ms < 5000.0


@pytest.fixture
def new_york_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The box's local time is not UTC."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("new_york_time")
def test_retry_after_in_asctime_format_is_utc_whatever_the_boxs_time_zone() -> None:
    # RFC 9110 section 5.6.7: recipients accept asctime dates, which carry no zone and are UTC.
    now = 1_700_000_000.0  # Tue Nov 14 22:13:20 2023 UTC
    assert retry_after_s("Tue Nov 14 22:14:20 2023", now) == 60.0
    assert retry_after_s("Tuesday, 14-Nov-23 22:15:20 GMT", now) == 120.0  # RFC 850, also accepted
