"""HLS and MPEG-DASH of the overlay: the files ffmpeg writes into the data directory, who is watching them,
and their playlists as served to a client that passed its token in the URL.

One encode makes both (see ``EncodeSettings.segments``): ``index.m3u8`` (HLS master playlist),
``media_0.m3u8`` (its media playlist), ``manifest.mpd`` (DASH) and the fMP4 segments they share; ffmpeg
deletes segments that have left the playlists. HTTP viewers are counted from their requests: one that has
asked for nothing for ``viewer_timeout_s`` has left, and with the last one gone encoding stops.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from pathlib import Path
from urllib.parse import quote

MASTER_PLAYLIST = "index.m3u8"
DASH_MANIFEST = "manifest.mpd"
CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mpd": "application/dash+xml",
    ".m4s": "video/iso.segment",
}
# What ffmpeg names its files (no path, no hidden or temporary files).
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}\.(m3u8|mpd|m4s)$")
_POLL_S = 0.1
_URI_ATTRIBUTE = re.compile(r'(URI="|initialization="|media=")([^"?]+)(")')


class SegmentFiles:
    """The segment directory and the HTTP viewers of it."""

    def __init__(self, directory: Path, viewer_timeout_s: float) -> None:
        self.directory = directory
        self.viewer_timeout_s = viewer_timeout_s
        self._viewers: dict[str, float] = {}

    def clear(self) -> None:
        """Start empty: files a previous run left behind (killed before ffmpeg cleaned up) would be
        served as if live."""
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True, exist_ok=True)

    def seen(self, viewer: str) -> None:
        self._viewers[viewer] = time.monotonic()

    def viewers(self) -> int:
        """Viewers heard from within the timeout (those silent longer are forgotten)."""
        cutoff = time.monotonic() - self.viewer_timeout_s
        for viewer, at in list(self._viewers.items()):
            if at < cutoff:
                del self._viewers[viewer]
        return len(self._viewers)

    def path(self, name: str) -> Path | None:
        """The file called ``name`` if it is one of ffmpeg's and exists now."""
        if not FILE_NAME.match(name):
            return None
        path = self.directory / name
        return path if path.is_file() else None

    async def wait_for(self, name: str, timeout_s: float, viewer: str) -> Path | None:
        """The file once ffmpeg has written it (a playlist appears after the first segment). The viewer
        waiting for it is still watching, however long the first segment takes."""
        deadline = time.monotonic() + timeout_s
        while (path := self.path(name)) is None:
            if time.monotonic() >= deadline:
                return None
            self.seen(viewer)
            await asyncio.sleep(_POLL_S)
        return path


def content_type(name: str) -> str:
    return CONTENT_TYPES[name[name.rindex(".") :]]


def with_access_token(name: str, text: str, token: str) -> str:
    """Playlist or manifest ``name`` with every reference carrying ``?access_token=``: players resolve
    segment names against the playlist's URL without its query, so a client that can only put the token
    in the URL (Safari, Home Assistant's stream, ffmpeg) would otherwise be refused every segment."""
    query = f"?access_token={quote(token, safe='')}"
    text = _URI_ATTRIBUTE.sub(lambda m: m.group(1) + m.group(2) + query + m.group(3), text)
    if not name.endswith(".m3u8"):
        return text
    # In a playlist every line that is not a tag or a comment is a URI.
    return "\n".join(
        line + query if line.strip() and not line.startswith("#") else line for line in text.split("\n")
    )
