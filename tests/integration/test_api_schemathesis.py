"""Property-based API testing: schemathesis generates requests for every operation of the served OpenAPI
document and checks the real application's answers, with an admin token, against the document: no 5xx,
only documented statuses and content types, and bodies that match their schemas.

Bounded so that it fits a normal test run: at most ``MAX_EXAMPLES`` requests per operation and about
``BUDGET_S`` seconds in all (operations left when the budget runs out are reported as skipped). The auth
operations are left out: they are the security suite's, and random calls would log the admin out.

Tuples (a node's ``position``, a zone's ``polygon`` points) are described with ``prefixItems``, as OpenAPI
3.1 and pydantic do; schemathesis 4.32 rewrites those to the old ``items: [...]`` form and then rejects its
own rewrite when validating a response (``InvalidSchema``). The document is therefore loaded with each
tuple of one item type restated as ``items`` plus a fixed length, which accepts exactly the same values.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import ClientSession, web
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from appliance.api.keys import HUB
from appliance.api.openapi import OPENAPI_PATH
from appliance.app import build_app
from tests.app_support import GENEROUS_LIMITS
from tests.auth_support import ADMIN, config_in
from tests.conftest import pick_free_port

MAX_EXAMPLES = 25
BUDGET_S = 60.0
REQUEST_TIMEOUT_S = 15.0
SKIPPED_TAGS = frozenset({"auth"})
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@dataclass(frozen=True, slots=True)
class ServedApp:
    base_url: str
    headers: dict[str, str]


async def _setup(runner: web.AppRunner, port: int) -> dict[str, str]:
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with ClientSession() as session:
        response = await session.post(f"http://127.0.0.1:{port}/api/v1/auth/setup", json=ADMIN)
        token = (await response.json())["access_token"]
    hub = runner.app[HUB]
    while hub.latest("pose") is None:  # noqa: ASYNC110 - the hub offers no event to wait on
        await asyncio.sleep(0.05)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def served_app(tmp_path: Path) -> Iterator[ServedApp]:
    """The real application on a loopback port, served from its own thread and event loop, since the
    schemathesis calls below block."""
    port = pick_free_port()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="served-app", daemon=True)
    thread.start()
    runner = web.AppRunner(build_app(config_in(tmp_path, **GENEROUS_LIMITS)))
    headers = asyncio.run_coroutine_threadsafe(_setup(runner, port), loop).result(timeout=60)
    try:
        yield ServedApp(f"http://127.0.0.1:{port}", headers)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def without_homogeneous_prefix_items(node: Any) -> Any:
    """``node`` with every ``prefixItems`` whose members are all one schema rewritten as ``items``."""
    if isinstance(node, list):
        return [without_homogeneous_prefix_items(item) for item in node]
    if not isinstance(node, dict):
        return node
    rewritten = {key: without_homogeneous_prefix_items(value) for key, value in node.items()}
    members = rewritten.get("prefixItems")
    if members and all(member == members[0] for member in members) and "items" not in rewritten:
        del rewritten["prefixItems"]
        rewritten["items"] = members[0]
    return rewritten


def test_every_operation_conforms_to_the_document(served_app: ServedApp) -> None:
    document = requests.get(served_app.base_url + OPENAPI_PATH, timeout=REQUEST_TIMEOUT_S).json()
    schema = schemathesis.openapi.from_dict(without_homogeneous_prefix_items(document))
    deadline = time.monotonic() + BUDGET_S
    failures: list[str] = []
    tested: list[str] = []
    skipped: list[str] = []
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            failures.append(f"an operation the document does not describe validly: {result.err()}")
            continue
        operation = result.ok()
        if SKIPPED_TAGS & set(operation.definition.raw.get("tags", [])):
            continue
        if time.monotonic() > deadline:
            skipped.append(operation.label)
            continue

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case: Any) -> None:
            if time.monotonic() > deadline:
                return
            response = case.call(
                base_url=served_app.base_url, headers=served_app.headers, timeout=REQUEST_TIMEOUT_S
            )
            try:
                case.validate_response(response, checks=CHECKS)
            except AssertionError as exc:
                failures.append(f"{case.operation.label}: {exc}")

        exercise()
        tested.append(operation.label)
    assert not failures, "\n\n".join(failures[:10])
    assert len(tested) >= len(skipped), f"the budget left most operations untested: {skipped}"
