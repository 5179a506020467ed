"""Small readings of the common model: wait-cause words, CRM names and a lead's key and email domain."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from connector.core.errors import RateLimitedError
from connector.core.models import CRMS, WAIT_CAUSES, Lead, as_crm, lead_field_types, wait_cause_words


@pytest.mark.parametrize(("cause", "words"), [*WAIT_CAUSES.items(), ("a_cause_from_a_newer_version", "a_cause_from_a_newer_version")])
def test_a_wait_cause_reads_as_its_words_and_an_unknown_one_as_itself(cause: str, words: str) -> None:
    assert wait_cause_words(cause) == words


@pytest.mark.parametrize(("name", "crm"), [*((c, c) for c in CRMS), ("pipedrive", None), ("HubSpot", None), ("", None)])
def test_as_crm_accepts_exactly_the_known_crm_names(name: str, crm: str | None) -> None:
    assert as_crm(name) == crm


def test_rate_limited_error_keeps_where_it_happened() -> None:
    exc = RateLimitedError("429", retry_after=2.5, crm="hubspot", endpoint="contacts.search", status=429)
    assert (exc.retry_after, exc.crm, exc.endpoint, exc.status) == (2.5, "hubspot", "contacts.search", 429)


def test_a_leads_key_and_email_domain_follow_its_fields_through_replace_copy_and_pickle() -> None:
    lead = Lead(crm="salesforce", object_type="Lead", id="00Q1", email=" Ann@Example.COM ")
    assert (lead.key, lead.email_domain) == ("salesforce:Lead:00Q1", "example.com")
    other = lead.replace(id="00Q2", email="ann")
    assert (other.key, other.email_domain) == ("salesforce:Lead:00Q2", None)
    for again in (pickle.loads(pickle.dumps(lead)), copy.copy(lead), copy.deepcopy(lead)):
        assert again == lead and (again.key, again.email_domain) == (lead.key, lead.email_domain)
    assert Lead(crm="hubspot", object_type="contacts", id="1").email_domain is None
    assert Lead(crm="hubspot", object_type="contacts", id="1", email="a@").email_domain is None


def test_the_kept_key_and_domain_are_not_lead_fields() -> None:
    lead = Lead(crm="hubspot", object_type="contacts", id="7", email="a@b.test")
    assert not {"key", "_key", "email_domain", "_domain"} & {f.name for f in dataclasses.fields(lead)}
    assert not {"_key", "_domain"} & set(dataclasses.asdict(lead))
    assert not {"_key", "_domain"} & set(lead_field_types())
    assert repr(lead).endswith("raw={})")  # repr lists the fields only
