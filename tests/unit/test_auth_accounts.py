"""Accounts at rest: slow password hashes, hashed API tokens, one first admin, never zero admins."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from appliance.store.accounts import (
    TOKEN_PREFIX,
    AccountError,
    AccountStore,
    hash_password,
    hash_token,
    verify_password,
)
from appliance.store.database import DATABASE_FILE, Database
from tests.auth_support import database_bytes


@pytest.fixture
async def accounts(tmp_path: Path) -> AsyncIterator[AccountStore]:
    database = await Database.open(tmp_path / DATABASE_FILE)
    yield AccountStore(database)
    await database.close()


def test_password_hash_is_salted_scrypt() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second and first.startswith("scrypt$32768$8$1$")
    assert verify_password("correct horse", first)
    assert not verify_password("correct horsf", first)
    assert not verify_password("correct horse", "md5$whatever")
    assert not verify_password("correct horse", "garbage")


def test_password_hash_is_slow_enough() -> None:
    started = time.perf_counter()
    hash_password("x" * 12)
    assert time.perf_counter() - started > 0.01


async def test_first_admin_is_created_once_even_when_racing(accounts: AccountStore) -> None:
    results = await asyncio.gather(
        *(
            accounts.create_user(f"admin{i}", "password-1", is_admin=True, only_if_first=True)
            for i in range(4)
        ),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, AccountError) for r in results if isinstance(r, BaseException))
    assert await accounts.user_count() == 1


async def test_usernames_are_unique_ignoring_case(accounts: AccountStore) -> None:
    await accounts.create_user("Alice", "password-1", is_admin=False)
    with pytest.raises(AccountError, match="exists"):
        await accounts.create_user("alice", "password-2", is_admin=False)
    assert await accounts.check_password("alice", "password-1") is not None
    assert await accounts.check_password("alice", "password-2") is None
    assert await accounts.check_password("nobody", "password-1") is None


async def test_last_admin_stays(accounts: AccountStore) -> None:
    await accounts.create_user("root", "password-1", is_admin=True)
    with pytest.raises(AccountError, match="last admin"):
        await accounts.delete_user("root")
    await accounts.create_user("second", "password-1", is_admin=True)
    assert await accounts.delete_user("root")
    assert not await accounts.delete_user("root")


async def test_tokens_are_stored_as_hashes_and_revoked_for_good(
    accounts: AccountStore, tmp_path: Path
) -> None:
    token, record = await accounts.create_token("ha", ("pose:read",), expires=None, created_by="admin")
    assert token.startswith(TOKEN_PREFIX) and len(token) > 40
    stored = database_bytes(tmp_path)
    assert token.encode() not in stored
    assert hash_token(token).encode() in stored
    found = await accounts.find_token(token)
    assert found is not None and found.id == record.id and found.usable(time.time())
    assert await accounts.find_token(token + "x") is None
    assert await accounts.revoke_token(record.id)
    revoked = await accounts.find_token(token)
    assert revoked is not None and not revoked.usable(time.time())
    assert not await accounts.revoke_token("nope")


async def test_expired_token_is_not_usable(accounts: AccountStore) -> None:
    token, _ = await accounts.create_token("old", ("pose:read",), expires=time.time() - 1, created_by=None)
    found = await accounts.find_token(token)
    assert found is not None and not found.usable(time.time())


async def test_last_used_is_written_at_most_once_a_minute(accounts: AccountStore) -> None:
    token, _ = await accounts.create_token("ha", ("pose:read",), expires=None, created_by=None)
    found = await accounts.find_token(token)
    assert found is not None
    await accounts.touch_token(found, 1000.0)
    touched = await accounts.find_token(token)
    assert touched is not None and touched.last_used == 1000.0
    await accounts.touch_token(touched, 1030.0)
    again = await accounts.find_token(token)
    assert again is not None and again.last_used == 1000.0


async def test_unknown_user_login_hashes_off_the_event_loop(
    accounts: AccountStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dummy hash that an unknown name is checked against is a whole scrypt run the first time."""
    from appliance.store import accounts as module

    loop_thread = threading.get_ident()
    hashed_in: list[int] = []

    def recording_hash(password: str) -> str:
        hashed_in.append(threading.get_ident())
        return hash_password(password)

    monkeypatch.setattr(module, "hash_password", recording_hash)
    module._dummy_hash.cache_clear()
    try:
        assert await accounts.check_password("nobody", "whatever-password") is None
    finally:
        module._dummy_hash.cache_clear()
    assert hashed_in and loop_thread not in hashed_in
