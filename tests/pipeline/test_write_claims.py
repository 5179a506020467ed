"""A write that outlives its outbox claim (it waited for the rate limiter) never overwrites a person's edit.

The CI failure of tests/faults/test_replicas.py: replica A claimed a lead's owner write and waited in the
shared limiter past its lease; replica B reclaimed the row, re-read the still unowned lead and wrote the
owner; a person then changed the owner; A's request finally left and put the connector's owner back.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connector.adapters.base import NoGuard
from connector.adapters.hubspot.adapter import HubSpotAdapter
from connector.core.clock import FrozenClock
from connector.core.models import Patch
from connector.pipeline.stages import write
from connector.sandbox.hubspot import HubSpotSandbox
from connector.state.store import Store

from .conftest import settings_for

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
LEASE = 2.0
OWNER = "hubspot_owner_id"


class SlowLimiter(NoGuard):
    """A guard whose first write permit takes long: meanwhile `meanwhile` runs (another replica, a person)."""

    def __init__(self) -> None:
        self.meanwhile: list[Any] = []

    def before(self, endpoint: str, kind: str) -> None:
        while kind == "write" and self.meanwhile:
            self.meanwhile.pop(0)()


@pytest.fixture
def sandbox() -> Iterator[HubSpotSandbox]:
    with HubSpotSandbox(seed=3, contacts=5, companies=1, leads=0) as sb:
        yield sb


def test_a_write_that_waited_past_its_claim_is_not_sent_over_a_persons_edit(store_url: str, sandbox: HubSpotSandbox) -> None:
    settings = settings_for(store_url, sandbox).hubspot
    rid = next(r for r in sandbox.records_ids("contacts") if not (sandbox.get_record("contacts", r) or {}).get(OWNER))
    owners = [o["id"] for o in sandbox.owners() if not o["archived"]]
    ours, persons = owners[0], owners[1]
    guard = SlowLimiter()
    # A's clock reads the time its request leaves: after B's whole flush, past A's lease.
    slow = HubSpotAdapter(settings, guard=guard, clock=FrozenClock(NOW + timedelta(seconds=4)))
    other = HubSpotAdapter(settings, clock=FrozenClock(NOW + timedelta(seconds=3)))
    with Store.open(store_url) as store:
        store.enqueue([Patch("hubspot", "contacts", rid, changes={"owner_id": ours}, current={"owner_id": None})], NOW)
        guard.meanwhile = [
            # A's lease ran out while it waited: B reclaims the row, re-reads the unowned lead, writes the owner.
            lambda: write(store, other, NOW + timedelta(seconds=3), worker="b", lease_seconds=LEASE),
            # A person sees the new owner and gives the lead to someone else.
            lambda: sandbox.person_update("contacts", rid, {OWNER: persons}),
        ]
        results = write(store, slow, NOW, worker="a", lease_seconds=LEASE)
        pending = store.count_pending_outbox()

    changes = [(c.source, c.properties[OWNER]) for c in sandbox.change_log if c.record_id == rid and OWNER in c.properties]
    assert changes == [("INTEGRATION", ours), ("CRM_UI", persons)], changes
    assert (sandbox.get_record("contacts", rid) or {}).get(OWNER) == persons
    assert results == [] and not pending  # B finished the row; A neither sent nor recorded it
