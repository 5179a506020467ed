"""The CDC subscriber end to end over real gRPC: route on create, echo suppression, restart, expired replay, gaps, reconnects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from connector.runners.cdc_subscriber import OBJECT, REPLAY_STREAM
from connector.sandbox.salesforce import SalesforceSandbox
from connector.state.store import Store
from tests.cdc_fixtures import REPS, cdc_settings, subscribed

CLIENT = "crm-lead-connector"
STORED_AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def rep_ids(sb: SalesforceSandbox) -> set[str]:
    return {u["Id"] for u in sb.users() if u["Email"] in REPS}


def person_lead(sb: SalesforceSandbox, n: int) -> str:
    return sb.create_lead({"FirstName": "Pat", "LastName": f"Person{n}", "Company": f"Walk-in {n} Ltd",
                           "Email": f"pat{n}@walkin{n}.example", "Country": "DE", "LeadSource": "Web"})


def own_writes(sb: SalesforceSandbox, lead_id: str) -> int:
    """How many times the connector wrote this lead (its writes come back as events with its client id)."""
    return sum(1 for e in sb.pubsub.published if lead_id in e.record_ids and e.change_origin.endswith(f"client={CLIENT}"))


def route_decisions(store: Store, lead_id: str) -> int:
    return sum(1 for d in store.decisions_for(f"salesforce:Lead:{lead_id}") if d.kind not in ("kept", "none", "wait"))


def test_person_created_lead_is_routed_within_seconds_and_the_echo_is_dropped(store_url: str, sandbox: SalesforceSandbox) -> None:
    settings = cdc_settings(store_url, sandbox)
    with subscribed(settings, sandbox) as run:
        sandbox.reset_calls()
        lead_id = person_lead(sandbox, 1)
        # The connector's own write comes back as an UPDATE event carrying its client id.
        run.wait(lambda p: p.echoes >= 1)
        lead = sandbox.get_lead(lead_id)
        assert lead is not None and lead["OwnerId"] in rep_ids(sandbox)
        assert lead[settings.salesforce.score_field] is not None and lead["Rating"] in ("Hot", "Warm", "Cold")
        assert sandbox.last_write_client(lead_id) == CLIENT
        # One re-read (the CREATE) and one write; the echo caused neither.
        assert sandbox.calls["collections_retrieve"] == 1
        assert sandbox.calls["collections_update"] == 1
        assert run.subscriber.progress.outcomes == {"create": 1, "echo": 1}
        registry = run.subscriber.metrics.registry
        assert registry.get_sample_value("connector_cdc_commit_to_write_seconds_count") == 1
        assert registry.get_sample_value("connector_cdc_commit_to_write_seconds_sum") < 2.0  # commit → written
        assert run.store.get_cursor("salesforce", OBJECT, REPLAY_STREAM)


def test_person_update_reroutes_nothing_but_rescores(store_url: str, sandbox: SalesforceSandbox) -> None:
    settings = cdc_settings(store_url, sandbox)
    with subscribed(settings, sandbox) as run:
        lead_id = person_lead(sandbox, 2)
        run.wait(lambda p: p.echoes >= 1)
        owner = sandbox.get_lead(lead_id)["OwnerId"]  # type: ignore[index]
        sandbox.person_update(lead_id, {"Title": "Chief Executive Officer", "NumberOfEmployees": 5000})
        run.wait(lambda p: p.outcomes.get("update", 0) >= 1 and p.batches >= 3)
        assert sandbox.get_lead(lead_id)["OwnerId"] == owner  # type: ignore[index]
        assert route_decisions(run.store, lead_id) == 1


@pytest.mark.parametrize("crash_before_storing", [False, True])
def test_restart_resumes_from_the_stored_replay_id(tmp_path: Any, sandbox: SalesforceSandbox, crash_before_storing: bool) -> None:
    settings = cdc_settings(f"sqlite:///{tmp_path / 'state.db'}", sandbox)
    early = person_lead(sandbox, 10)  # before any subscription (LATEST): the poll loop's business, not CDC's
    with subscribed(settings, sandbox) as run:
        first = [person_lead(sandbox, 11), person_lead(sandbox, 12)]
        run.wait(lambda p: p.echoes >= 2)
        stored = run.store.get_cursor("salesforce", OBJECT, REPLAY_STREAM)
    assert stored
    if crash_before_storing:
        # Killed after run_batch but before the replay id was stored: the store still holds an older
        # position, so every event of the first run is delivered again.
        before_first = next(e.replay for e in sandbox.pubsub.published if early in e.record_ids)
        with Store.open(settings.store.url) as store:
            store.set_cursor("salesforce", OBJECT, REPLAY_STREAM, before_first.to_bytes(8, "big").hex(), STORED_AT)
    while_down = [person_lead(sandbox, 13), person_lead(sandbox, 14)]
    with subscribed(settings, sandbox) as run:
        run.wait(lambda p: p.echoes >= (4 if crash_before_storing else 2))
        assert run.subscriber.progress.polls == 0  # resumed by replay, no fallback
        for lead_id in first + while_down:
            assert sandbox.get_lead(lead_id)["OwnerId"] in rep_ids(sandbox), lead_id  # type: ignore[index]
            assert own_writes(sandbox, lead_id) == 1, lead_id  # written once: nothing lost, nothing double-routed
            assert route_decisions(run.store, lead_id) == 1, lead_id


def test_expired_replay_id_falls_back_to_a_poll_then_latest(tmp_path: Any, sandbox: SalesforceSandbox) -> None:
    settings = cdc_settings(f"sqlite:///{tmp_path / 'state.db'}", sandbox)
    with subscribed(settings, sandbox) as run:
        person_lead(sandbox, 20)
        run.wait(lambda p: p.echoes >= 1)
    sandbox.retention_seconds = 0  # every stored event is now past retention
    missed = person_lead(sandbox, 21)
    with subscribed(settings, sandbox) as run:
        # Refused replay id → incremental poll (routes the lead created while down) → LATEST stream.
        run.wait(lambda p: p.polls >= 1 and p.subscriptions >= 2)
        assert run.subscriber.metrics.fallback_polls.labels("replay_invalid")._value.get() == 1
        assert sandbox.get_lead(missed)["OwnerId"] in rep_ids(sandbox)  # type: ignore[index]
        sandbox.retention_seconds = 72 * 3600
        fresh = person_lead(sandbox, 22)
        run.wait(lambda p: p.outcomes.get("create", 0) >= 1 and p.echoes >= 1)
        assert sandbox.get_lead(fresh)["OwnerId"] in rep_ids(sandbox)  # type: ignore[index]
        assert run.sleeps == []  # the fallback is not a failure: no backoff


def test_gap_event_refetches_its_records_and_overflow_polls(tmp_path: Any, sandbox: SalesforceSandbox) -> None:
    settings = cdc_settings(f"sqlite:///{tmp_path / 'state.db'}", sandbox)
    with subscribed(settings, sandbox) as run:
        ids = [i for i in sandbox.lead_ids() if not sandbox.get_lead(i)["IsConverted"]][:3]  # type: ignore[index]
        sandbox.reset_calls()
        sandbox.pubsub.emit_gap("GAP_UPDATE", ids)
        run.wait(lambda p: p.outcomes.get("gap", 0) >= 1 and p.routed_batches >= 1)
        assert sandbox.calls["collections_retrieve"] == 1  # one targeted re-read of the three ids
        assert sandbox.calls["queryAll"] == 0  # and no poll
        for lead_id in ids:
            assert sandbox.last_write_client(lead_id) == CLIENT, lead_id  # re-read, scored and written
        sandbox.pubsub.emit_gap("GAP_OVERFLOW", [])
        run.wait(lambda p: p.polls >= 1)
        assert sandbox.calls["queryAll"] >= 1
        assert run.subscriber.metrics.fallback_polls.labels("gap_overflow")._value.get() == 1


def test_dropped_stream_reconnects_with_backoff_and_loses_nothing(tmp_path: Any, sandbox: SalesforceSandbox) -> None:
    settings = cdc_settings(f"sqlite:///{tmp_path / 'state.db'}", sandbox)
    with subscribed(settings, sandbox) as run:
        person_lead(sandbox, 30)
        run.wait(lambda p: p.echoes >= 1)
        sandbox.expire_tokens()  # the reconnect must also get a new session
        sandbox.pubsub.drop_streams()
        during = person_lead(sandbox, 31)  # published while the subscriber is away: replayed on reconnect
        run.wait(lambda p: p.subscriptions >= 2 and p.echoes >= 2)
        assert run.sleeps and run.sleeps[0] > 0  # one backoff wait, through the given sleeper
        assert run.subscriber.metrics.reconnects.labels("transient")._value.get() >= 1
        assert sandbox.pubsub.calls["unauthenticated"] >= 1  # the old token was refused, a new one fetched
        assert sandbox.get_lead(during)["OwnerId"] in rep_ids(sandbox)  # type: ignore[index]
        assert own_writes(sandbox, during) == 1
