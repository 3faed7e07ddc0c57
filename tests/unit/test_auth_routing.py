"""The declarative route layer: unsafe declarations are refused; inputs are validated before the handler."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import BaseModel, Field

from appliance.api.errors import error_middleware
from appliance.api.routing import (
    ENDPOINTS,
    ApiModel,
    ApiRouter,
    RateTier,
    RouteDeclarationError,
    Scope,
    install,
)


class Search(ApiModel):
    limit: int = Field(10, ge=1, le=100)
    zone: list[str] = Field(default_factory=list)


class Note(ApiModel):
    text: str = Field(min_length=1)
    secret: str = ""


class Echo(BaseModel):
    limit: int | None = None
    zones: list[str] = []
    text: str | None = None


router = ApiRouter()


@router.get("/items", public=True, summary="search", query=Search, response=Echo)
async def search(request: web.Request, query: Search, body: None) -> Echo:
    return Echo(limit=query.limit, zones=query.zone)


@router.post("/items", public=True, summary="add", body=Note, response=Echo, status=201)
async def add(request: web.Request, query: None, body: Note) -> Echo:
    return Echo(text=body.text)


@router.get("/items.csv", public=True, summary="as csv", content_types=["text/csv"])
async def as_csv(request: web.Request, query: None, body: None) -> web.Response:
    return web.Response(text="a,b\n1,2\n", content_type="text/csv")


@router.delete("/items/{item_id}", public=True, summary="remove", status=204)
async def remove(request: web.Request, query: None, body: None) -> None:
    return None


@pytest.fixture
async def client(aiohttp_client: Any) -> TestClient[Any, Any]:
    app = web.Application(middlewares=[error_middleware], client_max_size=1024)
    install(app, router)
    test_client: TestClient[Any, Any] = await aiohttp_client(app)
    return test_client


def test_a_route_needs_a_scope_or_public() -> None:
    other = ApiRouter()
    with pytest.raises(RouteDeclarationError, match="scope"):
        other.get("/x", summary="x")
    with pytest.raises(RouteDeclarationError, match="exactly one"):
        other.get("/x", summary="x", scope=Scope.POSE_READ, public=True)
    with pytest.raises(RouteDeclarationError, match="unknown scope"):
        other.get("/x", summary="x", scope="pose:write")
    with pytest.raises(RouteDeclarationError, match="no body"):
        other.get("/x", summary="x", scope="pose:read", body=Note)
    with pytest.raises(RouteDeclarationError, match="anonymously"):
        other.get("/x", summary="x", public=True, tier=RateTier.STREAMING)


def test_a_route_cannot_be_declared_twice() -> None:
    other = ApiRouter()
    other.get("/x", summary="x", scope="pose:read")(search)
    with pytest.raises(RouteDeclarationError, match="twice"):
        other.get("/x", summary="x", scope="pose:read")


def test_install_fills_the_endpoint_table() -> None:
    app = web.Application()
    install(app, router)
    assert {(e.method, e.path) for e in app[ENDPOINTS]} == {
        ("GET", "/items"),
        ("POST", "/items"),
        ("GET", "/items.csv"),
        ("DELETE", "/items/{item_id}"),
    }
    streaming = ApiRouter()
    streaming.get("/s", summary="s", scope="stream:subscribe", tier=RateTier.STREAMING)(search)
    assert streaming.endpoints[0].token_in_query


async def test_query_is_validated_and_repeats_become_lists(client: TestClient[Any, Any]) -> None:
    response = await client.get("/items?limit=5&zone=sofa&zone=door")
    assert response.status == 200
    assert await response.json() == {"limit": 5, "zones": ["sofa", "door"], "text": None}
    bad = await client.get("/items?limit=500&colour=blue")
    assert bad.status == 400
    error = (await bad.json())["error"]
    assert error["code"] == "validation_error"
    assert {(d["in"], d["field"]) for d in error["details"]} == {("query", "limit"), ("query", "colour")}


async def test_body_is_validated_without_echoing_it(client: TestClient[Any, Any]) -> None:
    response = await client.post("/items", json={"text": "hello"})
    assert response.status == 201
    assert (await response.json())["text"] == "hello"
    bad = await client.post("/items", json={"text": "", "secret": 12345678})
    assert bad.status == 400
    text = await bad.text()
    assert "12345678" not in text
    fields = {d["field"] for d in (await bad.json())["error"]["details"]}
    assert fields == {"text", "secret"}


async def test_body_format_errors(client: TestClient[Any, Any]) -> None:
    wrong_type = await client.post("/items", data="text=hi", headers={"Content-Type": "text/plain"})
    assert wrong_type.status == 415
    assert (await wrong_type.json())["error"]["code"] == "unsupported_media_type"
    nan = await client.post("/items", data='{"text": NaN}', headers={"Content-Type": "application/json"})
    assert nan.status == 400 and (await nan.json())["error"]["code"] == "invalid_json"
    empty = await client.post("/items", data="", headers={"Content-Type": "application/json"})
    assert empty.status == 400 and (await empty.json())["error"]["code"] == "invalid_json"
    big = await client.post("/items", data=b'{"text": "' + b"x" * 2048 + b'"}', headers=_JSON)
    assert big.status == 413
    assert (await big.json())["error"] == {
        "code": "payload_too_large",
        "message": "the body is over 1024 bytes",
        "details": {"max_bytes": 1024},
    }
    not_object = await client.post("/items", json=["text"])
    assert not_object.status == 400 and (await not_object.json())["error"]["code"] == "validation_error"


_JSON = {"Content-Type": "application/json"}


async def test_stream_responses_and_no_content_pass_through(client: TestClient[Any, Any]) -> None:
    csv = await client.get("/items.csv")
    assert csv.status == 200 and csv.content_type == "text/csv"
    assert await csv.text() == "a,b\n1,2\n"
    removed = await client.delete("/items/7")
    assert removed.status == 204
