"""Fault injection on the sandboxes: retries bounded and not multiplied, token expiry, lock-row errors, per-record
errors dead-lettered, the daily budget stopping cleanly, poll leases between replicas, and SQLite refusing a second process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from connector.adapters.base import WriteFence
from connector.adapters.hubspot.adapter import HubSpotAdapter
from connector.adapters.salesforce.adapter import SalesforceAdapter
from connector.cli import main
from connector.core.clock import FrozenClock
from connector.config import HubSpotSettings, SalesforceSettings, example_config_path, load_settings
from connector.core.errors import StoreLockedError, TransientError
from connector.runners.jobs import backfill, make_adapters, sync_once
from connector.runners.leases import Replica, poll_lease_name
from connector.core.models import Patch, WriteResult
from connector.state.ratelimit import guard_factory
from connector.sandbox.hubspot import HubSpotSandbox
from connector.sandbox.salesforce import SalesforceSandbox
from connector.state.store import Store

from .conftest import ROOT, ROUTING, hubspot_overrides

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def salesforce(clock: FrozenClock) -> Iterator[SalesforceSandbox]:
    with SalesforceSandbox(seed=3, leads=400, clock=clock) as sb:
        yield sb


def sf_overrides(store_url: str, sb: SalesforceSandbox) -> dict[str, Any]:
    return {
        "store": {"url": store_url},
        "salesforce": {"enabled": True, "login_url": sb.instance_url, "client_id": sb.client_id, "client_secret": sb.client_secret,
                       "ca_bundle": str(sb.ca_file), "lookback_seconds": 0},
        "routing": ROUTING,
        "logging": {"level": "ERROR"},
    }


def open_leads(sb: SalesforceSandbox) -> list[dict[str, Any]]:
    return [lead for lead in (sb.get_lead(i) for i in sb.lead_ids()) if lead and not lead["IsConverted"]]


# retries: one policy, bounded, never multiplied by the client libraries' own retries


def test_hubspot_under_100_percent_503_sends_exactly_max_attempts_requests_per_call(clock: FrozenClock) -> None:
    with HubSpotSandbox(seed=1, contacts=5, clock=clock) as sb:
        adapter = HubSpotAdapter(HubSpotSettings(enabled=True, base_url=sb.base_url, access_token=SecretStr(sb.token)),
                                 clock=clock, sleep=clock.sleep)
        sb.error_rate_5xx = 1.0
        with pytest.raises(TransientError):
            adapter.fetch_owners()
        with pytest.raises(TransientError):
            adapter.fetch_by_ids(["1"])
        # Counted at the server: urllib3's Retry(status=0) adds nothing to our 5 attempts per call.
        assert [path.rstrip("/") for _t, _m, path, _s in sb.request_log] == ["/crm/v3/owners"] * 5 + ["/crm/v3/objects/contacts/batch/read"] * 5
        assert len(clock.slept) == 8  # 4 jittered backoffs per call


def test_salesforce_under_100_percent_503_sends_exactly_max_attempts_requests_per_call(
    salesforce: SalesforceSandbox, clock: FrozenClock
) -> None:
    settings = SalesforceSettings(enabled=True, login_url=salesforce.instance_url, client_id=salesforce.client_id,
                                  client_secret=SecretStr(salesforce.client_secret), ca_bundle=salesforce.ca_file)
    adapter = SalesforceAdapter(settings, clock=clock, sleep=clock.sleep)
    adapter.fetch_owners()  # logged in
    salesforce.reset_calls()
    salesforce.error_rate_5xx = 1.0
    with pytest.raises(TransientError):
        adapter.fetch_by_ids(salesforce.lead_ids()[:3])
    # requests' HTTPAdapter has max_retries=0 here: 5 attempts are 5 requests, no more.
    assert [status for *_rest, status in salesforce.request_log] == [503] * 5


def test_a_write_that_may_have_landed_is_not_resent_blindly(salesforce: SalesforceSandbox, clock: FrozenClock) -> None:
    """After a 5xx the write may have been applied: one request per call, and the patches come back retryable."""
    with HubSpotSandbox(seed=1, contacts=3, clock=clock) as sb:
        adapter = HubSpotAdapter(HubSpotSettings(enabled=True, base_url=sb.base_url, access_token=SecretStr(sb.token)),
                                 clock=clock, sleep=clock.sleep)
        rid = sb.records_ids("contacts")[0]
        sb.error_rate_5xx = 1.0
        [result] = adapter.write([Patch("hubspot", "contacts", rid, {"score": 5})])
        assert (result.ok, result.retryable, result.error_code) == (False, True, "AMBIGUOUS_FAILURE")
        assert [p for _t, _m, p, _s in sb.request_log if "batch/update" in p] == ["/crm/v3/objects/contacts/batch/update"]
    settings = SalesforceSettings(enabled=True, login_url=salesforce.instance_url, client_id=salesforce.client_id,
                                  client_secret=SecretStr(salesforce.client_secret), ca_bundle=salesforce.ca_file)
    sf = SalesforceAdapter(settings, clock=clock, sleep=clock.sleep)
    lead_id = next(lead["Id"] for lead in open_leads(salesforce))
    assert sf.write([Patch("salesforce", "Lead", lead_id, {"score": 1})])[0].ok  # logged in, Lead described
    salesforce.reset_calls()
    salesforce.error_rate_5xx = 1.0
    [result] = sf.write([Patch("salesforce", "Lead", lead_id, {"score": 5})])
    assert (result.ok, result.retryable, result.error_code) == (False, True, "AMBIGUOUS_FAILURE")
    assert [status for *_rest, status in salesforce.request_log] == [503]


# Salesforce under 10 % 5xx, 5 % UNABLE_TO_LOCK_ROW and a token expiring every 30 s


def test_salesforce_sync_completes_every_lead_under_5xx_lock_rows_and_token_expiry(
    store_url: str, salesforce: SalesforceSandbox, clock: FrozenClock
) -> None:
    settings = load_settings(example_config_path(), sf_overrides(store_url, salesforce))
    salesforce.error_rate_5xx = 0.10
    salesforce.lock_row_rate = 0.05
    salesforce.token_ttl_seconds = 30
    with Store.open(store_url) as store:
        grades = tuple(band.name for band in settings.scoring.grades)
        adapters = {"salesforce": SalesforceAdapter(settings.salesforce, clock=clock, sleep=clock.sleep, grade_options=grades,
                                                    query_batch_size=200)}
        # Every page takes 30 s of (virtual) time: each one starts on an expired token.
        summary = sync_once(settings, store, adapters, clock, on_batch=lambda *_: clock.advance(30))
        letters = store.list_dead_letters(status=None)
        routes = Counter(d.lead_key for d in store.list_decisions(kinds=["route"]))
    assert summary.aborted is None and summary.pages >= 2
    assert not letters, [(d.record_id, d.code, d.message) for d in letters]
    score_field = settings.salesforce.score_field
    assert all(lead[score_field] is not None for lead in open_leads(salesforce))
    assert routes and max(routes.values()) == 1
    calls = Counter(label for _m, _p, label, _s in salesforce.request_log)
    statuses = Counter(status for *_rest, status in salesforce.request_log)
    assert statuses[401] >= summary.pages - 1 and statuses[503] > 0  # expired sessions renewed, 5xx retried
    # Bounded: each composite update of ≤ 200 records, plus at most 4 resends (lock rows, 5xx) per record batch.
    updates = summary.api_calls.get("salesforce.composite_update", 0) or sum(n for k, n in calls.items() if "update" in k)
    assert 0 < updates <= 5 * (len(open_leads(salesforce)) // 200 + 1) * 5


# per-record errors: dead-lettered with reasons, the rest of the batch written


class MidBatchChanges:
    """Wraps an adapter: just before the first write, people convert, merge, delete and deactivate in Salesforce."""

    def __init__(self, adapter: Any, sb: SalesforceSandbox) -> None:
        self._adapter = adapter
        self._sb = sb
        self.victims: dict[str, str] = {}
        self.inactive: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._adapter, name)

    def write(self, patches: Sequence[Patch], *, fence: WriteFence | None = None) -> list[WriteResult]:
        if not self.victims:
            owned = [p for p in patches if "owner_id" in p.changes]
            ids = [p.record_id for p in patches if p.record_id not in {q.record_id for q in owned[:1]}]
            converted, merged, deleted, picklist = ids[:4]
            self._sb.convert(converted)
            self._sb.merge(ids[5], merged)
            self._sb.delete(deleted)
            self._sb.fail_write_ids[picklist] = ("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "Rating: bad value for restricted picklist field: Tepid", ["Rating"])
            inactive = owned[0].changes["owner_id"]
            self._sb.deactivate_user(inactive)
            self.victims = {converted: "CANNOT_UPDATE_CONVERTED_LEAD", merged: "ENTITY_IS_DELETED", deleted: "ENTITY_IS_DELETED",
                            picklist: "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"}
            self.inactive = inactive
        # Every later write that gives a lead to the now-inactive user fails too (owners were read at the run's start).
        self.victims |= {p.record_id: "INACTIVE_OWNER_OR_USER" for p in patches
                         if p.changes.get("owner_id") == self.inactive and p.record_id not in self.victims}
        return self._adapter.write(patches, fence=fence)


def test_per_record_errors_are_dead_lettered_with_reasons_and_the_rest_is_written(
    store_url: str, salesforce: SalesforceSandbox, clock: FrozenClock
) -> None:
    settings = load_settings(example_config_path(), sf_overrides(store_url, salesforce))
    with Store.open(store_url) as store:
        adapter = MidBatchChanges(make_adapters(settings, clock=clock)["salesforce"], salesforce)
        summary = sync_once(settings, store, {"salesforce": adapter}, clock)
        letters = store.list_dead_letters(status=None, limit=1000)
    assert summary.aborted is None
    assert {d.record_id: d.code for d in letters} == adapter.victims
    assert all(d.message for d in letters)
    score_field = settings.salesforce.score_field
    rest = [lead for lead in open_leads(salesforce) if lead["Id"] not in adapter.victims and not lead["IsDeleted"]]
    assert rest and all(lead[score_field] is not None for lead in rest)
    assert summary.dead_lettered == len(adapter.victims)


# the daily budget stops writes cleanly and says when it resumes


def test_budget_exhausted_mid_run_stops_cleanly_names_the_resume_time_and_keeps_the_cursor(
    store_url: str, clock: FrozenClock
) -> None:
    with HubSpotSandbox(seed=5, contacts=600, companies=10, leads=0, clock=clock) as sb:
        # The account's own daily limit (its headers tell the guard); the connector may use half: 12 calls a day, which
        # stops the first day's run mid-stream and leaves the next day just room for the rest. Exact every time: under
        # OVERLAP_MIN_BUDGET calls left, start-up reads go one after another and no page is read ahead.
        sb.daily_limit = 24
        overrides = hubspot_overrides(store_url, sb.base_url, sb.token, daily_limit=24, daily_budget_share=0.5)
        settings = load_settings(example_config_path(), overrides)
        with Store.open(store_url) as store:
            adapters = make_adapters(settings, guard_for=guard_factory(store, settings, clock), clock=clock)
            first = backfill(settings, store, adapters, clock)
            routed_first = {d.lead_key for d in store.list_decisions(kinds=["route"])}
            assert first.aborted is not None and "daily API budget used up" in first.aborted
            assert "resumes at 2026-11-24T00:00:00+00:00" in first.aborted
            assert 0 < first.pages < 6 and store.get_cursor("hubspot", "contacts", "all") not in (None, "")
            assert sb.calls["contacts.batch_update"] <= first.pages + 1

            clock.advance(9 * 3600 + 60)  # past midnight UTC: a new budget day
            second = backfill(settings, store, adapters, clock)
            routes = Counter(d.lead_key for d in store.list_decisions(kinds=["route"]))
        assert second.aborted is None
        # The cursor had stopped after the last fully handled page: the rest was fetched again, nothing skipped.
        assert second.fetched == 600 - 100 * first.pages
        assert max(routes.values()) == 1 and routed_first <= set(routes)
        assert all((sb.get_record("contacts", rid) or {}).get("connector_lead_score") for rid in sb.records_ids("contacts"))


def test_cli_sync_exits_1_and_says_when_it_resumes_when_the_budget_is_used_up(tmp_path: Path) -> None:
    with HubSpotSandbox(seed=5, contacts=300, companies=10, leads=0) as sb:
        sb.daily_limit = 16
        env = {
            "CONNECTOR_STORE__URL": f"sqlite:///{tmp_path / 'state.db'}",
            "CONNECTOR_HUBSPOT__ENABLED": "true", "CONNECTOR_HUBSPOT__BASE_URL": sb.base_url,
            "CONNECTOR_HUBSPOT__ACCESS_TOKEN": sb.token, "CONNECTOR_HUBSPOT__SAFETY_LAG_SECONDS": "0",
            "CONNECTOR_HUBSPOT__DAILY_LIMIT": "16", "CONNECTOR_HUBSPOT__DAILY_BUDGET_SHARE": "0.5",
            "CONNECTOR_ROUTING__WHEN_UNAVAILABLE": "fallback", "CONNECTOR_LOGGING__LEVEL": "ERROR",
        }
        result = CliRunner(env=env).invoke(main, ["sync", "--once", "--json", "--config", str(example_config_path())])
    assert result.exit_code == 1, result.output
    summary = __import__("json").loads(result.stdout)
    assert "daily API budget used up" in summary["aborted"] and "resumes at" in summary["aborted"]


# replicas: one poller per CRM object (a lease in the store)


def test_leases_are_exclusive_renewable_and_expire(store_url: str) -> None:
    with Store.open(store_url) as store:
        assert store.acquire_lease("poll:x", "a", NOW, ttl_seconds=10)
        assert not store.acquire_lease("poll:x", "b", NOW + timedelta(seconds=9), ttl_seconds=10)
        assert store.acquire_lease("poll:x", "a", NOW + timedelta(seconds=9), ttl_seconds=10)  # renewed to 19 s
        assert not store.acquire_lease("poll:x", "b", NOW + timedelta(seconds=18), ttl_seconds=10)
        assert store.acquire_lease("poll:x", "b", NOW + timedelta(seconds=19), ttl_seconds=10)  # a stopped renewing
        lease = store.get_lease("poll:x")
        assert lease is not None and lease.holder == "b" and lease.acquired_at == NOW + timedelta(seconds=19)
        assert not store.release_lease("poll:x", "a") and store.release_lease("poll:x", "b")
        assert store.get_lease("poll:x") is None


def test_a_second_replica_skips_the_poll_another_holds_without_spending_api_calls(pg_store: str, clock: FrozenClock) -> None:
    with HubSpotSandbox(seed=9, contacts=150, companies=10, leads=0, clock=clock) as sb:
        settings = load_settings(example_config_path(), hubspot_overrides(pg_store, sb.base_url, sb.token))
        with Store.open(pg_store) as store:
            assert store.acquire_lease(poll_lease_name("hubspot", "contacts", "changed"), "other-replica", clock.now(), ttl_seconds=60)
            adapters = make_adapters(settings, clock=clock)
            skipped = sync_once(settings, store, adapters, clock, replica=Replica(worker="me"))
            assert skipped.held_elsewhere == ["hubspot contacts changed"] and skipped.fetched == 0
            assert sum(sb.calls.values()) == 0
            clock.advance(61)  # the other replica died: its lease ran out
            ran = sync_once(settings, store, adapters, clock, replica=Replica(worker="me"))
            assert ran.held_elsewhere == [] and ran.fetched == 150
            assert store.get_lease(poll_lease_name("hubspot", "contacts", "changed")) is None  # released when done


def test_a_second_process_on_the_same_sqlite_file_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    with HubSpotSandbox(seed=5, contacts=20, companies=5, leads=0) as sb, Store.open(url) as store:
        store.claim_process("connector serve", NOW)  # this test process plays the running `connector serve`
        with Store.open(url) as again:
            again.claim_process("connector sync", NOW)  # the same process: fine (serve's loops share it)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")} | {
            "CONNECTOR_STORE__URL": url, "CONNECTOR_HUBSPOT__ENABLED": "true", "CONNECTOR_HUBSPOT__BASE_URL": sb.base_url,
            "CONNECTOR_HUBSPOT__ACCESS_TOKEN": sb.token, "CONNECTOR_LOGGING__LEVEL": "ERROR",
        }
        proc = subprocess.run(
            [sys.executable, "-m", "connector.cli", "sync", "--once", "--config", str(example_config_path())],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )
        assert sum(sb.calls.values()) == 0  # refused before any API call
    assert proc.returncode == 1, proc.stderr
    assert f"is in use by pid {os.getpid()} (connector serve on" in proc.stderr
    assert "use PostgreSQL for several processes" in proc.stderr


def test_the_sqlite_lock_is_released_on_close_and_names_the_holder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from datetime import UTC, datetime; from connector.state.store import Store; "
         f"s = Store.open({url!r}); s.claim_process('connector serve', datetime.now(UTC)); print('held', flush=True); sys.stdin.read()"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with Store.open(url) as store, pytest.raises(StoreLockedError, match=rf"in use by pid {holder.pid} \(connector serve"):
            store.claim_process("connector sync", NOW)
    finally:
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.close()
        holder.wait(timeout=30)
        holder.stdout.close()
    with Store.open(url) as store:
        store.claim_process("connector sync", NOW)  # the holder exited: the kernel dropped its lock
