"""The HLS/DASH segment directory: which files are served (only ffmpeg's, only while they exist), with
which content type, and who counts as watching (on a clock the test sets)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from appliance.integrations.video import segments
from appliance.integrations.video.segments import SegmentFiles, content_type


class Clock:
    """Stands in for ``time`` in the segments module: a monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(segments, "time", clock)
    return clock


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # RFC 8216 section 4 (HLS), ISO/IEC 23009-1 Annex C (DASH), and the media segment type of RFC 8216.
        ("index.m3u8", "application/vnd.apple.mpegurl"),
        ("manifest.mpd", "application/dash+xml"),
        ("chunk-0-00005.m4s", "video/iso.segment"),
        ("media.v2.m3u8", "application/vnd.apple.mpegurl"),  # the last dot names the type
    ],
)
def test_content_types(name: str, expected: str) -> None:
    assert content_type(name) == expected


def test_only_ffmpegs_files_that_exist_are_served(tmp_path: Path) -> None:
    files = SegmentFiles(tmp_path / "hls", viewer_timeout_s=15.0)
    files.clear()
    written = [
        "index.m3u8",
        "manifest.mpd",
        "init-0.m4s",
        "a" * 63 + ".m4s",
        "b" * 64 + ".m4s",
        ".hidden.m4s",
    ]
    for name in [*written, "x.tmp"]:
        (files.directory / name).write_text("#")
    assert files.path("index.m3u8") == files.directory / "index.m3u8"
    assert files.path("manifest.mpd") == files.directory / "manifest.mpd"
    assert files.path("init-0.m4s") == files.directory / "init-0.m4s"
    assert files.path("a" * 63 + ".m4s") == files.directory / ("a" * 63 + ".m4s")  # the longest name
    assert files.path("chunk-0-00009.m4s") is None  # not written (yet, or any more)
    for name in ("b" * 64 + ".m4s", ".hidden.m4s", "x.tmp", "../hls/index.m3u8", "index.m3u8/"):
        assert files.path(name) is None, name
    (files.directory / "sub.m4s").mkdir()
    assert files.path("sub.m4s") is None  # a directory is not a segment


def test_clear_removes_what_a_previous_run_left_and_makes_the_directory(tmp_path: Path) -> None:
    files = SegmentFiles(tmp_path / "video" / "hls", viewer_timeout_s=15.0)
    files.clear()
    assert files.directory.is_dir()
    (files.directory / "index.m3u8").write_text("stale")
    files.clear()
    assert list(files.directory.iterdir()) == []


def test_a_viewer_counts_until_silent_for_the_timeout(clock: Clock, tmp_path: Path) -> None:
    files = SegmentFiles(tmp_path, viewer_timeout_s=15.0)
    assert files.viewers() == 0
    files.seen("a")
    files.seen("b")
    files.seen("a")
    assert files.viewers() == 2
    clock.now += 10.0
    files.seen("b")
    clock.now += 5.0  # a: silent for exactly the timeout, still watching
    assert files.viewers() == 2
    clock.now += 0.5
    assert files.viewers() == 1  # a has left
    clock.now += 10.0
    assert files.viewers() == 0


async def test_waiting_for_a_playlist_returns_it_once_written_and_keeps_the_viewer(tmp_path: Path) -> None:
    files = SegmentFiles(tmp_path, viewer_timeout_s=15.0)
    files.clear()
    waiting = asyncio.create_task(files.wait_for("index.m3u8", 10.0, "viewer-1"))
    await asyncio.sleep(0)
    assert not waiting.done() and files.viewers() == 1
    files.seen("viewer-1")  # the same viewer, by its name
    assert files.viewers() == 1
    (tmp_path / "index.m3u8").write_text("#EXTM3U\n")
    assert await asyncio.wait_for(waiting, 5.0) == tmp_path / "index.m3u8"


async def test_waiting_for_a_playlist_that_never_comes_gives_up_at_the_timeout(tmp_path: Path) -> None:
    files = SegmentFiles(tmp_path, viewer_timeout_s=15.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await files.wait_for("index.m3u8", 0.3, "viewer-1") is None
    assert 0.3 <= loop.time() - started < 3.0
    assert await files.wait_for("../escape.m3u8", 0.0, "viewer-1") is None
