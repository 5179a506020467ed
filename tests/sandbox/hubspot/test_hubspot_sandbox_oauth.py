"""The sandbox's OAuth app through the real hubspot-api-client 12: the refresh-token grant at /oauth/v1/token,
access tokens with a set lifetime, HubSpot's 401 for an expired one, rotated refresh tokens
[crm-behaviour: HubSpot OAuth access tokens expire]."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import hubspot
import pytest
from hubspot.crm.owners.exceptions import UnauthorizedException
from hubspot.oauth import ApiException as OAuthApiException

from connector.core.clock import FrozenClock
from connector.sandbox.hubspot import HubSpotSandbox

CLOCK_START = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(CLOCK_START)


@pytest.fixture
def sandbox(clock: FrozenClock) -> Iterator[HubSpotSandbox]:
    with HubSpotSandbox(seed=3, contacts=3, companies=1, clock=clock) as sb:
        yield sb


def grant(sandbox: HubSpotSandbox, refresh_token: str, secret: str = "sandbox-secret") -> dict[str, object]:
    api = hubspot.Client.create(host=sandbox.base_url).oauth.tokens_api
    raw = api.create(grant_type="refresh_token", client_id="sandbox-client", client_secret=secret,
                     refresh_token=refresh_token, _preload_content=False)
    body: dict[str, object] = json.loads(raw.data)
    return body


def owners_with(sandbox: HubSpotSandbox, token: str) -> int:
    return len(hubspot.Client.create(access_token=token, host=sandbox.base_url).crm.owners.owners_api.get_page().results)


def test_grant_issues_tokens_that_expire_with_hubspots_401(sandbox: HubSpotSandbox, clock: FrozenClock) -> None:
    app = sandbox.enable_oauth(lifetime_seconds=5)
    body = grant(sandbox, "sandbox-refresh")
    assert body["expires_in"] == 5 and body["refresh_token"] == "sandbox-refresh" and body["token_type"] == "bearer"
    token = str(body["access_token"])
    assert owners_with(sandbox, token) > 0
    clock.advance(5)
    with pytest.raises(UnauthorizedException) as info:
        owners_with(sandbox, token)
    assert json.loads(info.value.body)["category"] == "EXPIRED_AUTHENTICATION"
    assert app.grants == 1 and app.refusals == 1
    assert owners_with(sandbox, sandbox.token) > 0  # the static token keeps working beside the app


def test_grant_refuses_unknown_credentials_and_rotates_refresh_tokens(sandbox: HubSpotSandbox) -> None:
    sandbox.enable_oauth(rotate_refresh_tokens=True)
    with pytest.raises(OAuthApiException) as info:
        grant(sandbox, "sandbox-refresh", secret="wrong")
    assert info.value.status == 400
    first = grant(sandbox, "sandbox-refresh")
    assert first["refresh_token"] != "sandbox-refresh"
    with pytest.raises(OAuthApiException) as info:
        grant(sandbox, "sandbox-refresh")  # the rotated-away refresh token is refused
    assert info.value.status == 400 and json.loads(info.value.body)["status"] == "BAD_REFRESH_TOKEN"
    assert grant(sandbox, str(first["refresh_token"]))["access_token"] != first["access_token"]
