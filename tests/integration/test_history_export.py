"""A long export is streamed: bytes reach the client page by page while the server holds one page, so
memory stays flat however large the range (here about 50 MB, exported with a peak of a few MB).

Streaming sends the ``200`` before the history is read to the end, so an export whose read fails part-way
must say so in the body: the connection closes without chunked encoding's final chunk (every HTTP client
sees an incomplete body), and a JSON-lines export ends with an ``export_failed`` error line first. Those
tests read the raw bytes off a socket, since aiohttp's client drops what it had buffered once it learns
the body is incomplete.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import sqlite3
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientPayloadError

from appliance.api.resource_keys import RESOURCES
from appliance.store import history
from appliance.store.history import STREAM_PAGE_ROWS, HistoryBatch
from tests.app_support import Client, scoped, start
from tests.factories import frame_at

ROWS = 100_000
BATCH_ROWS = 10_000
# Peak memory allowed during the export, as a share of what it sends: a buffered export needs over 1.
MAX_PEAK_SHARE = 0.15
# The failure tests: three pages of pose rows, the second page's read failing.
FAILURE_ROWS = 3 * STREAM_PAGE_ROWS
RAW_READ_TIMEOUT_S = 30.0


async def test_a_large_range_is_exported_streamed(aiohttp_client: Any, tmp_path: Path) -> None:
    client, admin = await start(aiohttp_client, tmp_path, silent=True)
    analyst = await scoped(client, admin, "analytics:read")
    store = client.app[RESOURCES].history
    assert store is not None
    t0 = time.time() - 2 * 86_400
    frame = json.dumps(frame_at(t0, [(1, 2.0, 2.0, "sofa", "sitting")]).to_dict(), separators=(",", ":"))
    for first in range(0, ROWS, BATCH_ROWS):
        rows = [
            (t0 + i * 0.1, "simulated", "model", 1, 0, 1, frame) for i in range(first, first + BATCH_ROWS)
        ]
        await store.write(HistoryBatch(pose=rows))

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        response = await client.get(
            f"/api/v1/analytics/export?dataset=pose&format=jsonl&start_time={t0}", headers=analyst
        )
        assert response.status == 200 and response.headers["Transfer-Encoding"] == "chunked"
        received = lines = chunks = 0
        async for chunk in response.content.iter_any():
            received += len(chunk)
            lines += chunk.count(b"\n")
            chunks += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert lines == ROWS
    assert received > ROWS * len(frame)
    assert chunks > ROWS // 2000, "the body arrived in too few pieces to have been streamed"
    assert peak < MAX_PEAK_SHARE * received, (
        f"peak {peak / 2**20:.1f} MiB for {received / 2**20:.1f} MiB sent"
    )


# --------------------------------------------------------------------------------------------------------
# A history failure mid-export


async def _history_of(client: Client, rows: int) -> float:
    """``rows`` pose rows a day ago, one every 0.1 s; their first timestamp."""
    store = client.app[RESOURCES].history
    assert store is not None
    t0 = time.time() - 86_400
    frame = json.dumps(frame_at(t0, [(1, 2.0, 2.0, "sofa", "sitting")]).to_dict(), separators=(",", ":"))
    await store.write(
        HistoryBatch(pose=[(t0 + i * 0.1, "simulated", "model", 1, 0, 1, frame) for i in range(rows)])
    )
    return t0


def _fail_page_read(monkeypatch: pytest.MonkeyPatch, page: int) -> list[str]:
    """Make the ``page``-th read of a pose page (1-based) fail as a broken database would, once; the
    failures raised are appended to the returned list."""
    fetch: Callable[..., list[sqlite3.Row]] = history._fetch_page
    reads = 0
    failures: list[str] = []

    def failing(sql: str, params: tuple[Any, ...], connection: sqlite3.Connection) -> list[sqlite3.Row]:
        nonlocal reads
        if "FROM history_pose" in sql:
            reads += 1
            if reads == page:
                failures.append(sql)
                raise sqlite3.OperationalError("disk I/O error")
        return fetch(sql, params, connection)

    monkeypatch.setattr(history, "_fetch_page", failing)
    return failures


async def _raw_get(client: Client, path: str, headers: dict[str, str]) -> tuple[int, bytes, bool]:
    """GET ``path`` on a connection of its own, read to the end: the status, the de-chunked body, and
    whether the body ended with chunked encoding's final (zero-length) chunk."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        lines = [f"GET {path} HTTP/1.1", "Host: localhost", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = await asyncio.wait_for(reader.read(), RAW_READ_TIMEOUT_S)
    finally:
        writer.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"transfer-encoding: chunked" in head.lower()
    body = bytearray()
    while True:
        size_line, found, rest = rest.partition(b"\r\n")
        if not found:
            return status, bytes(body), False
        size = int(size_line, 16)
        if size == 0:
            return status, bytes(body), True
        assert len(rest) >= size + 2, "a chunk was cut inside: the server closes between chunks"
        body += rest[:size]
        rest = rest[size + 2 :]


def _export_path(fmt: str, t0: float) -> str:
    return f"/api/v1/analytics/export?dataset=pose&format={fmt}&start_time={t0}"


async def _still_serving(client: Client, analyst: dict[str, str], t0: float) -> None:
    """Health answers (503 "starting" here: the silent source never sends), and a complete export of every
    row follows the failed one."""
    health = await client.get("/api/v1/system/health")
    assert health.status in (200, 503) and (await health.json())["components"]
    response = await client.get(_export_path("jsonl", t0), headers=analyst)
    assert response.status == 200
    assert len((await response.read()).splitlines()) == FAILURE_ROWS


async def test_a_jsonl_export_cut_short_ends_with_an_error_line_and_no_final_chunk(
    aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    client, admin = await start(aiohttp_client, tmp_path, silent=True)
    analyst = await scoped(client, admin, "analytics:read")
    t0 = await _history_of(client, FAILURE_ROWS)
    failures = _fail_page_read(monkeypatch, page=2)
    caplog.set_level(logging.ERROR, logger="appliance.api.analytics")

    status, body, complete = await _raw_get(client, _export_path("jsonl", t0), analyst)

    assert status == 200 and not complete and len(failures) == 1
    *rows, last = [json.loads(line) for line in body.splitlines()]
    assert len(rows) == STREAM_PAGE_ROWS and all("error" not in row for row in rows)
    assert rows[-1]["timestamp"] == pytest.approx(t0 + (STREAM_PAGE_ROWS - 1) * 0.1)
    assert last["error"]["code"] == "export_failed"
    assert last["error"]["details"] == {"rows_sent": STREAM_PAGE_ROWS}
    assert "incomplete" in last["error"]["message"] and "disk" not in last["error"]["message"]
    [record] = [r for r in caplog.records if r.name == "appliance.api.analytics"]
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert f"after {STREAM_PAGE_ROWS} rows sent" in record.getMessage()
    await _still_serving(client, analyst, t0)


async def test_a_csv_export_cut_short_has_no_final_chunk_and_no_extra_row(
    aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    client, admin = await start(aiohttp_client, tmp_path, silent=True)
    analyst = await scoped(client, admin, "analytics:read")
    t0 = await _history_of(client, FAILURE_ROWS)
    _fail_page_read(monkeypatch, page=2)
    caplog.set_level(logging.ERROR, logger="appliance.api.analytics")

    status, body, complete = await _raw_get(client, _export_path("csv", t0), analyst)

    assert status == 200 and not complete
    header, *rows = list(csv.reader(io.StringIO(body.decode())))
    assert header[0] == "ts" and len(rows) == STREAM_PAGE_ROWS
    assert all(len(row) == len(header) for row in rows)  # whole rows only, and no comment row
    [record] = [r for r in caplog.records if r.name == "appliance.api.analytics"]
    assert record.levelno == logging.ERROR and f"after {STREAM_PAGE_ROWS} rows sent" in record.getMessage()
    await _still_serving(client, analyst, t0)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
async def test_an_http_client_reading_an_export_cut_short_gets_a_payload_error(
    aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    client, admin = await start(aiohttp_client, tmp_path, silent=True)
    analyst = await scoped(client, admin, "analytics:read")
    t0 = await _history_of(client, FAILURE_ROWS)
    _fail_page_read(monkeypatch, page=2)
    response = await client.get(_export_path(fmt, t0), headers=analyst)
    assert response.status == 200
    with pytest.raises(ClientPayloadError):
        await response.read()
    await _still_serving(client, analyst, t0)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
async def test_a_complete_export_is_only_its_rows_and_ends_with_the_final_chunk(
    aiohttp_client: Any, tmp_path: Path, fmt: str
) -> None:
    client, admin = await start(aiohttp_client, tmp_path, silent=True)
    analyst = await scoped(client, admin, "analytics:read")
    t0 = await _history_of(client, FAILURE_ROWS)
    status, body, complete = await _raw_get(client, _export_path(fmt, t0), analyst)
    assert status == 200 and complete
    lines = body.decode().splitlines()
    if fmt == "csv":
        assert lines[0].startswith("ts,") and len(lines) == 1 + FAILURE_ROWS
    else:
        frames = [json.loads(line) for line in lines]
        assert len(frames) == FAILURE_ROWS and all("error" not in frame for frame in frames)
    response = await client.get(_export_path(fmt, t0), headers=analyst)
    assert response.status == 200 and await response.read() == body
