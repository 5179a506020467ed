"""Small readings of the common model: wait-cause words and CRM names."""

from __future__ import annotations

import pytest

from connector.core.errors import RateLimitedError
from connector.core.models import CRMS, WAIT_CAUSES, as_crm, wait_cause_words


@pytest.mark.parametrize(("cause", "words"), [*WAIT_CAUSES.items(), ("a_cause_from_a_newer_version", "a_cause_from_a_newer_version")])
def test_a_wait_cause_reads_as_its_words_and_an_unknown_one_as_itself(cause: str, words: str) -> None:
    assert wait_cause_words(cause) == words


@pytest.mark.parametrize(("name", "crm"), [*((c, c) for c in CRMS), ("pipedrive", None), ("HubSpot", None), ("", None)])
def test_as_crm_accepts_exactly_the_known_crm_names(name: str, crm: str | None) -> None:
    assert as_crm(name) == crm


def test_rate_limited_error_keeps_where_it_happened() -> None:
    exc = RateLimitedError("429", retry_after=2.5, crm="hubspot", endpoint="contacts.search", status=429)
    assert (exc.retry_after, exc.crm, exc.endpoint, exc.status) == (2.5, "hubspot", "contacts.search", 429)
