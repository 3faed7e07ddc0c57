"""Tokens for tests that call protected routes: onboard in-process, or create one with the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from appliance.config import AppConfig, load_config
from tests.conftest import DEFAULT_CONFIG, REPO

ADMIN = {"username": "admin", "password": "correct horse battery"}


def config_in(data_dir: Path, **overrides: Any) -> AppConfig:
    """The shipped config with its state in ``data_dir`` (never the repository's ./data)."""
    return load_config(DEFAULT_CONFIG, overrides={"data_dir": str(data_dir), **overrides})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def onboard(client: TestClient[Any, Any]) -> dict[str, str]:
    """Create the first admin through the API, as the web UI does; the Authorization header to use."""
    response = await client.post("/api/v1/auth/setup", json=ADMIN)
    assert response.status == 201, await response.text()
    body = await response.json()
    return bearer(body["access_token"])


def cli_token(data_dir: Path, scopes: str = "admin:all", name: str = "tests") -> str:
    """``invispose token create`` against ``data_dir``; returns what it printed on stdout."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "appliance",
            "token",
            "create",
            "--config",
            str(DEFAULT_CONFIG),
            "--data-dir",
            str(data_dir),
            "--name",
            name,
            "--scopes",
            scopes,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def database_bytes(data_dir: Path) -> bytes:
    """The database file and its WAL as stored on disk, to prove what is never written there."""
    return b"".join(p.read_bytes() for p in sorted(data_dir.glob("invispose.sqlite3*")))
