"""`connector forget` and event retention: a person's data is erased on request; old events are purged each sync."""

from __future__ import annotations

from datetime import timedelta

from connector.core.clock import SystemClock
from connector.core.models import Event
from connector.ops.forget import forget, parse_person

from .conftest import Ops


def _seed_person(ops: Ops, rid: str) -> tuple[str, str]:
    record = ops.hubspot.get_record("contacts", rid) or {}
    email = record["email"].lower()
    key = f"hubspot:contacts:{rid}"
    now = SystemClock().now()
    with ops.store() as store:
        store.add_events([
            Event(lead_key=email, name="Page Viewed", occurred_at=now - timedelta(days=1), properties={"url": "/pricing", "email": email}, event_id="e1"),
            Event(lead_key=key, name="Form Submitted", occurred_at=now - timedelta(days=2), event_id="e2"),
            Event(lead_key="someone.else@example.com", name="Page Viewed", occurred_at=now, event_id="e3"),
        ])
    return email, key


def test_forget_by_lead_reference_erases_events_decisions_and_dead_letters(ops_any_store: Ops) -> None:
    ops = ops_any_store
    rid = ops.ids()[3]
    email, key = _seed_person(ops, rid)
    ops.hubspot.fail_write_ids[rid] = ("VALIDATION_ERROR", f"Property values were not valid for {email}")
    ops.run("sync", "--once")
    with ops.store() as store:
        route = store.decisions_for(key)[0]
        assert route.score is not None and route.explanation

    result = ops.json("forget", f"hubspot:{rid}")
    assert result["lead_keys"] == [key]
    assert result["events"] == 1 and result["decisions"] == 1 and result["dead_letters"] == 1
    with ops.store() as store:
        assert store.events_for([key])[key] == []
        erased = store.decisions_for(key)[0]
        # The audit facts stay; the personal ones go.
        assert (erased.kind, erased.owner_id, erased.rep, erased.created_at) == (route.kind, route.owner_id, route.rep, route.created_at)
        assert erased.score is None and erased.grade is None and set(erased.explanation) == {"erased_at"}
        letter = store.list_dead_letters()[0]
        assert email not in letter.message and "[erased]" in letter.message
        assert set(letter.payload) == {"erased_at"}
        assert len(store.events_for([email])[email]) == 1  # keyed by email: needs `forget EMAIL`


def test_forget_by_email_and_the_function_for_privacy_webhooks(ops: Ops) -> None:
    rid = ops.ids()[3]
    email, key = _seed_person(ops, rid)
    text = ops.run("forget", email.upper(), "--offline").stdout
    assert text.startswith(f"erased personal data of {email}:") and "1 behaviour event(s) deleted" in text
    with ops.store() as store:
        assert store.events_for([email])[email] == []
        assert len(store.events_for(["someone.else@example.com"])["someone.else@example.com"]) == 1
        report = forget(store, lead_key=key, now=SystemClock().now())
        assert report.events == 1 and report.lead_keys == (key,)
        again = forget(store, email=email, lead_key=key, now=SystemClock().now())
        assert again.total == 0


def test_bad_person_references_are_usage_errors(ops: Ops) -> None:
    assert parse_person("Ada@Example.COM") == ("ada@example.com", None)
    assert parse_person("salesforce:00Q1") == (None, "salesforce:00Q1")
    assert "expected EMAIL, CRM:ID" in ops.run("forget", "pipedrive:12", code=2).stderr
    assert "not an email address" in ops.run("forget", "ada@", code=2).stderr


def test_sync_purges_events_older_than_the_retention(ops: Ops) -> None:
    now = SystemClock().now()
    with ops.store() as store:
        store.add_events([
            Event(lead_key="old@example.com", name="Page Viewed", occurred_at=now - timedelta(days=40), event_id="old"),
            Event(lead_key="new@example.com", name="Page Viewed", occurred_at=now - timedelta(days=5), event_id="new"),
        ])
    ops.env["CONNECTOR_PRIVACY__EVENT_RETENTION_DAYS"] = "30"
    ops.run("sync", "--once")
    with ops.store() as store:
        found = store.events_for(["old@example.com", "new@example.com"])
        assert found["old@example.com"] == [] and len(found["new@example.com"]) == 1
