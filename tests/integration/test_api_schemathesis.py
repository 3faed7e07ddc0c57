"""Property-based API testing: schemathesis generates requests for every operation of the served OpenAPI
document and checks the real application's answers, with an admin token, against the document.

Three kinds of request per operation, each bounded by ``MAX_EXAMPLES``:

- positive: what the document allows; the answers must be no 5xx, only documented statuses and content
  types, and bodies that match their schemas;
- negative (operations that take input): what the document forbids; it must be refused
  (``negative_data_rejection``): a lax server that coerces ``"yes"`` into ``true`` fails here;
- rule-following (the configuration's item operations): positive requests that also keep the rules the
  document states in words (the body's ``id`` equals the path's, an item that exists, points inside the
  room), so that the success answers of replace, apply and get are checked too, not only their 404s and
  400s. Each of these operations must succeed at least once.

Then every path is asked with a method it does not document: 405 with an ``Allow`` header that lists
exactly the documented methods (and HEAD beside GET), as RFC 9110 requires.

The auth operations are left out: they are the security suite's, and random calls would log the admin out.
The whole run takes about ``BUDGET_S`` seconds at most (operations left when it runs out are reported).

Tuples (a node's ``position``, a zone's ``polygon`` points) are described with ``prefixItems``, as OpenAPI
3.1 and pydantic do; schemathesis 4.32 rewrites those to the old ``items: [...]`` form and then rejects its
own rewrite when validating a response (``InvalidSchema``). The document is therefore loaded with each
tuple of one item type restated as ``items`` plus a fixed length, which accepts exactly the same values.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import ClientSession, web
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from appliance.api.keys import CONFIG, HUB
from appliance.api.openapi import OPENAPI_PATH
from appliance.app import build_app
from appliance.config import RoomConfig
from tests.app_support import GENEROUS_LIMITS
from tests.auth_support import ADMIN, config_in
from tests.conftest import pick_free_port

# Requests per operation and kind of request. The run takes about a minute on an idle 2-core machine; the
# budget leaves room for a loaded one, and pytest's own limit for this test is above the budget.
MAX_EXAMPLES = {"positive": 25, "negative": 15, "rule-following": 15}
BUDGET_S = 240.0
REQUEST_TIMEOUT_S = 15.0
SKIPPED_TAGS = frozenset({"auth"})
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
CONFIG_PREFIX = "/api/v1/config/"
# Items every rule-following request may name: one per collection, (re)made before each operation's run.
KNOWN_ZONE = {"id": "desk", "name": "Desk", "polygon": [[0.5, 0.5], [1.5, 0.5], [1.5, 1.5]]}
KNOWN_TEMPLATE = {"id": "evening", "name": "Evening", "zones": [KNOWN_ZONE], "alerts": {}}
KNOWN_IDS = {"zones": KNOWN_ZONE["id"], "templates": KNOWN_TEMPLATE["id"], "routers": "rx1"}
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True, slots=True)
class ServedApp:
    base_url: str
    headers: dict[str, str]
    room: RoomConfig


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
        yield ServedApp(f"http://127.0.0.1:{port}", headers, runner.app[CONFIG].room)
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


def _collection(path: str) -> str | None:
    """``zones`` for ``/api/v1/config/zones/{id}`` and the like: the collection whose item a path names."""
    if not path.startswith(CONFIG_PREFIX) or "{id}" not in path:
        return None
    return path.removeprefix(CONFIG_PREFIX).split("/")[0]


def _inside(values: list[Any], extent: tuple[float, ...]) -> list[float]:
    return [abs(float(v)) % limit for v, limit in zip(values, extent, strict=False)]


def follow_documented_rules(case: Any, room: RoomConfig) -> Any:
    """A positive case changed to keep the rules the document states in words (see the module doc)."""
    collection = _collection(case.operation.path)
    if collection is not None:
        case.path_parameters = {**(case.path_parameters or {}), "id": KNOWN_IDS[collection]}
    body = case.body
    if not isinstance(body, dict):
        return case
    if collection is not None and case.method == "PUT" and "id" in body:
        body["id"] = KNOWN_IDS[collection]
    floor = (room.width_m, room.depth_m)
    zones = body.get("zones", [body] if "polygon" in body else [])
    for zone in zones:
        if isinstance(zone, dict) and isinstance(zone.get("polygon"), list):
            zone["polygon"] = [_inside(point, floor) for point in zone["polygon"]]
    if isinstance(body.get("position"), list):
        body["position"] = _inside(body["position"], (room.width_m, room.depth_m, room.height_m))
    alerts = body.get("alerts", body if "restricted_zone_ids" in body else None)
    if isinstance(alerts, dict) and isinstance(alerts.get("restricted_zone_ids"), list):
        known = {z.get("id") for z in zones if isinstance(z, dict)} if "zones" in body else {KNOWN_ZONE["id"]}
        alerts["restricted_zone_ids"] = [z for z in alerts["restricted_zone_ids"] if z in known]
    return case


def ensure_known_items(served_app: ServedApp) -> None:
    [node] = [n for n in served_app.room.nodes if n.id == KNOWN_IDS["routers"]]
    known = {"zones": KNOWN_ZONE, "templates": KNOWN_TEMPLATE, "routers": node.model_dump(mode="json")}
    for collection, item in known.items():
        url = f"{served_app.base_url}{CONFIG_PREFIX}{collection}"
        put = requests.put(f"{url}/{item['id']}", json=item, headers=served_app.headers, timeout=10)
        if put.status_code == 404:
            put = requests.post(url, json=item, headers=served_app.headers, timeout=10)
        assert put.status_code in (200, 201), put.text


def _changes_or_names_an_item(operation: Any) -> bool:
    """A configuration operation whose success needs the stated rules: any change, or one item's get."""
    path = operation.path
    return path.startswith(CONFIG_PREFIX) and (operation.method.upper() != "GET" or "{id}" in path)


def _negative_as_sent(case: Any) -> bool:
    """Whether a negative case is still negative once sent: the admin's Authorization header replaces
    whatever a header mutation made, and a query parameter whose value is an empty list is not sent at
    all (schemathesis 4.32 would still count it as an unknown parameter the server accepted)."""
    if case.meta.is_negative_at(ParameterLocation.HEADER):
        return False
    return not any(value == [] for value in (case.query or {}).values())


# The WebSocket door takes one query parameter, a token of up to 4096 characters: a negative case longer
# than that, percent-encoded, passes aiohttp's 8 KiB request line, which the HTTP server refuses in plain
# text before any route runs. Its refusals are tested in test_websocket.py.
_NO_NEGATIVE = frozenset({"GET /ws/v1/stream"})


def _takes_input(operation: Any) -> bool:
    if operation.label in _NO_NEGATIVE:
        return False
    return bool(operation.definition.raw.get("parameters") or operation.definition.raw.get("requestBody"))


@dataclass(slots=True)
class Run:
    """What the run asked and what came back, per kind of request and per operation."""

    deadline: float
    failures: list[str] = field(default_factory=list)
    statuses: dict[str, dict[str, Counter[int]]] = field(default_factory=lambda: defaultdict(dict))
    requests: Counter[str] = field(default_factory=Counter)
    unsendable: list[str] = field(default_factory=list)  # operations whose every negative case was a header's
    skipped: list[str] = field(default_factory=list)

    def record(self, kind: str, label: str, status: int) -> None:
        self.statuses[kind].setdefault(label, Counter())[status] += 1
        self.requests[kind] += 1

    def summary(self) -> str:
        operations = {label for per_kind in self.statuses.values() for label in per_kind}
        lines = [
            f"schemathesis: {sum(self.requests.values())} requests {dict(self.requests)} over "
            f"{len(operations)} operations; {len(self.skipped)} skipped by the budget; no negative case "
            f"to send for {len(self.unsendable)}",
        ]
        for label, seen in sorted(self.statuses["rule-following"].items()):
            lines.append(f"  rule-following {label}: {dict(sorted(seen.items()))}")
        return "\n".join(lines)


@pytest.mark.timeout(BUDGET_S + 120)
def test_every_operation_conforms_to_the_document(served_app: ServedApp) -> None:
    document = requests.get(served_app.base_url + OPENAPI_PATH, timeout=REQUEST_TIMEOUT_S).json()
    schema = schemathesis.openapi.from_dict(without_homogeneous_prefix_items(document))
    run = Run(deadline=time.monotonic() + BUDGET_S)
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            run.failures.append(f"an operation the document does not describe validly: {result.err()}")
            continue
        operation = result.ok()
        if SKIPPED_TAGS & set(operation.definition.raw.get("tags", [])):
            continue
        if time.monotonic() > run.deadline:
            run.skipped.append(operation.label)
            continue
        _exercise(served_app, run, "positive", operation.as_strategy(), CHECKS, operation.label)
        if _takes_input(operation):
            negative = operation.as_strategy(generation_mode=GenerationMode.NEGATIVE).filter(
                _negative_as_sent
            )
            _exercise(
                served_app, run, "negative", negative, [*CHECKS, negative_data_rejection], operation.label
            )
        if _changes_or_names_an_item(operation):
            ensure_known_items(served_app)
            rules = operation.as_strategy().map(lambda case: follow_documented_rules(case, served_app.room))
            _exercise(served_app, run, "rule-following", rules, CHECKS, operation.label)
    _check_allow_headers(served_app, document, run.failures)
    print(run.summary())
    assert not run.failures, "\n\n".join(run.failures[:10])
    assert not run.skipped, f"the budget left operations untested: {run.skipped}"
    never = [
        label
        for label, seen in run.statuses["rule-following"].items()
        if not any(200 <= s < 300 for s in seen)
    ]
    assert not never, f"rule-following requests never succeeded: {never}"


def _exercise(
    served_app: ServedApp,
    run: Run,
    kind: str,
    strategy: st.SearchStrategy[Any],
    checks: list[Any],
    label: str,
) -> None:
    @given(case=strategy)
    @settings(
        max_examples=MAX_EXAMPLES[kind],
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def exercise(case: Any) -> None:
        if time.monotonic() > run.deadline:
            return
        response = case.call(
            base_url=served_app.base_url, headers=served_app.headers, timeout=REQUEST_TIMEOUT_S
        )
        run.record(kind, case.operation.label, response.status_code)
        try:
            case.validate_response(response, checks=checks)
        except (AssertionError, FailureGroup) as exc:  # one failed check, or several at once
            run.failures.append(f"{case.operation.label} ({kind}): {exc}")

    try:
        exercise()
    except Unsatisfiable:  # every negative case mutated only what the harness replaces (the header)
        run.unsendable.append(label)


def _check_allow_headers(served_app: ServedApp, document: dict[str, Any], failures: list[str]) -> None:
    """A method a path does not document: 405, and Allow lists what it does (RFC 9110, section 15.5.6)."""
    for path, operations in document["paths"].items():
        documented = {method.upper() for method in operations}
        allowed = documented | ({"HEAD"} if "GET" in documented else set())
        method = next(m for m in METHODS if m not in documented)
        url = served_app.base_url + path.replace("{", "").replace("}", "")
        response = requests.request(method, url, headers=served_app.headers, timeout=REQUEST_TIMEOUT_S)
        listed = {m.strip() for m in response.headers.get("Allow", "").split(",") if m.strip()}
        if response.status_code != 405 or listed != allowed:
            failures.append(
                f"{method} {path}: {response.status_code}, Allow {listed or 'missing'}; want {allowed}"
            )
