"""Accounts: people who log in (users) and long-lived API tokens, with how their secrets are kept at rest.

Passwords are stored only as scrypt hashes (a memory-hard KDF from the standard library, so no extra
dependency) and hashed on ``PasswordWorkers``: a few threads of their own, never the event loop and never
its default executor, whose threads the sources use (the simulator's steps, recordings). Each hash takes
32 MiB and about 0.1 s of a core, so at most ``PASSWORD_WORK_LIMIT`` wait or run at once and more are
refused (``PasswordBusyError``) at once: a burst of logins costs a bounded amount of memory and CPU, and
sensing never waits behind it.

Every user has an ``id``: 128 random bits, made when the user is created and never given to anybody
else, so a login token (which names the id) dies with its user even if the same name is made again.

API tokens are random strings shown once; only their SHA-256 is stored, which is enough for a 256-bit
secret (a slow KDF protects guessable passwords, not random keys) and lets a token be found by an indexed
lookup. Because every request looks a token up here, revoking it or creating one from the CLI on the same
file takes effect immediately.

Scopes are stored as the strings the API defines; this module does not interpret them.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import secrets
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from appliance.store.database import Database, register_schema

TOKEN_PREFIX = "ivp_"
_TOKEN_BYTES = 32
_TOKEN_ID_BYTES = 6
_SALT_BYTES = 16
_HASH_BYTES = 32
# scrypt with N=2^15, r=8 takes about 0.1 s and 32 MiB on a desktop core, about 0.5 s on a Raspberry Pi 4.
_SCRYPT_N = 2**15
_SCRYPT_R = 8
_SCRYPT_P = 1
_SCRYPT_MAXMEM = 64 * 2**20
_HASH_SCHEME = "scrypt"
# A token's last_used is written at most this often, so that a busy client does not write on every request.
LAST_USED_RESOLUTION_S = 60.0
# Threads that run scrypt (each run holds 32 MiB), and how many hashes may run or wait for them at once.
PASSWORD_THREADS = 2
PASSWORD_WORK_LIMIT = 4
# How long a client refused for a busy moment should wait: a few hashes' worth on a Raspberry Pi.
PASSWORD_RETRY_AFTER_S = 2
_USER_ID_BYTES = 16
T = TypeVar("T")

register_schema(
    "accounts",
    [
        """
        CREATE TABLE users (
            username TEXT PRIMARY KEY COLLATE NOCASE,
            password_hash TEXT NOT NULL,
            is_admin INTEGER NOT NULL,
            created REAL NOT NULL
        );
        CREATE TABLE api_tokens (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            token_hash TEXT NOT NULL UNIQUE,
            scopes TEXT NOT NULL,
            created REAL NOT NULL,
            created_by TEXT,
            expires REAL,
            last_used REAL,
            revoked REAL
        )
        """,
        # Ids that are never reused: a login token names the id, not the (reusable) username.
        """
        ALTER TABLE users ADD COLUMN id TEXT;
        UPDATE users SET id = lower(hex(randomblob(16))) WHERE id IS NULL;
        CREATE UNIQUE INDEX users_by_id ON users (id)
        """,
    ],
)


class AccountError(Exception):
    """A request the accounts cannot honour: the user exists, is the last admin, setup is done."""


class PasswordBusyError(Exception):
    """As many password hashes as allowed are running or waiting; try again in a moment."""


@dataclass(frozen=True, slots=True)
class User:
    id: str
    username: str
    is_admin: bool
    created: float


@dataclass(frozen=True, slots=True)
class ApiToken:
    id: str
    name: str
    scopes: tuple[str, ...]
    created: float
    created_by: str | None
    expires: float | None
    last_used: float | None
    revoked: float | None

    def usable(self, now: float) -> bool:
        return self.revoked is None and (self.expires is None or now < self.expires)


# --------------------------------------------------------------------------------------------------------
# Secrets at rest


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    """A self-describing scrypt hash, ``scrypt$N$r$p$salt$hash``, so the cost can be raised later."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    return f"{_HASH_SCHEME}${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != _HASH_SCHEME:
            return False
        computed = _scrypt(password, _unb64(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(computed, _unb64(digest))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_SCRYPT_MAXMEM, dklen=_HASH_BYTES
    )


@functools.cache
def _dummy_hash() -> str:
    """Checked against when the username is unknown, so that a miss costs as long as a wrong password."""
    return hash_password(secrets.token_urlsafe(16))


def _verify_or_dummy(password: str, stored: str | None) -> bool:
    """``verify_password`` against ``stored``, or against the dummy hash when there is no such user; in a
    worker thread, because making the dummy hash the first time is a whole scrypt run."""
    return verify_password(password, _dummy_hash() if stored is None else stored)


class PasswordWorkers:
    """The threads that hash passwords, and the limit on hashes running or waiting (see the module doc)."""

    def __init__(self, threads: int = PASSWORD_THREADS, limit: int = PASSWORD_WORK_LIMIT) -> None:
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="password")
        self.limit = limit
        self.in_flight = 0

    async def run(self, work: Callable[..., T], *args: str | None) -> T:
        """``work(*args)`` on a password thread; ``PasswordBusyError`` at once when the limit is reached."""
        if self.in_flight >= self.limit:
            raise PasswordBusyError(f"{self.in_flight} password checks are under way; retry shortly")
        self.in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)
        finally:
            self.in_flight -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)


# --------------------------------------------------------------------------------------------------------
# Repository


class AccountStore:
    """Users and API tokens in the appliance database; ``close()`` stops its password threads."""

    def __init__(self, database: Database, passwords: PasswordWorkers | None = None) -> None:
        self._db = database
        self.passwords = passwords or PasswordWorkers()

    def close(self) -> None:
        self.passwords.close()

    async def user_count(self) -> int:
        row = await self._db.fetchone("SELECT COUNT(*) AS n FROM users")
        return int(row["n"]) if row else 0

    async def create_user(
        self, username: str, password: str, *, is_admin: bool, only_if_first: bool = False
    ) -> User:
        """Add a user; with ``only_if_first`` the check for "no users yet" and the insert are one
        transaction, so two simultaneous onboarding requests cannot both create an admin."""
        password_hash = await self.passwords.run(hash_password, password)
        created = time.time()
        user_id = secrets.token_hex(_USER_ID_BYTES)

        def insert(connection: sqlite3.Connection) -> None:
            if only_if_first and connection.execute("SELECT 1 FROM users LIMIT 1").fetchone():
                raise AccountError("setup is already done: log in, or ask an admin for an account")
            try:
                connection.execute(
                    "INSERT INTO users (id, username, password_hash, is_admin, created) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (user_id, username, password_hash, int(is_admin), created),
                )
            except sqlite3.IntegrityError:
                raise AccountError(f"user {username!r} already exists") from None

        await self._db.run(insert)
        return User(user_id, username, is_admin, created)

    async def get_user(self, username: str) -> User | None:
        row = await self._db.fetchone(f"SELECT {_USER_COLUMNS} FROM users WHERE username = ?", (username,))
        return _user(row) if row else None

    async def get_user_by_id(self, user_id: str) -> User | None:
        row = await self._db.fetchone(f"SELECT {_USER_COLUMNS} FROM users WHERE id = ?", (user_id,))
        return _user(row) if row else None

    async def list_users(self) -> list[User]:
        rows = await self._db.fetchall(f"SELECT {_USER_COLUMNS} FROM users ORDER BY created")
        return [_user(r) for r in rows]

    async def check_password(self, username: str, password: str) -> User | None:
        """The user if the password is right; ``None`` otherwise, taking as long for an unknown name.
        ``PasswordBusyError`` when the password threads are full (nothing was checked)."""
        row = await self._db.fetchone(
            f"SELECT {_USER_COLUMNS}, password_hash FROM users WHERE username = ?", (username,)
        )
        stored = row["password_hash"] if row else None
        ok = await self.passwords.run(_verify_or_dummy, password, stored)
        return _user(row) if row and ok else None

    async def delete_user(self, username: str) -> bool:
        """Remove a user; refuses to remove the last admin, which would lock everybody out."""

        def delete(connection: sqlite3.Connection) -> bool:
            row = connection.execute("SELECT is_admin FROM users WHERE username = ?", (username,)).fetchone()
            if row is None:
                return False
            admins = connection.execute("SELECT COUNT(*) FROM users WHERE is_admin = 1").fetchone()[0]
            if row["is_admin"] and admins <= 1:
                raise AccountError("this is the last admin; add another admin before removing it")
            connection.execute("DELETE FROM users WHERE username = ?", (username,))
            return True

        return await self._db.run(delete)

    async def create_token(
        self, name: str, scopes: tuple[str, ...], *, expires: float | None, created_by: str | None
    ) -> tuple[str, ApiToken]:
        """A new token and its record; the token string exists only in the return value."""
        token = new_token()
        record = ApiToken(
            id=secrets.token_hex(_TOKEN_ID_BYTES),
            name=name,
            scopes=scopes,
            created=time.time(),
            created_by=created_by,
            expires=expires,
            last_used=None,
            revoked=None,
        )
        await self._db.execute(
            "INSERT INTO api_tokens (id, name, token_hash, scopes, created, created_by, expires) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                record.id,
                name,
                hash_token(token),
                " ".join(scopes),
                record.created,
                created_by,
                expires,
            ),
        )
        return token, record

    async def find_token(self, token: str) -> ApiToken | None:
        """The record of a presented token, whatever its state (the caller checks ``usable``)."""
        digest = hash_token(token)
        row = await self._db.fetchone("SELECT * FROM api_tokens WHERE token_hash = ?", (digest,))
        if row is None or not hmac.compare_digest(row["token_hash"], digest):
            return None
        return _token(row)

    async def touch_token(self, token: ApiToken, now: float) -> None:
        if token.last_used is None or now - token.last_used >= LAST_USED_RESOLUTION_S:
            await self._db.execute("UPDATE api_tokens SET last_used = ? WHERE id = ?", (now, token.id))

    async def list_tokens(self) -> list[ApiToken]:
        rows = await self._db.fetchall("SELECT * FROM api_tokens ORDER BY created")
        return [_token(r) for r in rows]

    async def revoke_token(self, token_id: str) -> bool:
        """Mark a token revoked (kept for the audit trail); ``False`` if there is no such token."""
        changed = await self._db.execute(
            "UPDATE api_tokens SET revoked = COALESCE(revoked, ?) WHERE id = ?", (time.time(), token_id)
        )
        return changed > 0


_USER_COLUMNS = "id, username, is_admin, created"


def _user(row: sqlite3.Row) -> User:
    return User(row["id"], row["username"], bool(row["is_admin"]), row["created"])


def _token(row: sqlite3.Row) -> ApiToken:
    return ApiToken(
        id=row["id"],
        name=row["name"],
        scopes=tuple(row["scopes"].split()),
        created=row["created"],
        created_by=row["created_by"],
        expires=row["expires"],
        last_used=row["last_used"],
        revoked=row["revoked"],
    )
