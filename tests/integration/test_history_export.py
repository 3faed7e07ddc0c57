"""A long export is streamed: bytes reach the client page by page while the server holds one page, so
memory stays flat however large the range (here about 50 MB, exported with a peak of a few MB)."""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path
from typing import Any

from appliance.api.resource_keys import RESOURCES
from appliance.store.history import HistoryBatch
from tests.integration.test_api_resources import scoped, start
from tests.unit.test_history import frame_at

ROWS = 100_000
BATCH_ROWS = 10_000
# Peak memory allowed during the export, as a share of what it sends: a buffered export needs over 1.
MAX_PEAK_SHARE = 0.15


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
