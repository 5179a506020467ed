"""The shared sandbox server base: the latency switch with its seeded jitter, forced failures, the 5xx roll, both CRMs."""

from __future__ import annotations

import time

import pytest
import requests

from connector.sandbox.hubspot import HubSpotSandbox
from connector.sandbox.salesforce import SalesforceSandbox


@pytest.fixture
def hubspot() -> HubSpotSandbox:
    return HubSpotSandbox(contacts=4, companies=2)


def test_latency_is_exact_without_jitter_and_within_jitter_with_it(hubspot: HubSpotSandbox) -> None:
    assert hubspot.delay_seconds() == 0.0
    hubspot.latency_seconds = 0.2
    assert hubspot.delay_seconds() == 0.2
    hubspot.latency_jitter_seconds = 0.05
    delays = [hubspot.delay_seconds() for _ in range(200)]
    assert all(0.15 <= d <= 0.25 for d in delays) and len(set(delays)) > 100


def test_jitter_is_seeded_and_never_negative() -> None:
    first, second = HubSpotSandbox(seed=3, contacts=4, companies=2), HubSpotSandbox(seed=3, contacts=4, companies=2)
    for sb in (first, second):
        sb.latency_seconds, sb.latency_jitter_seconds = 0.01, 0.05
    a, b = [first.delay_seconds() for _ in range(50)], [second.delay_seconds() for _ in range(50)]
    assert a == b and min(a) == 0.0 and max(a) > 0.01


def test_salesforce_has_the_latency_switch_too() -> None:
    sb = SalesforceSandbox(leads=3)
    assert (sb.latency_seconds, sb.latency_jitter_seconds) == (0.0, 0.0)
    sb.latency_seconds = 0.05
    with sb:
        started = time.monotonic()
        assert requests.get(f"{sb.instance_url}/services/data/", verify=sb.ca_file, timeout=10).status_code == 200
        assert time.monotonic() - started >= 0.05
    assert sb.calls["versions"] == 1 and sb.request_log == [("GET", "/services/data/", "versions", 200)]


def test_forced_failure_is_the_first_configured_id(hubspot: HubSpotSandbox) -> None:
    hubspot.fail_write_ids["102"] = ("VALIDATION_ERROR", "no")
    assert hubspot.forced_failure("101", "102") == ("VALIDATION_ERROR", "no")
    assert hubspot.forced_failure("101") is None


def test_the_5xx_switch_rolls_only_when_set(hubspot: HubSpotSandbox) -> None:
    assert not any(hubspot.is_failing_5xx() for _ in range(20))
    hubspot.error_rate_5xx = 1.0
    assert all(hubspot.is_failing_5xx() for _ in range(20))
