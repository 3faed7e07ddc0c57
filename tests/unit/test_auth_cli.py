"""``invispose user`` and ``invispose token``: the error paths a user meets, each with its exit code and a
message that says what to do, and nothing written when the input is refused."""

from __future__ import annotations

import argparse
import asyncio
import io
import time
from pathlib import Path

import pytest

from appliance.cli import accounts as auth_cli
from appliance.store.accounts import AccountStore
from appliance.store.database import DATABASE_FILE, Database
from tests.conftest import DEFAULT_CONFIG


def _run(argv: list[str], data_dir: Path, stdin: str = "") -> tuple[int, str, str]:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=str(DEFAULT_CONFIG))
    common.add_argument("--data-dir", default=str(data_dir))
    parser = argparse.ArgumentParser(prog="invispose")
    auth_cli.register(parser.add_subparsers(dest="command", required=True), common)
    args = parser.parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    if args.handler is auth_cli.run_user_add:
        code = auth_cli.run_user_add(args, io.StringIO(stdin), out, err)
    else:
        code = args.handler(args, out, err)
    return code, out.getvalue(), err.getvalue()


def _user_count(data_dir: Path) -> int:
    async def count() -> int:
        database = await Database.open(data_dir / DATABASE_FILE)
        try:
            return await AccountStore(database).user_count()
        finally:
            await database.close()

    return asyncio.run(count())


def test_user_add_refuses_bad_input_and_duplicates(tmp_path: Path) -> None:
    code, _, err = _run(["user", "add", "ann", "--password-stdin"], tmp_path, stdin="short\n")
    assert (code, err.strip()) == (1, "invispose: password: String should have at least 8 characters")
    code, _, err = _run(["user", "add", "ann smith", "--password-stdin"], tmp_path, stdin="long enough\n")
    assert code == 1 and err.startswith("invispose: username: String should match pattern")
    assert _user_count(tmp_path) == 0
    assert _run(["user", "add", "ann", "--password-stdin"], tmp_path, stdin="long enough\n")[:2] == (
        0,
        "added user ann\n",
    )
    code, _, err = _run(
        ["user", "add", "ANN", "--admin", "--password-stdin"], tmp_path, stdin="another one\n"
    )
    assert code == 1 and "exists" in err
    assert _user_count(tmp_path) == 1


def test_user_add_asks_twice_and_refuses_different_passwords(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = iter(["first password", "second password"])
    monkeypatch.setattr(auth_cli.getpass, "getpass", lambda prompt: next(answers))  # the terminal
    code, _, err = _run(["user", "add", "ann"], tmp_path)
    assert (code, err) == (1, "invispose: the passwords differ; nothing was changed\n")
    assert _user_count(tmp_path) == 0


def test_user_list_without_users_says_how_to_add_one(tmp_path: Path) -> None:
    code, out, err = _run(["user", "list"], tmp_path)
    assert (code, out) == (0, "")
    assert "invispose user add" in err


def test_commands_refuse_an_invalid_config(tmp_path: Path) -> None:
    bad = tmp_path / "appliance.yaml"
    bad.write_text("server:\n  colour: blue\n")
    for argv in (["user", "list"], ["token", "list"], ["token", "revoke", "x"]):
        code, out, err = _run([*argv, "--config", str(bad)], tmp_path)
        assert (code, out) == (1, ""), argv
        assert "the configuration is not valid" in err and "server.colour: unknown key" in err


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--scopes", "pose:write"], "unknown scope(s) pose:write; known: "),
        (["--scopes", " , "], "give at least one scope with --scopes"),
        (["--scopes", "pose:read", "--expires", "30"], "expiry '30' is not like 12h, 30d, 8w, 1y or never"),
        (["--scopes", "pose:read", "--name", "  "], "--name must not be empty"),
    ],
)
def test_token_create_refuses_bad_options(tmp_path: Path, options: list[str], message: str) -> None:
    argv = ["token", "create", "--name", "ha", *options]
    code, out, err = _run(argv, tmp_path)
    assert (code, out) == (1, "")
    assert err.startswith(f"invispose: {message}")
    assert not (tmp_path / DATABASE_FILE).exists()  # refused before anything was opened


def test_token_list_states_and_revoke_of_an_unknown_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, token, err = _run(
        ["token", "create", "--name", "ha", "--scopes", "pose:read", "--expires", "1h"], tmp_path
    )
    assert code == 0 and token.startswith("ivp_") and "It is shown only this once." in err
    _run(["token", "create", "--name", "old", "--scopes", "pose:read"], tmp_path)
    listed = _run(["token", "list"], tmp_path)[1].splitlines()
    ids = {line.split("\t")[1]: line.split("\t")[0] for line in listed[1:]}
    assert _run(["token", "revoke", ids["old"]], tmp_path)[:2] == (0, f"revoked API token {ids['old']}\n")
    later = time.time() + 2 * 3600
    monkeypatch.setattr(auth_cli.time, "time", lambda: later)  # two hours on: the 1h token has expired
    rows = {
        line.split("\t")[1]: line.split("\t")
        for line in _run(["token", "list"], tmp_path)[1].splitlines()[1:]
    }
    assert rows["ha"][-1] == "expired" and rows["old"][-1] == "revoked"
    assert rows["ha"][4].endswith(" UTC") and rows["old"][4] == "never"
    code, out, err = _run(["token", "revoke", "nope"], tmp_path)
    assert (code, out) == (1, "")
    assert err == "invispose: no API token with id 'nope' (see 'invispose token list')\n"
