"""Pieces of the gate on their own: signing secret, login tokens, expiry, buckets, Host and Origin rules."""

from __future__ import annotations

import logging
import re
import stat
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from appliance.api import auth, security
from appliance.api.auth import (
    SECRET_FILE,
    Authenticator,
    InvalidTokenError,
    LoginGuard,
    load_or_create_secret,
    parse_expiry,
    parse_scopes,
)
from appliance.api.routing import RateTier, Scope
from appliance.api.security import RateLimiter, SecurityPolicy
from appliance.config import AuthConfig, RateLimitConfig
from appliance.store.accounts import AccountStore, User
from appliance.store.database import DATABASE_FILE, Database
from tests.auth_support import config_in


def test_secret_is_created_private_and_kept(tmp_path: Path) -> None:
    secret = load_or_create_secret(tmp_path)
    assert len(secret) >= 32
    assert stat.S_IMODE((tmp_path / SECRET_FILE).stat().st_mode) == 0o600
    assert load_or_create_secret(tmp_path) == secret


def test_wide_secret_is_narrowed_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    secret = load_or_create_secret(tmp_path)
    (tmp_path / SECRET_FILE).chmod(0o644)
    with caplog.at_level(logging.WARNING):
        assert load_or_create_secret(tmp_path) == secret
    assert "readable by other users" in caplog.text
    assert stat.S_IMODE((tmp_path / SECRET_FILE).stat().st_mode) == 0o600


def test_short_secret_is_refused(tmp_path: Path) -> None:
    (tmp_path / SECRET_FILE).write_bytes(b"short")
    (tmp_path / SECRET_FILE).chmod(0o600)
    with pytest.raises(RuntimeError, match="delete it"):
        load_or_create_secret(tmp_path)


async def test_login_token_claims_and_failures(tmp_path: Path) -> None:
    database = await Database.open(tmp_path / DATABASE_FILE)
    try:
        accounts = AccountStore(database)
        user = await accounts.create_user("ann", "password-1", is_admin=False)
        secret = load_or_create_secret(tmp_path)
        authenticator = Authenticator(accounts, secret, jwt_ttl_s=600)
        token = authenticator.issue(user, frozenset({Scope.POSE_READ}))
        claims = jwt.decode(token, secret, algorithms=["HS256"])
        assert set(claims) == {"sub", "scopes", "exp", "iat", "jti"}
        assert claims["exp"] - claims["iat"] == 600 and claims["scopes"] == ["pose:read"]
        principal = await authenticator.authenticate(token)
        assert principal.allows(Scope.POSE_READ) and not principal.allows(Scope.SYSTEM_READ)
        # A forged admin claim for a viewer, even correctly signed, is capped by the user's rights.
        forged = jwt.encode({**claims, "scopes": ["admin:all"]}, secret, algorithm="HS256")
        assert not (await authenticator.authenticate(forged)).allows(Scope.CONFIG_WRITE)
        expired = jwt.encode({**claims, "exp": int(time.time()) - 10}, secret, algorithm="HS256")
        with pytest.raises(InvalidTokenError, match="expired"):
            await authenticator.authenticate(expired)
        with pytest.raises(InvalidTokenError, match="signature"):
            await authenticator.authenticate(jwt.encode(claims, b"k" * 64, algorithm="HS256"))
        with pytest.raises(InvalidTokenError, match="malformed"):
            await authenticator.authenticate("abc.def")
        ghost = Authenticator(accounts, secret, 600).issue(
            User("0" * 32, "ghost", True, 0.0), frozenset({Scope.ADMIN_ALL})
        )
        with pytest.raises(InvalidTokenError, match="no longer exists"):
            await authenticator.authenticate(ghost)
    finally:
        await database.close()


async def test_a_deleted_users_token_never_works_again_even_for_a_new_user_of_that_name(
    tmp_path: Path,
) -> None:
    """The token names the user's id, which a user made again at once under the same name does not get."""
    database = await Database.open(tmp_path / DATABASE_FILE)
    accounts = AccountStore(database)
    try:
        await accounts.create_user("root", "password-0", is_admin=True)  # so that bob may be removed
        bob = await accounts.create_user("bob", "password-1", is_admin=True)
        authenticator = Authenticator(accounts, load_or_create_secret(tmp_path), jwt_ttl_s=600)
        token = authenticator.issue(bob, frozenset({Scope.ADMIN_ALL}))
        assert (await authenticator.authenticate(token)).name == "bob"
        assert await accounts.delete_user("bob")
        again = await accounts.create_user("bob", "password-2", is_admin=True)
        assert again.id != bob.id
        with pytest.raises(InvalidTokenError, match="no longer exists"):
            await authenticator.authenticate(token)
        assert (await authenticator.authenticate(authenticator.issue(again, frozenset()))).id == again.id
    finally:
        accounts.close()
        await database.close()


def test_expiry_and_scope_parsing() -> None:
    assert parse_expiry("30d", 100.0) == 100.0 + 30 * 86_400
    assert parse_expiry("12h", 0.0) == 12 * 3600
    assert parse_expiry(None, 5.0) is None and parse_expiry("never", 5.0) is None
    for bad in ("30", "0d", "30s", "-1d", "1.5d"):
        with pytest.raises(ValueError, match="not like"):
            parse_expiry(bad, 0.0)
    assert parse_scopes(["pose:read", " admin:all "]) == {Scope.POSE_READ, Scope.ADMIN_ALL}
    known = ", ".join(s.value for s in Scope)
    with pytest.raises(ValueError, match=re.escape(f"unknown scope(s) pose:write, all; known: {known}")):
        parse_scopes(["pose:write", "all"])


def test_login_guard_slides_over_a_minute() -> None:
    guard = LoginGuard(attempts_per_minute=3)
    for t in (0.0, 10.0, 20.0):
        assert guard.attempt("a", t) is None
    assert guard.attempt("a", 30.0) == pytest.approx(30.0)
    assert guard.attempt("b", 30.0) is None
    assert guard.attempt("a", 60.0) is None  # the attempt at 0 is a minute old: out of the window
    guard.forgive("nobody", 1.0)  # forgiving a client never seen is nothing


def test_login_guard_counts_an_attempt_before_it_is_checked_and_forgives_a_right_one() -> None:
    guard = LoginGuard(attempts_per_minute=2)
    assert guard.attempt("a", 1.0) is None
    assert guard.attempt("a", 1.0) is None  # both under way, neither checked yet
    assert guard.attempt("a", 1.0) is not None  # a third concurrent one is refused at once
    guard.forgive("a", 1.0)  # one of the two was right
    assert guard.attempt("a", 2.0) is None
    assert guard.attempt("a", 2.0) is not None


def test_token_bucket_refills_at_the_configured_rate() -> None:
    limiter = RateLimiter({RateTier.ANONYMOUS: RateLimitConfig(per_minute=60, burst=2)})
    assert limiter.hit(RateTier.ANONYMOUS, "ip", 0.0)[0]
    allowed, state = limiter.hit(RateTier.ANONYMOUS, "ip", 0.0)
    assert allowed and state.remaining == 0 and state.reset_s == 2
    allowed, state = limiter.hit(RateTier.ANONYMOUS, "ip", 0.5)
    assert not allowed and state.retry_after_s == 1
    assert limiter.hit(RateTier.ANONYMOUS, "ip", 1.1)[0]
    assert limiter.hit(RateTier.ANONYMOUS, "other", 1.1)[0]
    assert limiter.peek(RateTier.ANONYMOUS, "new", 1.1).remaining == 2


def _policy(**auth: Any) -> SecurityPolicy:
    config = config_in(Path("/unused"), **{f"auth.{k}": v for k, v in auth.items()})
    return SecurityPolicy.from_config(config)


def test_host_rules() -> None:
    policy = _policy(allowed_hosts=["box.example.lan"])
    for host in (
        "localhost",
        "LOCALHOST:8099",
        "app.localhost",
        "10.0.0.5:80",
        "[fe80::1]:8099",
        "box.example.lan",
    ):
        assert policy.host_allowed(host), host
    for host in ("evil.example", "10.0.0.5.evil.example", "box.example.lan.evil", "[::1", "host:port"):
        assert not policy.host_allowed(host), host


def test_origin_rules() -> None:
    policy = _policy(cors_origins=["https://ha.example:8123"])
    assert policy.origin_allowed("http://box.local:8099", "box.local:8099")
    assert policy.origin_allowed("http://box.local", "box.local:80")
    assert policy.origin_allowed("https://HA.example:8123", "box.local:8099")
    assert not policy.origin_allowed("http://box.local:8100", "box.local:8099")
    assert not policy.origin_allowed("null", "box.local:8099")
    assert not policy.origin_allowed("http://evil.example", None)
    # Default ports by scheme, on either side, and names compared without case.
    assert policy.origin_allowed("https://box.local", "box.local:443")
    assert policy.origin_allowed("https://box.local", "box.local")
    assert not policy.origin_allowed("https://box.local", "box.local:80")
    assert policy.origin_allowed("http://box.local:8099", "BOX.Local:8099")
    assert not policy.origin_allowed("http://[::1", "[::1]:8099")  # not a URL at all


def test_auth_config_rejects_paths_and_schemes() -> None:
    with pytest.raises(ValueError, match="cors_origins"):
        AuthConfig(cors_origins=["http://ha.local:8123/"])
    with pytest.raises(ValueError, match="allowed_hosts"):
        AuthConfig(allowed_hosts=["http://box"])


def test_invalid_token_challenge_stays_a_well_formed_header() -> None:
    """PyJWT's messages quote claim names; they must not end the quoted error_description early."""
    from appliance.api.security import _unauthorized

    challenge = _unauthorized('Token is missing the "sub" claim', with_error=True).headers["WWW-Authenticate"]
    assert challenge.endswith("error_description=\"Token is missing the 'sub' claim\"")
    assert challenge.count('"') == 6


async def test_api_token_expiry_is_enforced(tmp_path: Path) -> None:
    database = await Database.open(tmp_path / DATABASE_FILE)
    try:
        accounts = AccountStore(database)
        authenticator = Authenticator(accounts, load_or_create_secret(tmp_path), jwt_ttl_s=600)
        now = time.time()
        expired, _ = await accounts.create_token("a", ("admin:all",), expires=now - 1, created_by=None)
        lasting, record = await accounts.create_token("b", ("pose:read",), expires=now + 60, created_by=None)
        with pytest.raises(InvalidTokenError, match=r"^the API token expired$"):
            await authenticator.authenticate(expired)
        principal = await authenticator.authenticate(lasting)
        assert (principal.kind, principal.id, principal.scopes) == ("token", record.id, {Scope.POSE_READ})
        assert record.usable(record.expires - 0.001) and not record.usable(record.expires)  # type: ignore[operator]
    finally:
        await database.close()


def test_rate_limiter_forgets_idle_clients_first_and_never_a_limited_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A flood of new addresses must not reset the bucket of a client that is being limited."""
    monkeypatch.setattr(security, "MAX_BUCKETS", 4)
    limiter = RateLimiter({RateTier.ANONYMOUS: RateLimitConfig(per_minute=6, burst=2)})  # 0.1 per s
    anon = RateTier.ANONYMOUS
    limiter.hit(anon, "idle", 0.0)  # one token left, full again at 10 s
    assert [limiter.hit(anon, "attacker", 10.0)[0] for _ in range(3)] == [True, True, False]
    limiter.hit(anon, "busy", 19.9)
    limiter.hit(anon, "busy", 19.9)
    limiter.hit(anon, "recent", 19.9)
    assert limiter.hit(anon, "newcomer", 20.0)[0]  # the fifth key: the full bucket makes room
    assert limiter.peek(anon, "attacker", 20.0).remaining == 1  # kept: refilled for 10 s, not reset to 2
    assert limiter.peek(anon, "busy", 20.0).remaining == 0
    assert limiter.peek(anon, "recent", 20.0).remaining == 1
    assert not limiter.hit(anon, "busy", 20.0)[0]


def test_rate_limiter_sheds_the_oldest_half_when_every_bucket_is_in_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(security, "MAX_BUCKETS", 4)
    limiter = RateLimiter({RateTier.ANONYMOUS: RateLimitConfig(per_minute=1, burst=2)})
    anon = RateTier.ANONYMOUS
    for i, key in enumerate(["d", "c", "b", "a"]):  # oldest first, and not in alphabetical order
        limiter.hit(anon, key, float(i))
    limiter.hit(anon, "e", 4.0)
    remaining = {k: limiter.peek(anon, k, 4.0).remaining for k in "abcde"}
    assert remaining == {"a": 1, "b": 1, "c": 2, "d": 2, "e": 1}  # d and c, the oldest, were dropped
    assert limiter.peek(anon, "never-seen", 4.0) == security.RateState(
        limit=2, remaining=2, reset_s=0, retry_after_s=0
    )


def test_login_guard_remembers_no_more_clients_than_its_room(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "_LOGIN_GUARD_MAX_CLIENTS", 2)
    guard = LoginGuard(attempts_per_minute=1)
    guard.attempt("amy", 0.0)
    guard.attempt("bob", 1.0)
    assert guard.retry_after("amy", 2.0) == pytest.approx(58.0)
    guard.attempt("cat", 2.0)  # a third client in room for two: the quietest, amy, is forgotten
    assert guard.retry_after("amy", 2.0) is None
    assert guard.retry_after("bob", 2.0) == pytest.approx(59.0)


def test_login_guard_forgets_quiet_clients_before_locked_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "_LOGIN_GUARD_MAX_CLIENTS", 3)
    guard = LoginGuard(attempts_per_minute=2)
    guard.attempt("quiet", 0.0)
    guard.attempt("zed", 50.0)
    guard.attempt("zed", 51.0)
    guard.attempt("amy", 52.0)
    guard.attempt("bob", 70.0)  # room is made by forgetting "quiet" (last failure over a minute ago)
    assert guard.retry_after("zed", 70.0) == pytest.approx(40.0)
    guard.attempt("amy", 71.0)  # known: nobody is forgotten
    assert guard.retry_after("amy", 71.0) == pytest.approx(41.0)
    assert guard.retry_after("zed", 71.0) == pytest.approx(39.0)
    guard.attempt("fifth", 72.0)  # everybody failed within the minute: the longest quiet ("zed") goes
    assert guard.retry_after("zed", 72.0) is None
    assert guard.retry_after("amy", 72.0) == pytest.approx(40.0)


def test_the_secret_is_made_private_in_a_data_directory_that_does_not_exist_yet(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "new" / "data"
    with caplog.at_level(logging.INFO, logger="appliance.api.auth"):
        secret = load_or_create_secret(data_dir)
    path = data_dir / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_bytes() == secret
    # Made private from the start, never narrowed: the only record is the creation, with its file.
    assert [(r.levelname, r.getMessage(), r.fields) for r in caplog.records] == [  # type: ignore[attr-defined]
        ("INFO", "created the login signing secret", {"file": str(path)})
    ]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="appliance.api.auth"):
        assert load_or_create_secret(data_dir) == secret
    assert not caplog.records  # a private secret is read without a word


def test_a_widened_secret_is_logged_with_its_file_and_old_mode(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    load_or_create_secret(tmp_path)
    (tmp_path / SECRET_FILE).chmod(0o640)
    with caplog.at_level(logging.WARNING, logger="appliance.api.auth"):
        load_or_create_secret(tmp_path)
    (record,) = caplog.records
    assert record.getMessage() == (
        "the login signing secret was readable by other users; its mode is now 0600. If anybody else may "
        "have read it, delete it and restart to rotate it"
    )
    assert record.fields == {"file": str(tmp_path / SECRET_FILE), "mode": "0o640"}  # type: ignore[attr-defined]


def test_a_secret_of_exactly_256_bits_is_enough_and_a_directory_in_its_place_is_refused(
    tmp_path: Path,
) -> None:
    """RFC 7518 3.2: an HS256 key must be at least as long as the hash, 256 bits."""
    (tmp_path / SECRET_FILE).write_bytes(b"k" * 32)
    (tmp_path / SECRET_FILE).chmod(0o600)
    assert load_or_create_secret(tmp_path) == b"k" * 32
    other = tmp_path / "other"
    (other / SECRET_FILE).mkdir(parents=True)
    with pytest.raises(RuntimeError) as refused:
        load_or_create_secret(other)
    assert (
        str(refused.value)
        == f"{other / SECRET_FILE} must be a regular file; remove it so that a new secret is made"
    )


async def test_every_refused_token_says_why(tmp_path: Path) -> None:
    """The reason reaches the client as the challenge's error_description (RFC 6750 3)."""
    database = await Database.open(tmp_path / DATABASE_FILE)
    accounts = AccountStore(database)
    try:
        user = await accounts.create_user("ann", "password-1", is_admin=False)
        secret = load_or_create_secret(tmp_path)
        authenticator = Authenticator(accounts, secret, jwt_ttl_s=600)
        claims = jwt.decode(
            authenticator.issue(user, frozenset({Scope.POSE_READ})), secret, algorithms=["HS256"]
        )
        assert len(claims["jti"]) == 32  # 128 random bits, hex
        principal = await authenticator.authenticate(jwt.encode(claims, secret, algorithm="HS256"))
        assert (principal.kind, principal.id, principal.name) == ("user", user.id, "ann")

        def signed(**changes: Any) -> str:
            return jwt.encode({k: v for k, v in {**claims, **changes}.items() if v is not None}, secret)

        now = int(time.time())
        reasons = {
            signed(exp=now - 10): "the token expired",
            jwt.encode(claims, b"k" * 64, algorithm="HS256"): "the token's signature is not valid",
            signed(jti=None): 'the token is not valid: Token is missing the "jti" claim',
            signed(scopes="pose:read"): "the token's claims are malformed",
            signed(scopes=["pose:write"]): "the token names an unknown scope",
            signed(sub="0" * 32): "the token's user no longer exists",
        }
        for token, reason in reasons.items():
            with pytest.raises(InvalidTokenError) as refused:
                await authenticator.authenticate(token)
            assert str(refused.value) == reason
    finally:
        accounts.close()
        await database.close()
