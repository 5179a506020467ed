"""`connector forget EMAIL` finds the person's leads in the CRM by email, so data keyed by their lead keys is erased too."""

from __future__ import annotations

from datetime import timedelta

from connector.core.clock import SystemClock
from connector.core.models import Event

from .conftest import Ops


def test_forget_email_reaches_leads_the_store_only_knows_by_key(ops: Ops) -> None:
    synced, unseen = ops.ids()[2], ops.ids()[5]
    ops.run("sync", "--once")
    # A contact created after the sync: the store holds only events keyed by its lead key, nothing maps its email to it.
    late = ops.hubspot.create_contact({"email": "Robin.Late@Fabrikam-Late.example", "firstname": "Robin", "lastname": "Late"})
    now = SystemClock().now()
    emails = {rid: (ops.hubspot.get_record("contacts", rid) or {})["email"].lower() for rid in (synced, unseen, late)}
    with ops.store() as store:
        store.add_events([
            Event(lead_key=f"hubspot:contacts:{late}", name="Page Viewed", occurred_at=now - timedelta(hours=1), event_id="late-1"),
            Event(lead_key=f"hubspot:contacts:{synced}", name="Page Viewed", occurred_at=now - timedelta(hours=1), event_id="synced-1"),
            Event(lead_key=f"hubspot:contacts:{unseen}", name="Page Viewed", occurred_at=now - timedelta(hours=1), event_id="other-1"),
        ])
        assert store.decisions_for(f"hubspot:contacts:{synced}")

    late_report = ops.json("forget", emails[late].upper())
    assert late_report["email"] == emails[late]
    assert late_report["lead_keys"] == [f"hubspot:contacts:{late}"] and late_report["events"] == 1

    text = ops.run("forget", emails[synced]).stdout
    assert text.startswith(f"erased personal data of {emails[synced]}, hubspot:contacts:{synced}:")
    assert "1 behaviour event(s) deleted" in text and "1 decision(s) stripped" in text
    with ops.store() as store:
        assert store.events_for([f"hubspot:contacts:{synced}"])[f"hubspot:contacts:{synced}"] == []
        assert all(d.score is None and set(d.explanation) == {"erased_at"} for d in store.decisions_for(f"hubspot:contacts:{synced}"))
        assert len(store.events_for([f"hubspot:contacts:{unseen}"])[f"hubspot:contacts:{unseen}"]) == 1  # someone else's


def test_forget_email_offline_asks_no_crm(ops: Ops) -> None:
    rid = ops.ids()[4]
    email = (ops.hubspot.get_record("contacts", rid) or {})["email"].lower()
    before = ops.hubspot.calls["contacts.search"]
    result = ops.json("forget", email, "--offline")
    assert result["lead_keys"] == [] and ops.hubspot.calls["contacts.search"] == before
    online = ops.json("forget", email)
    assert online["lead_keys"] == [f"hubspot:contacts:{rid}"] and ops.hubspot.calls["contacts.search"] == before + 1
