"""``invispose user`` and ``invispose token``: accounts and API tokens from the command line.

They work on the database in the data directory (``--config``/``--data-dir``), the same file a running
instance uses, so a token created here is accepted by the running service at once, and a revoked one is
refused at once. ``token create`` prints the token alone on stdout (for ``TOKEN=$(invispose token create
...)``); everything else it says goes to stderr. ``user setup-code`` prints the code that creating the
first admin in the web UI needs on a box that lost its users (see ``api/onboarding.py``); ``user add``
needs none, since a shell on the box is proof enough, and ends onboarding.

Exit codes: 0 ok, 1 configuration or input error, 2 usage (argparse).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO, TypeVar

from pydantic import ValidationError

from appliance.api.auth import Credentials, parse_expiry, parse_scopes
from appliance.api.onboarding import clear_setup_code, read_setup_code
from appliance.api.routing import Scope
from appliance.store.accounts import AccountError, AccountStore, ApiToken
from appliance.store.database import DATABASE_FILE, Database

EXIT_OK, EXIT_ERROR = 0, 1
T = TypeVar("T")


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    """Add ``user`` and ``token`` to the ``invispose`` command line."""
    user = subparsers.add_parser("user", help="people who log in to the web UI and API")
    user_commands = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    add = user_commands.add_parser("add", parents=[common], help="add a user (asks for the password)")
    add.add_argument("name", help="username (letters, digits, _ . @ -)")
    add.add_argument("--admin", action="store_true", help="may do everything (scope admin:all)")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from the first line of stdin"
    )
    add.set_defaults(handler=run_user_add)
    listing = user_commands.add_parser("list", parents=[common], help="list users")
    listing.set_defaults(handler=run_user_list)
    code = user_commands.add_parser(
        "setup-code",
        parents=[common],
        help="print the code the web UI asks for to create the first admin on a box that lost its users",
    )
    code.set_defaults(handler=run_user_setup_code)

    token = subparsers.add_parser("token", help="long-lived API tokens for Home Assistant and scripts")
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    scopes = ", ".join(s.value for s in Scope)
    create = token_commands.add_parser(
        "create",
        parents=[common],
        help="create a token and print it (only this once) on stdout",
        description=f"Scopes: {scopes}. admin:all grants every scope.",
    )
    create.add_argument("--name", required=True, help="what the token is for, e.g. home-assistant")
    create.add_argument("--scopes", required=True, help=f"comma-separated, from: {scopes}")
    create.add_argument("--expires", default=None, help="lifetime like 12h, 30d, 8w, 1y (default: never)")
    create.set_defaults(handler=run_token_create)
    tokens = token_commands.add_parser("list", parents=[common], help="list tokens (never the tokens)")
    tokens.set_defaults(handler=run_token_list)
    revoke = token_commands.add_parser("revoke", parents=[common], help="revoke a token by its id")
    revoke.add_argument("id", help="the id shown by 'token list'")
    revoke.set_defaults(handler=run_token_revoke)


def _data_dir(args: argparse.Namespace, err: TextIO) -> Path | None:
    from appliance.config import ConfigError, load_config

    overrides = {"data_dir": str(args.data_dir)} if args.data_dir is not None else {}
    try:
        config = load_config(args.config, overrides=overrides)
    except ConfigError as exc:
        print(f"invispose: the configuration is not valid:\n{exc}", file=err)
        return None
    return config.data_dir.expanduser().resolve()


def _with_accounts(data_dir: Path, work: Callable[[AccountStore], Awaitable[T]]) -> T:
    async def run() -> T:
        database = await Database.open(data_dir / DATABASE_FILE)
        accounts = AccountStore(database)
        try:
            return await work(accounts)
        finally:
            accounts.close()
            await database.close()

    return asyncio.run(run())


def _when(value: float | None, absent: str = "-") -> str:
    if value is None:
        return absent
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M UTC")


# ----------------------------------------------------------------------------------------------------
# user


def run_user_add(
    args: argparse.Namespace, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout, err: TextIO = sys.stderr
) -> int:
    data_dir = _data_dir(args, err)
    if data_dir is None:
        return EXIT_ERROR
    if args.password_stdin:
        password = stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            print("invispose: the passwords differ; nothing was changed", file=err)
            return EXIT_ERROR
    try:
        credentials = Credentials(username=args.name, password=password)
    except ValidationError as exc:
        problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors(include_input=False))
        print(f"invispose: {problems}", file=err)
        return EXIT_ERROR
    try:
        user = _with_accounts(
            data_dir,
            lambda accounts: accounts.create_user(
                credentials.username, credentials.password, is_admin=args.admin
            ),
        )
    except AccountError as exc:
        print(f"invispose: {exc}", file=err)
        return EXIT_ERROR
    clear_setup_code(data_dir)  # an account exists: onboarding is over
    print(f"added {'admin' if user.is_admin else 'user'} {user.username}", file=out)
    return EXIT_OK


def run_user_setup_code(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    data_dir = _data_dir(args, err)
    if data_dir is None:
        return EXIT_ERROR
    code = read_setup_code(data_dir)
    if code is None:
        print(
            "no setup code is pending: this box has users, or is new (its web UI asks for the first admin "
            "without one); a running instance makes one at start when it finds it has lost its users",
            file=err,
        )
        return EXIT_ERROR
    print(code, file=out)
    print("enter it in the web UI to create the first admin; it works once", file=err)
    return EXIT_OK


def run_user_list(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    data_dir = _data_dir(args, err)
    if data_dir is None:
        return EXIT_ERROR
    users = _with_accounts(data_dir, lambda accounts: accounts.list_users())
    if not users:
        print(
            "no users yet: open the web UI to create the first admin, or run 'invispose user add'", file=err
        )
    for user in users:
        print(f"{user.username}\t{'admin' if user.is_admin else 'viewer'}\t{_when(user.created)}", file=out)
    return EXIT_OK


# ----------------------------------------------------------------------------------------------------
# token


def run_token_create(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    try:
        scopes = parse_scopes(args.scopes.split(","))
        expires = parse_expiry(args.expires, time.time())
    except ValueError as exc:
        print(f"invispose: {exc}", file=err)
        return EXIT_ERROR
    if not scopes:
        print("invispose: give at least one scope with --scopes", file=err)
        return EXIT_ERROR
    name = args.name.strip()
    if not name:
        print("invispose: --name must not be empty", file=err)
        return EXIT_ERROR
    data_dir = _data_dir(args, err)
    if data_dir is None:
        return EXIT_ERROR
    token, record = _with_accounts(
        data_dir,
        lambda accounts: accounts.create_token(
            name, tuple(sorted(s.value for s in scopes)), expires=expires, created_by="cli"
        ),
    )
    print(token, file=out)
    print(
        f"created API token {record.id} ({record.name}; {' '.join(record.scopes)}; "
        f"expires {_when(record.expires, 'never')}). It is shown only this once.",
        file=err,
    )
    return EXIT_OK


def run_token_list(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    data_dir = _data_dir(args, err)
    if data_dir is None:
        return EXIT_ERROR
    tokens = _with_accounts(data_dir, lambda accounts: accounts.list_tokens())
    now = time.time()
    print("id\tname\tscopes\tcreated\texpires\tlast used\tstate", file=out)
    for token in tokens:
        fields = [
            token.id,
            token.name,
            ",".join(token.scopes),
            _when(token.created),
            _when(token.expires, "never"),
            _when(token.last_used, "never"),
            _state(token, now),
        ]
        print("\t".join(fields), file=out)
    return EXIT_OK


def _state(token: ApiToken, now: float) -> str:
    if token.revoked is not None:
        return "revoked"
    return "active" if token.usable(now) else "expired"


def run_token_revoke(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    data_dir = _data_dir(args, err)
    if data_dir is None:
        return EXIT_ERROR
    if not _with_accounts(data_dir, lambda accounts: accounts.revoke_token(args.id)):
        print(f"invispose: no API token with id {args.id!r} (see 'invispose token list')", file=err)
        return EXIT_ERROR
    print(f"revoked API token {args.id}", file=out)
    return EXIT_OK
