"""Salesforce response classification: HTTP status + errorCode → connector error class, as one pure table."""

from __future__ import annotations

import pytest

from connector.adapters.salesforce.errors import classify, needs_new_session
from connector.core.errors import (
    AuthError,
    BudgetExhaustedError,
    ConnectorError,
    CrmApiError,
    RateLimitedError,
    RecordError,
    TransientError,
)


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        # per-record results inside a Collections answer (HTTP 200) [crm-behaviour: Salesforce per-record errors]
        (200, "CANNOT_UPDATE_CONVERTED_LEAD", RecordError),
        (200, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", RecordError),
        (200, "FIELD_CUSTOM_VALIDATION_EXCEPTION", RecordError),
        (200, "INACTIVE_OWNER_OR_USER", RecordError),
        (200, "INVALID_CROSS_REFERENCE_KEY", RecordError),
        (200, "ENTITY_IS_DELETED", RecordError),
        (200, "SOMETHING_NEW", RecordError),  # unknown per-record codes are dead-lettered, never retried forever
        (200, "UNABLE_TO_LOCK_ROW", TransientError),
        # request-level answers
        (401, "INVALID_SESSION_ID", AuthError),
        (401, None, AuthError),
        (403, "REQUEST_LIMIT_EXCEEDED", BudgetExhaustedError),
        (403, "INSUFFICIENT_ACCESS", AuthError),
        (403, "API_DISABLED_FOR_ORG", AuthError),
        (400, "MALFORMED_QUERY", CrmApiError),
        (400, "INVALID_FIELD", RecordError),
        (400, "CANNOT_UPDATE_CONVERTED_LEAD", RecordError),  # single-record PATCH answers 400 with the record's code
        (400, "UNABLE_TO_LOCK_ROW", TransientError),
        (400, "EXCEEDED_ID_LIMIT", CrmApiError),
        (404, "NOT_FOUND", CrmApiError),
        (408, None, TransientError),
        (429, None, RateLimitedError),
        (500, "UNKNOWN_EXCEPTION", TransientError),
        (502, None, TransientError),
        (503, "SERVER_UNAVAILABLE", TransientError),
        (0, None, TransientError),  # no HTTP answer at all
    ],
)
def test_classification_table(status: int, code: str | None, expected: type[ConnectorError]) -> None:
    assert classify(status, code) is expected


@pytest.mark.parametrize(
    ("status", "code", "refresh"),
    [(401, "INVALID_SESSION_ID", True), (401, "INVALID_AUTH_HEADER", False), (403, "INVALID_SESSION_ID", False), (200, None, False)],
)
def test_only_401_invalid_session_asks_for_a_new_token(status: int, code: str | None, refresh: bool) -> None:
    assert needs_new_session(status, code) is refresh
