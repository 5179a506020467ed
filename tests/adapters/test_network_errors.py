"""A CRM that cannot be reached is named with its host and the cause, in words, not a library's class name."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import pytest
import requests
from pydantic import SecretStr

from connector.adapters.base import unreachable
from connector.adapters.hubspot.adapter import HubSpotAdapter
from connector.config import HubSpotSettings
from connector.core.clock import FrozenClock
from connector.core.errors import TransientError


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: connecting is refused


def test_hubspot_names_the_host_and_says_connection_refused(closed_port: int) -> None:
    clock = FrozenClock(datetime(2026, 12, 7, 15, tzinfo=UTC))
    settings = HubSpotSettings(enabled=True, base_url=f"http://127.0.0.1:{closed_port}", access_token=SecretStr("t"))
    adapter = HubSpotAdapter(settings, clock=clock, sleep=clock.sleep)
    with pytest.raises(TransientError) as info:
        adapter.fetch_owners()
    assert str(info.value) == f"hubspot owners.list: could not reach http://127.0.0.1:{closed_port}: connection refused"
    assert "MaxRetryError" not in str(info.value) and "Errno" not in str(info.value)


def test_requests_errors_read_the_same(closed_port: int) -> None:
    with pytest.raises(requests.ConnectionError) as info:
        requests.get(f"http://127.0.0.1:{closed_port}/services/data?token=secret", timeout=5)
    assert unreachable(info.value) == (f"http://127.0.0.1:{closed_port}", "connection refused")


def test_an_unknown_failure_still_says_no_answer() -> None:
    assert unreachable(OSError("boom")) == (None, "no answer (OSError)")
