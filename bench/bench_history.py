"""Throughput of the history store: inserting pose rows in batches (as ``HistoryRecorder`` does) against one
transaction per row (the naive sink, in the same run), and streaming an export as JSON lines and CSV.

Rows are real ``PoseFrame.to_dict()`` JSON of two people with 17 keypoints each (about 3 kB, the size the
recorder stores), written to a temporary file on the disk that holds ``--dir``. Each figure is the median of
``--runs`` runs; every run starts from a fresh database file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from appliance.contracts.coco import KEYPOINT_NAMES
from appliance.contracts.pose import Keypoint, PersonPose, PoseFrame
from appliance.store.analytics import ExportFormat, export_chunks
from appliance.store.database import Database
from appliance.store.history import HistoryBatch, HistoryStore, Row

T0 = 1_700_000_000.0
BATCH_ROWS = 500
BYTES_PER_MB = 2**20


def _frame_json() -> str:
    def person(person_id: int, x: float) -> PersonPose:
        keypoints = tuple(Keypoint(n, 0.5, 0.5, (x, 2.0, 1.0), 0.9) for n in KEYPOINT_NAMES)
        return PersonPose(person_id, keypoints, (0.4, 0.2, 0.2, 0.6), "kitchen", "walking", 0.8)

    frame = PoseFrame(
        T0, 1, "esp32", "model", "v1", True, True, 0.4, 2, (person(1, 1.0), person(2, 3.0)), 0.9, 4.2, ()
    )
    return json.dumps(frame.to_dict(), separators=(",", ":"))


def _rows(count: int, frame: str) -> list[Row]:
    return [(T0 + i, "esp32", "model", 1, 1, 2, frame) for i in range(count)]


async def _insert(directory: Path, rows: list[Row], batch_rows: int) -> float:
    """Rows per second writing ``rows`` in transactions of ``batch_rows``."""
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        db = await Database.open(Path(tmp) / "bench.sqlite3")
        store = HistoryStore(db)
        began = time.perf_counter()
        for start in range(0, len(rows), batch_rows):
            await store.write(HistoryBatch(pose=rows[start : start + batch_rows]))
        elapsed = time.perf_counter() - began
        await db.close()
    return len(rows) / elapsed


async def _export(directory: Path, rows: list[Row], fmt: ExportFormat) -> float:
    """MB per second of export output for ``rows``."""
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        db = await Database.open(Path(tmp) / "bench.sqlite3")
        store = HistoryStore(db)
        for start in range(0, len(rows), BATCH_ROWS):
            await store.write(HistoryBatch(pose=rows[start : start + BATCH_ROWS]))
        began = time.perf_counter()
        size = 0
        async for chunk, _ in export_chunks(store, "pose", fmt):
            size += len(chunk)
        elapsed = time.perf_counter() - began
        await db.close()
    return size / BYTES_PER_MB / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows per batched insert and per export")
    parser.add_argument("--baseline-rows", type=int, default=2_000, help="rows for one-per-transaction")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="where files go")
    args = parser.parse_args()
    frame = _frame_json()
    rows = _rows(args.rows, frame)
    print(f"row: {len(frame)} bytes of frame JSON; median of {args.runs} runs; files in {args.dir}")
    batched = statistics.median([await _insert(args.dir, rows, BATCH_ROWS) for _ in range(args.runs)])
    single = statistics.median(
        [await _insert(args.dir, rows[: args.baseline_rows], 1) for _ in range(args.runs)]
    )
    print(f"insert, {BATCH_ROWS} rows per transaction: {batched:10.0f} rows/s")
    print(f"insert, 1 row per transaction:   {single:10.0f} rows/s  ({batched / single:.0f}x slower)")
    for fmt in ("jsonl", "csv"):
        rate = statistics.median([await _export(args.dir, rows, fmt) for _ in range(args.runs)])
        print(f"export {fmt:5s} ({args.rows} rows):     {rate:10.1f} MB/s")


if __name__ == "__main__":
    asyncio.run(main())
