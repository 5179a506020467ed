"""The published OpenAPI document, fuzzed with schemathesis against the live app: no request makes it answer 5xx.

The fuzzer's requests carry valid credentials (Basic auth for events, a real v3 signature over the generated
body for webhooks), so the parsers behind authentication are fuzzed too, not only the 401 path.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck
from schemathesis.checks import not_a_server_error

from connector.core.clock import FrozenClock

from .conftest import EVENTS_SECRET, WAIT, basic, make_app, post_signed

# Three operations take a body (30 examples each); the three GETs have no inputs (one example each): 93 requests.
EXAMPLES_PER_OPERATION = 30


def test_openapi_document_fuzzed_without_server_errors(tmp_path: Any, clock: FrozenClock, store_url: str) -> None:
    # On PostgreSQL too: it refuses values SQLite keeps (long text, NUL), which must be 400s, not 503s (issue 19).
    with make_app(tmp_path, clock, store_url=store_url) as app:
        assert app.service.wait_until(lambda: app.service.readiness()[0], WAIT)
        document = requests.get(f"{app.url}/openapi.json", timeout=10).json()
        schema = schemathesis.openapi.from_dict(document)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {op.label for op in operations} == {
            "POST /webhooks/hubspot", "POST /events", "POST /events/batch", "GET /healthz", "GET /readyz", "GET /metrics",
        }
        session = requests.Session()
        statuses: Counter[tuple[str, int]] = Counter()
        for operation in operations:
            label = operation.label

            @hypothesis.settings(
                max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck), phases=[hypothesis.Phase.generate],
            )
            @hypothesis.given(case=operation.as_strategy())
            def fuzz(case: Any) -> None:
                if label == "POST /webhooks/hubspot":
                    response = post_signed(app.url, json.dumps(case.body).encode(), clock)
                else:
                    response = case.call(base_url=app.url, session=session, headers={"Authorization": basic(EVENTS_SECRET)}, timeout=10)
                statuses[(label, response.status_code)] += 1
                case.validate_response(response, checks=[not_a_server_error])

            fuzz()
        assert sum(statuses.values()) <= 100
        assert all(status < 500 for _, status in statuses), statuses
        # Past authentication: the generated bodies reached the parsers (and some were valid).
        assert statuses[("POST /webhooks/hubspot", 200)] + statuses[("POST /webhooks/hubspot", 400)] > 0
        assert statuses[("POST /events", 200)] + statuses[("POST /events", 400)] > 0
