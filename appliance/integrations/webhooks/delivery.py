"""One attempt to deliver one body to one webhook, and what its answer means for the delivery.

``WebhookSender.send`` never raises for what the far end does: a refused target, a network error, a
timeout or an HTTP answer all come back as an ``Attempt``, which ``verdict`` turns into delivered, retry
or dead. Redirects: 307 and 308 (which keep the POST and its body) are followed up to ``max_redirects``
hops, each target checked by the guard, and the webhook's own headers are not sent to another origin;
any other redirect is a final answer, since following it would turn the POST into a GET.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from datetime import UTC
from typing import Literal

import aiohttp
from yarl import URL

from appliance.integrations.webhooks.guard import TargetPolicy, TargetRefusedError, check_url
from appliance.integrations.webhooks.settings import RetryPolicy, WebhookConfig
from appliance.integrations.webhooks.signing import (
    DELIVERY_ID_HEADER,
    EVENT_TYPE_HEADER,
    signature_headers,
)

Verdict = Literal["delivered", "retry", "dead"]
_FOLLOWED_REDIRECTS = (307, 308)
# How much of an answer's body is read (so the connection can be reused) and how much of it is kept in
# the delivery log's error.
_ANSWER_BYTES = 64 * 1024
_ERROR_EXCERPT = 200
# A Retry-After beyond a day is taken as a day: the delivery stays pending, and replaying it is possible.
RETRY_AFTER_CAP_S = 86_400.0


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one attempt got: an HTTP ``status``, or an ``error`` (network, timeout, refused target).
    ``final``: a failure no retry can mend (a refused target, a redirect to something that is not HTTP)."""

    status: int | None
    latency_ms: float
    error: str | None = None
    retry_after_s: float | None = None
    final: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status <= 299


def verdict(attempt: Attempt, policy: RetryPolicy, number: int) -> Verdict:
    """Delivered on 2xx; dead on a final failure or answer; otherwise retry, until the ``number``-th
    attempt is the policy's last."""
    if attempt.succeeded:
        return "delivered"
    if attempt.final:
        return "dead"
    retriable = attempt.status is None or policy.retries(attempt.status)
    return "retry" if retriable and number < policy.max_attempts else "dead"


def retry_after_s(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date), or None."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), RETRY_AFTER_CAP_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = when.timestamp() - now
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_S)


class WebhookSender:
    """Sends signed deliveries through one aiohttp session (whose connector's resolver is the guard's)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        policy: TargetPolicy,
        *,
        timeout_s: float,
        max_redirects: int,
        user_agent: str,
    ) -> None:
        self.session = session
        self.policy = policy
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.timeout_s = timeout_s
        self.max_redirects = max_redirects
        self.user_agent = user_agent

    async def send(self, hook: WebhookConfig, body: bytes, *, event_type: str, delivery_id: str) -> Attempt:
        signed = signature_headers(hook.secret.get_secret_value(), body, int(time.time()))
        fixed = {
            **signed,
            "Content-Type": "application/json",
            "User-Agent": self.user_agent,
            EVENT_TYPE_HEADER: event_type,
            DELIVERY_ID_HEADER: delivery_id,
        }
        url = URL(hook.url)
        origin = url.origin()
        started = time.perf_counter()

        def took() -> float:
            return (time.perf_counter() - started) * 1000.0

        redirects = 0
        try:
            while True:
                check_url(url, self.policy)
                # The webhook's own headers (credentials, often) go to its own origin only.
                headers = {**hook.headers, **fixed} if url.origin() == origin else fixed
                async with self.session.post(
                    url, data=body, headers=headers, allow_redirects=False, timeout=self.timeout
                ) as response:
                    answer = await response.content.read(_ANSWER_BYTES)
                    location = response.headers.get("Location")
                    if response.status in _FOLLOWED_REDIRECTS and location and redirects < self.max_redirects:
                        redirects += 1
                        url = url.join(URL(location))
                        if url.scheme not in ("http", "https"):
                            return Attempt(
                                response.status, took(), f"redirected to {url}: not HTTP", final=True
                            )
                        continue
                    return self._answer(response, answer, took())
        except TargetRefusedError as exc:
            return Attempt(None, took(), str(exc), final=True)
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, TargetRefusedError):
                return Attempt(None, took(), str(exc.os_error), final=True)
            return Attempt(None, took(), f"cannot connect: {exc.os_error}")
        except TimeoutError:
            return Attempt(None, took(), f"no answer within {self.timeout_s:g} s")
        except aiohttp.ClientError as exc:
            return Attempt(None, took(), f"{type(exc).__name__}: {exc}")

    def _answer(self, response: aiohttp.ClientResponse, answer: bytes, latency_ms: float) -> Attempt:
        status = response.status
        if 200 <= status <= 299:
            return Attempt(status, latency_ms)
        excerpt = answer[:_ERROR_EXCERPT].decode("utf-8", "replace").strip()
        error = f"HTTP {status} {response.reason or ''}".rstrip()
        if 300 <= status <= 399:
            location = response.headers.get("Location")
            if not location:
                error += ": a redirect without Location"
            elif status in _FOLLOWED_REDIRECTS:
                error += f" to {location}: not followed after {self.max_redirects} redirects"
            else:
                error += f" to {location}: not followed (a POST would become a GET); "
                error += "give the webhook the final URL"
        elif excerpt:
            error += f": {excerpt}"
        return Attempt(
            status, latency_ms, error, retry_after_s(response.headers.get("Retry-After"), time.time())
        )
