"""HubSpot credentials that renew: an OAuth app's access tokens renewed before expiry and on a 401 (one refresh at a
time, shared by every thread), rotated refresh tokens kept, `*_file` secrets re-read on a 401, clear config errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from connector.adapters.hubspot.adapter import HubSpotAdapter
from connector.adapters.hubspot.auth import Grant, OAuthTokens, token_source
from connector.config import HubSpotSettings, load_settings
from connector.core.clock import FrozenClock
from connector.core.errors import AuthError, ConfigError
from connector.sandbox.hubspot import HubSpotSandbox

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def sandbox() -> Iterator[HubSpotSandbox]:
    with HubSpotSandbox(seed=11, contacts=5, companies=2) as sb:
        yield sb


def oauth_settings(sandbox: HubSpotSandbox, **kw: object) -> HubSpotSettings:
    app = sandbox.oauth
    assert app is not None
    base: dict[str, object] = {
        "enabled": True, "base_url": sandbox.base_url, "client_id": app.client_id,
        "client_secret": SecretStr(app.client_secret), "refresh_token": SecretStr(app.refresh_token),
    }
    return HubSpotSettings(**{**base, **kw})  # type: ignore[arg-type]


def adapter_for(settings: HubSpotSettings) -> HubSpotAdapter:
    return HubSpotAdapter(settings, clock=FrozenClock(NOW), sleep=lambda s: None)


def statuses(sandbox: HubSpotSandbox) -> list[int]:
    return [status for _, _, path, status in sandbox.request_log if not path.startswith("/oauth")]


class FakeGrants:
    """The refresh-token grant as a function: counts calls, can rotate refresh tokens and hold the answer."""

    def __init__(self, expires_in: float = 1800, *, rotate: bool = False) -> None:
        self.expires_in = expires_in
        self.rotate = rotate
        self.seen: list[str] = []
        self.valid = {"r0"}
        self.in_flight = 0
        self.most_in_flight = 0
        self.hold = 0.0
        self._lock = threading.Lock()

    def __call__(self, refresh_token: str) -> Grant:
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.seen.append(refresh_token)
        try:
            time.sleep(self.hold)
            if refresh_token not in self.valid:
                raise AuthError("the refresh token was refused (HTTP 400)", crm="hubspot", credential="hubspot.refresh_token")
            n = len(self.seen)
            new_refresh = f"r{n}" if self.rotate else refresh_token
            if self.rotate:
                self.valid = {new_refresh}
            return Grant(f"a{n}", new_refresh, self.expires_in)
        finally:
            with self._lock:
                self.in_flight -= 1


# The token source, with a fake grant and a frozen clock


def test_access_token_is_renewed_before_it_expires_with_a_margin() -> None:
    clock, grants = FrozenClock(NOW), FakeGrants(expires_in=1800)
    tokens = OAuthTokens("r0", None, grants, clock)
    assert tokens.current() == "a1"
    clock.advance(1800 - 301)  # margin: a fifth of the lifetime, at most 300 s
    assert tokens.current() == "a1"
    clock.advance(2)
    assert tokens.current() == "a2"
    short = OAuthTokens("r0", None, FakeGrants(expires_in=5), FrozenClock(NOW))
    first = short.current()
    short._clock.advance(3.9)  # type: ignore[attr-defined]
    assert short.current() == first
    short._clock.advance(0.2)  # type: ignore[attr-defined]
    assert short.current() != first


def test_one_refresh_at_a_time_shared_by_every_thread() -> None:
    grants = FakeGrants()
    grants.hold = 0.05
    tokens = OAuthTokens("r0", None, grants, FrozenClock(NOW))
    seen: list[str] = []
    threads = [threading.Thread(target=lambda: seen.append(tokens.current())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen == ["a1"] * 8
    assert grants.most_in_flight == 1 and len(grants.seen) == 1
    # Two threads rejected with the same token: one renewal, both go on with the new token.
    results = []
    threads = [threading.Thread(target=lambda: results.append(tokens.renew("a1"))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == [True] * 4 and len(grants.seen) == 2 and tokens.current() == "a2"


def test_rotated_refresh_token_is_kept_in_memory_and_written_to_its_file(tmp_path: Path) -> None:
    secret = tmp_path / "refresh_token"
    secret.write_text("r0\n")
    grants = FakeGrants(expires_in=10, rotate=True)
    clock = FrozenClock(NOW)
    tokens = OAuthTokens("r0", str(secret), grants, clock)
    tokens.current()
    assert secret.read_text().strip() == "r1"
    clock.advance(10)
    tokens.current()  # the old refresh token r0 no longer works: r1 (kept) is used
    assert grants.seen == ["r0", "r1"] and secret.read_text().strip() == "r2"


def test_refused_refresh_token_rereads_refresh_token_file_then_names_the_key(tmp_path: Path) -> None:
    secret = tmp_path / "refresh_token"
    secret.write_text("stale\n")
    grants = FakeGrants()
    tokens = OAuthTokens("stale", str(secret), grants, FrozenClock(NOW))
    with pytest.raises(AuthError, match="hubspot.refresh_token"):
        tokens.current()
    secret.write_text("r0\n")  # Kubernetes updated the mounted secret
    assert tokens.current() == "a3" and grants.seen == ["stale", "stale", "r0"]


# Against the sandbox with the real hubspot-api-client


def test_oauth_app_gets_tokens_from_the_token_endpoint_and_a_401_mid_run_renews(sandbox: HubSpotSandbox) -> None:
    app = sandbox.enable_oauth(lifetime_seconds=1800)
    adapter = adapter_for(oauth_settings(sandbox))
    try:
        assert adapter.fetch_owners()
        assert app.grants == 1
        app.revoke_access_tokens()  # HubSpot invalidates the token before expires_in
        assert adapter.fetch_owners()
        assert app.grants == 2 and app.refusals == 1
        assert 401 in statuses(sandbox) and statuses(sandbox)[-1] == 200
    finally:
        adapter.close()


def test_adapters_of_one_account_share_one_token_source(sandbox: HubSpotSandbox) -> None:
    app = sandbox.enable_oauth(lifetime_seconds=1800, rotate_refresh_tokens=True)
    settings = oauth_settings(sandbox)
    first, second = adapter_for(settings), adapter_for(settings)
    try:
        first.fetch_owners()
        second.fetch_owners()  # a second adapter (another thread's) reuses the token: no second grant
        assert app.grants == 1
        assert token_source(settings, FrozenClock(NOW)) is second._client.tokens
    finally:
        first.close()
        second.close()


def test_expired_token_gets_hubspots_401_and_a_renewal(sandbox: HubSpotSandbox) -> None:
    app = sandbox.enable_oauth(lifetime_seconds=0.2)
    settings = oauth_settings(sandbox)
    adapter = adapter_for(settings)  # a frozen clock: the proactive renewal never fires, so the 401 path is taken
    try:
        adapter.fetch_owners()
        time.sleep(0.3)
        adapter.fetch_owners()
        assert app.refusals >= 1 and app.grants >= 2
    finally:
        adapter.close()


def test_access_token_file_is_reread_on_a_401(sandbox: HubSpotSandbox, tmp_path: Path) -> None:
    secret = tmp_path / "access_token"
    secret.write_text("token-v1\n")
    sandbox.token = "token-v1"
    adapter = adapter_for(HubSpotSettings(enabled=True, base_url=sandbox.base_url, access_token_file=str(secret)))
    try:
        adapter.fetch_owners()
        sandbox.token = "token-v2"  # the private app's token was rotated ...
        secret.write_text("token-v2\n")  # ... and Kubernetes updated the mounted secret
        before = len(statuses(sandbox))
        assert adapter.fetch_owners()
        assert statuses(sandbox)[before:] == [401, 200, 200]  # owners, then archived owners
        sandbox.token = "token-v3"  # rotated again, but the file still holds v2: the 401 stands, naming the key
        with pytest.raises(AuthError, match="hubspot.access_token"):
            adapter.fetch_owners()
    finally:
        adapter.close()


# Config


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({}, "access_token (or access_token_file) is required"),
        ({"client_id": "c"}, "OAuth app is missing client_secret and refresh_token"),
        ({"refresh_token": "r", "client_secret": "s"}, "also needs client_id"),
        ({"refresh_token": "r", "client_id": "c"}, "also needs client_secret (or client_secret_file)"),
        ({"refresh_token": "r", "client_id": "c", "client_secret": "s", "access_token": "t"}, "both set"),
    ],
)
def test_config_names_the_missing_oauth_keys(section: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(None, {"hubspot": {"enabled": True, **section}})


def test_oauth_config_from_env_and_file_and_a_stable_limiter_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNECTOR_HUBSPOT__CLIENT_ID", "app-1")
    monkeypatch.setenv("CONNECTOR_HUBSPOT__REFRESH_TOKEN", "refresh-1")
    settings = load_settings(None, {"hubspot": {"enabled": True, "client_secret": "s"}}).hubspot
    assert settings.auth_mode == "oauth" and settings.refresh_token is not None
    assert settings.refresh_token.get_secret_value() == "refresh-1"
    monkeypatch.delenv("CONNECTOR_HUBSPOT__REFRESH_TOKEN")
    secret = tmp_path / "refresh"
    secret.write_text("refresh-2\n")
    from_file = load_settings(None, {"hubspot": {"enabled": True, "client_secret": "s", "refresh_token_file": str(secret)}}).hubspot
    assert from_file.refresh_token is not None and from_file.refresh_token.get_secret_value() == "refresh-2"
    # The shared limiter's account: base_url + client_id, whatever the (renewed, rotated) tokens.
    assert settings.call_limits().account == from_file.call_limits().account
