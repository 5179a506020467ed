"""HubSpot error classification: HTTP status + error category + 429 policy → connector error class (pure table)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from connector.adapters.hubspot.adapter import HubSpotAdapter
from connector.adapters.hubspot.errors import classify
from connector.core.clock import FrozenClock
from connector.config import HubSpotSettings
from connector.core.errors import (
    AuthError,
    BudgetExhaustedError,
    ConnectorError,
    CrmApiError,
    RateLimitedError,
    RecordError,
    TransientError,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "category", "policy", "expected"),
    [
        (429, "RATE_LIMITS", "TEN_SECONDLY_ROLLING", RateLimitedError),
        (429, "RATE_LIMITS", "SECONDLY", RateLimitedError),
        (429, None, None, RateLimitedError),
        (429, "RATE_LIMITS", "DAILY", BudgetExhaustedError),
        (429, None, "daily", BudgetExhaustedError),
        (401, None, None, AuthError),
        (401, "INVALID_AUTHENTICATION", None, AuthError),
        (403, "MISSING_SCOPES", None, AuthError),
        (403, None, None, AuthError),
        (500, None, None, TransientError),
        (502, None, None, TransientError),
        (503, None, None, TransientError),
        (504, None, None, TransientError),
        (530, None, None, TransientError),  # Cloudflare, e.g. a malformed token [crm-behaviour: HubSpot HTTP 530 from a malformed token]
        (408, None, None, TransientError),
        (0, None, None, TransientError),  # no HTTP response at all
        (404, "OBJECT_NOT_FOUND", None, RecordError),
        (404, None, None, RecordError),
        (409, "CONFLICT", None, RecordError),
        (400, "VALIDATION_ERROR", None, CrmApiError),
        (400, None, None, CrmApiError),
        (414, None, None, CrmApiError),
        (422, None, None, CrmApiError),
    ],
)
def test_classify(status: int, category: str | None, policy: str | None, expected: type[ConnectorError]) -> None:
    assert classify(status, category, policy) is expected


def test_rate_limit_is_the_only_retried_4xx() -> None:
    retried = {s for s in range(400, 500) if issubclass(classify(s, None, None), TransientError)}
    assert retried == {408, 429}


def adapter() -> HubSpotAdapter:
    settings = HubSpotSettings(enabled=True, access_token=SecretStr("tok-123"), base_url="http://127.0.0.1:9")
    return HubSpotAdapter(settings, clock=FrozenClock(NOW), sleep=lambda s: None)


def test_403_names_the_missing_scope_from_the_structured_context() -> None:
    body = json.dumps({
        "status": "error", "category": "MISSING_SCOPES", "correlationId": "c-1",
        "message": "This app hasn't been granted all required scopes to make this call.",
        "errors": [{"message": "One or more of the following scopes are required.",
                    "context": {"requiredGranularScopes": ["crm.objects.contacts.write"]}}],
    })
    error = adapter()._translate(403, {}, body, "contacts.batch_update")
    assert isinstance(error, AuthError)
    assert error.credential == "hubspot.access_token"
    assert "crm.objects.contacts.write" in str(error) and "granted" not in str(error)


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "Sat, 01 Mar 2025 12:00:30 GMT"}, 30.0),
        ({}, None),  # HubSpot does not always send it [crm-behaviour: HubSpot 429 responses]
        ({"retry-after": "soon"}, None),
    ],
)
def test_429_carries_retry_after_when_the_crm_sent_one(headers: dict[str, str], retry_after: float | None) -> None:
    body = json.dumps({"status": "error", "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"})
    error = adapter()._translate(429, headers, body, "contacts.search")
    assert isinstance(error, RateLimitedError)
    assert error.retry_after == retry_after


def test_messages_carry_no_raw_body_or_token() -> None:
    body = json.dumps({"status": "error", "category": "VALIDATION_ERROR", "message": "bad filter on jane@example.com",
                       "correlationId": "abc-123"})
    error = adapter()._translate(400, {}, body.encode(), "contacts.search")
    assert isinstance(error, CrmApiError) and (error.status, error.code) == (400, "VALIDATION_ERROR")
    assert "jane@example.com" not in str(error) and "tok-123" not in str(error)
    assert "abc-123" in str(error)  # the correlation id is what HubSpot support asks for
