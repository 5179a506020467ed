"""HubSpot adapter against the sandbox on loopback with the real hubspot-api-client, plus its pure pieces."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from connector.adapters.hubspot.adapter import HubSpotAdapter
from connector.adapters.hubspot.fields import format_value, parse_datetime
from connector.core.clock import FrozenClock
from connector.config import HubSpotSettings
from connector.core.errors import AuthError, BudgetExhaustedError, ConfigError, TransientError
from connector.core.models import FetchPage, Patch
from connector.sandbox.hubspot import HubSpotSandbox

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def settings(**kw: object) -> HubSpotSettings:
    base: dict[str, object] = {"enabled": True, "access_token": SecretStr("sandbox-token"), "base_url": "http://127.0.0.1:9/"}
    return HubSpotSettings(**{**base, **kw})  # type: ignore[arg-type]


def offline_adapter(**kw: object) -> HubSpotAdapter:
    return HubSpotAdapter(settings(**kw), clock=FrozenClock(NOW), sleep=lambda s: None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-05-01T10:20:30Z", datetime(2024, 5, 1, 10, 20, 30, tzinfo=UTC)),
        ("2024-05-01T10:20:30.123Z", datetime(2024, 5, 1, 10, 20, 30, 123000, tzinfo=UTC)),
        ("2024-05-01T12:20:30+02:00", datetime(2024, 5, 1, 10, 20, 30, tzinfo=UTC)),
        ("1572480000000", datetime(2019, 10, 31, tzinfo=UTC)),
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
    ],
)
def test_datetimes_parse_iso_with_and_without_fraction_and_epoch_ms(raw: str, expected: datetime) -> None:
    assert parse_datetime(raw) == expected


@pytest.mark.parametrize(("value", "text"), [(42.0, "42"), (41.5, "41.5"), (7, "7"), (None, ""), ("warm", "warm"), (True, "true")])
def test_values_are_written_as_hubspot_strings(value: object, text: str) -> None:
    assert format_value(value) == text


BANT_FIELDS = {
    "budget": {"property": "bant_budget", "parse": "boolean"},
    "authority": {"property": "bant_authority", "parse": "boolean"},
    "need": {"property": "bant_need", "parse": "boolean"},
    "timeframe": {"property": "bant_timeframe", "parse": "boolean"},
    "product_interest": {"property": "product_interest", "parse": "multi"},
}


def test_normalize_maps_contact_properties_to_the_common_model() -> None:
    adapter = offline_adapter(extra_properties={"plan": "plan_tier"}, fields=BANT_FIELDS)
    lead = adapter.normalize({
        "id": "101",
        "archived": False,
        "properties": {
            "firstname": "Aino", "lastname": "Virtanen", "email": "aino@nordic.example", "jobtitle": "CTO",
            "company": "Nordic Oy", "industry": "SOFTWARE", "numemployees": "250", "annualrevenue": "1200000.50",
            "country": "FI", "state": "Uusimaa", "city": "Helsinki", "zip": "00100", "hs_analytics_source": "ORGANIC_SEARCH",
            "product_interest": "analytics;crm", "bant_budget": "true", "bant_authority": "false", "bant_need": "",
            "lifecyclestage": "lead", "hs_lead_status": "NEW", "hubspot_owner_id": "7", "connector_lead_score": "42.5",
            "connector_lead_grade": "warm", "createdate": "2024-01-02T03:04:05.678Z", "lastmodifieddate": "1709294400000",
            "notes_last_updated": "2024-02-01T00:00:00Z", "hs_analytics_num_page_views": "12", "pricing_page_views": "3",
            "num_conversion_events": "2", "hs_email_open": "5", "hs_email_click": "1", "plan_tier": "pro",
        },
    })
    assert (lead.crm, lead.object_type, lead.id, lead.key) == ("hubspot", "contacts", "101", "hubspot:contacts:101")
    assert (lead.first_name, lead.last_name, lead.title, lead.company_name) == ("Aino", "Virtanen", "CTO", "Nordic Oy")
    assert (lead.employees, lead.annual_revenue) == (250, 1200000.5)
    assert (lead.country, lead.state, lead.city, lead.postal_code) == ("FI", "18", "Helsinki", "00100")
    assert lead.industry == "technology" and lead.raw["industry"] == "SOFTWARE" and lead.raw["state"] == "Uusimaa"
    assert lead.lead_source == "ORGANIC_SEARCH"
    assert lead.product_interest == ("analytics", "crm")
    assert (lead.budget, lead.authority, lead.need, lead.timeframe) == (True, False, None, None)
    assert (lead.stage, lead.lead_status, lead.owner_id, lead.score, lead.grade) == ("lead", "NEW", "7", 42.5, "warm")
    assert lead.created_at == datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert lead.modified_at == datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    assert lead.last_activity_at == datetime(2024, 2, 1, tzinfo=UTC)
    assert lead.engagement == {"page_views": 12, "pricing_page_views": 3, "form_submissions": 2, "email_opens": 5, "email_clicks": 1}
    assert lead.extra == {"plan": "pro"}
    assert lead.company_domain == "nordic.example"
    assert lead.is_archived is False


def test_last_activity_is_the_latest_engagement_timestamp_not_the_first_present() -> None:
    adapter = offline_adapter()
    lead = adapter.normalize({"id": "102", "properties": {
        "recent_conversion_date": "2023-01-05T00:00:00Z", "notes_last_updated": "2023-02-01T00:00:00Z",
        "hs_analytics_last_visit_timestamp": "2024-05-30T09:00:00Z", "hs_email_last_open_date": "1704067200000",
    }})
    assert lead.last_activity_at == datetime(2024, 5, 30, 9, tzinfo=UTC)
    requested = adapter.fields.record_properties()
    for prop in ("hs_analytics_last_visit_timestamp", "hs_email_last_open_date", "hs_email_last_click_date",
                 "recent_conversion_date", "hs_last_sales_activity_timestamp", "notes_last_updated"):
        assert prop in requested


def test_malformed_values_become_none_counted_not_logged_per_lead_and_never_fail_the_record(caplog: pytest.LogCaptureFixture) -> None:
    adapter = offline_adapter(fields=BANT_FIELDS)
    with caplog.at_level(logging.WARNING, logger="connector.adapters.hubspot"):
        leads = [adapter.normalize({"id": str(i), "properties": {
            "email": "x@y.example", "numemployees": "lots", "annualrevenue": "n/a", "bant_need": "maybe", "createdate": "yesterday",
            "hs_email_domain": "Y.Example",
        }}) for i in range(3)]
    lead = leads[0]
    assert (lead.employees, lead.annual_revenue, lead.need, lead.created_at) == (None, None, None, None)
    assert lead.email == "x@y.example" and lead.company_domain == "y.example"
    assert not caplog.records  # no line per lead: the run reports the tallies once
    tallies = adapter.parse_stats.tallies
    for name, value in (("employees", "lots"), ("annual_revenue", "n/a"), ("need", "maybe"), ("created_at", "yesterday")):
        assert tallies[name].unparsed == {value: 3} and tallies[name].parsed == 0
    assert tallies["budget"].empty == 3 and tallies["budget"].unparsed_count == 0
    assert adapter.parse_stats.summary()[:2] == ["annual_revenue: 3 of 3 values unparsed", "created_at: 3 of 3 values unparsed"]


def test_stage_comes_from_the_configured_property_for_leads() -> None:
    adapter = offline_adapter(object_type="leads")
    lead = adapter.normalize({"id": "9", "properties": {"hs_pipeline_stage": "connected", "lifecyclestage": "lead",
                                                        "hs_lastmodifieddate": "2025-01-01T00:00:00Z", "lastmodifieddate": "2020-01-01T00:00:00Z"}})
    assert (lead.object_type, lead.stage) == ("leads", "connected")
    assert lead.modified_at == datetime(2025, 1, 1, tzinfo=UTC)


def test_a_foreign_cursor_is_a_config_error_naming_the_stream() -> None:
    with pytest.raises(ConfigError, match="cursor.hubspot.fetch_changed"):
        list(offline_adapter().fetch_changed('{"v": 99}'))


def test_a_future_cursor_costs_no_call_and_returns_nothing() -> None:
    adapter = offline_adapter()
    future = json.dumps({"v": 1, "watermark_ms": int(NOW.timestamp() * 1000) + 60_000, "last_id": 0})
    assert list(adapter.fetch_changed(future)) == []
    assert adapter.calls.total == 0


def test_missing_token_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="hubspot.access_token"):
        HubSpotAdapter(HubSpotSettings(base_url="http://127.0.0.1:9"))


def test_empty_patches_cost_no_call() -> None:
    adapter = offline_adapter()
    results = adapter.write([Patch("hubspot", "contacts", "1", {}), Patch("hubspot", "contacts", "2", {})])
    assert [(r.record_id, r.ok) for r in results] == [("1", True), ("2", True)]
    assert adapter.calls.total == 0


class RecordingGuard:
    """A CallGuard that remembers what the adapter told it."""

    def __init__(self) -> None:
        self.before_calls: list[tuple[str, str]] = []
        self.after_calls: list[tuple[str, int, dict[str, str]]] = []

    def before(self, endpoint: str, kind: str) -> None:
        self.before_calls.append((endpoint, kind))

    def after(self, endpoint: str, status: int, headers: Mapping[str, str]) -> None:
        self.after_calls.append((endpoint, status, dict(headers)))


@pytest.fixture(scope="module")
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture(scope="module")
def sandbox(clock: FrozenClock) -> Iterator[HubSpotSandbox]:
    with HubSpotSandbox(seed=42, contacts=300, companies=60, clock=clock) as sb:
        HubSpotAdapter(settings(base_url=sb.base_url), clock=clock, sleep=clock.sleep).bootstrap()
        yield sb


@pytest.fixture
def sb(sandbox: HubSpotSandbox) -> Iterator[HubSpotSandbox]:
    """The module's sandbox with its fault knobs reset after each test."""
    yield sandbox
    sandbox.requests_per_10s = None
    sandbox.search_rate_per_second = None
    sandbox.fail_write_ids = {}
    sandbox.error_rate_5xx = 0.0
    sandbox.daily_limit = 1_000_000


def connect(sb: HubSpotSandbox, clock: FrozenClock, **kw: object) -> HubSpotAdapter:
    guard = kw.pop("guard", None)
    max_attempts = int(kw.pop("max_attempts", 5))  # type: ignore[call-overload]
    return HubSpotAdapter(settings(base_url=sb.base_url + "/", **kw), guard=guard, clock=clock, sleep=clock.sleep, max_attempts=max_attempts)  # type: ignore[arg-type]


def ids_of(pages: Sequence[FetchPage]) -> list[str]:
    return [lead.id for page in pages for lead in page.leads]


def epoch_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def test_incremental_fetch_returns_every_contact_once(sb: HubSpotSandbox, clock: FrozenClock) -> None:
    guard = RecordingGuard()
    adapter = connect(sb, clock, guard=guard)
    pages = list(adapter.fetch_changed(None))
    ids = ids_of(pages)
    assert sorted(ids, key=int) == sb.records_ids("contacts")
    assert len(ids) == len(set(ids))
    assert adapter.calls.snapshot() == {"contacts.search": 2}  # 300 contacts, 200 per search page
    assert {kind for _, kind in guard.before_calls} == {"search"}
    assert [status for _, status, _ in guard.after_calls] == [200, 200]
    final = json.loads(pages[-1].cursor or "")
    assert final == {"v": 1, "watermark_ms": epoch_ms(NOW) - 300_000, "last_id": 0}


def test_no_record_lost_when_500_share_one_timestamp_across_pages(clock: FrozenClock) -> None:
    with HubSpotSandbox(seed=7, contacts=520, companies=5, clock=clock) as sb:
        stamp = epoch_ms(NOW) - 3_600_000
        sb.set_all_modified(stamp)
        adapter = connect(sb, clock, search_page_size=200)
        # Resume from every page's cursor as a restarted process would: one page per "run".
        seen: list[str] = []
        cursor: str | None = json.dumps({"v": 1, "watermark_ms": stamp, "last_id": 0})
        scans = 0
        while True:
            page = next(iter(adapter.fetch_changed(cursor)))
            seen += [lead.id for lead in page.leads]
            if scans == 1:
                # A person edits a record we already passed, mid-scan: the next scan must catch it.
                sb.person_update("contacts", seen[0], {"jobtitle": "VP of Sales"})
            scans += 1
            cursor = page.cursor
            if json.loads(cursor or "")["last_id"] == 0:
                break
        assert sorted(seen, key=int) == sb.records_ids("contacts")
        assert len(seen) == len(set(seen)) == 520
        assert adapter.calls.snapshot() == {"contacts.search": 3}
        again = ids_of(list(adapter.fetch_changed(cursor)))
        assert again == [seen[0]]


def test_more_than_10000_records_with_one_timestamp_never_hit_the_search_cap(clock: FrozenClock) -> None:
    with HubSpotSandbox(seed=3, contacts=10_300, companies=5, leads=0, clock=clock) as sb:
        sb.set_all_modified(epoch_ms(NOW) - 3_600_000)
        adapter = connect(sb, clock)
        ids = ids_of(list(adapter.fetch_changed(None)))
        assert len(ids) == len(set(ids)) == 10_300
        assert adapter.calls.snapshot() == {"contacts.search": 52}


def test_future_cursor_returns_nothing_without_a_call(sb: HubSpotSandbox, clock: FrozenClock) -> None:
    adapter = connect(sb, clock)
    future = json.dumps({"v": 1, "watermark_ms": epoch_ms(NOW) + 3_600_000, "last_id": 0})
    assert list(adapter.fetch_changed(future)) == []
    assert adapter.calls.total == 0


def test_full_fetch_pages_by_100_and_resumes_from_a_page_cursor(sb: HubSpotSandbox, clock: FrozenClock) -> None:
    adapter = connect(sb, clock)
    pages = list(adapter.fetch_all())
    live = sb.records_ids("contacts")
    assert sorted(ids_of(pages), key=int) == live
    assert adapter.calls.snapshot() == {"contacts.list": -(-len(live) // 100)}
    assert json.loads(pages[-1].cursor or "") == {"v": 1, "done": True}
    resumed = list(adapter.fetch_all(pages[0].cursor))
    assert ids_of(resumed) == ids_of(pages[1:])
    assert list(adapter.fetch_all(pages[-1].cursor)) == []


def test_leads_are_normalized_from_the_sandbox(sb: HubSpotSandbox, clock: FrozenClock) -> None:
    leads = next(iter(connect(sb, clock).fetch_all())).leads
    assert all(lead.email and lead.created_at and lead.modified_at for lead in leads)
    assert any(lead.owner_id for lead in leads) and any(lead.employees for lead in leads)


def test_partial_failure_fails_only_the_failed_records(sb: HubSpotSandbox, clock: FrozenClock) -> None:
    ids = sb.records_ids("contacts")[:4]
    sb.fail_write_ids = {ids[1]: ("VALIDATION_ERROR", "Property values were not valid")}
    adapter = connect(sb, clock)
    patches = [Patch("hubspot", "contacts", i, {"score": 12.5, "grade": "warm"}) for i in ids]
    patches.append(Patch("hubspot", "contacts", ids[2], {"grade": "nonsense"}))  # invalid option, same id again
    patches.append(Patch("hubspot", "contacts", "99999999", {"score": 1.0}))  # does not exist
    results = adapter.write(patches)
    assert [r.record_id for r in results] == [p.record_id for p in patches]
    assert [r.ok for r in results] == [True, False, True, True, False, False]
    assert (results[1].error_code, results[1].retryable) == ("VALIDATION_ERROR", False)
    assert (results[4].error_code, results[4].field, results[4].retryable) == ("VALIDATION_ERROR", "grade", False)
    assert (results[5].error_code, results[5].retryable) == ("OBJECT_NOT_FOUND", False)
    assert sb.get_record("contacts", ids[0])["connector_lead_score"] == "12.5"  # type: ignore[index]
    assert sb.get_record("contacts", ids[2])["connector_lead_grade"] == "warm"  # type: ignore[index]
    # The repeated id goes into a second batch: HubSpot refuses duplicate ids in one batch.
    assert adapter.calls.snapshot() == {"contacts.batch_update": 2}


def test_write_of_250_patches_takes_3_batch_calls(sb: HubSpotSandbox, clock: FrozenClock) -> None:
    guard = RecordingGuard()
    adapter = connect(sb, clock, guard=guard)
    ids = sb.records_ids("contacts")[:250]
    owner = next(o["id"] for o in sb.owners() if not o["archived"] and o["type"] == "PERSON")
    results = adapter.write([Patch("hubspot", "contacts", i, {"owner_id": owner, "grade": "hot", "score": 88.0, "lead_status": "OPEN"}) for i in ids])
    assert all(r.ok for r in results) and len(results) == 250
    assert adapter.calls.snapshot() == {"contacts.batch_update": 3}
    assert {kind for _, kind in guard.before_calls} == {"write"}
    record = sb.get_record("contacts", ids[-1]) or {}
    assert (record["hubspot_owner_id"], record["connector_lead_grade"], record["connector_lead_score"], record["hs_lead_status"]) == (owner, "hot", "88", "OPEN")
    # Usage headers reach the guard (the shared limiter corrects itself from them).
    assert all("x-hubspot-ratelimit-daily-remaining" in headers for _, _, headers in guard.after_calls)


def test_owners_flag_archived_and_queues(sb: HubSpotSandbox, clock: FrozenClock) -> None:
    active = [o["id"] for o in sb.owners() if not o["archived"] and o["type"] == "PERSON"]
    sb.deactivate_owner(active[-1])
    adapter = connect(sb, clock)
    owners = {o.id: o for o in adapter.fetch_owners()}
    assert set(owners) == {o["id"] for o in sb.owners()}
    assert owners[active[-1]].is_active is False
    assert all(owners[i].is_active for i in active[:-1])
    assert [o.id for o in owners.values() if o.is_queue] == ["70000100", "70000101"]  # the inbound and EMEA queues
    assert adapter.calls.snapshot() == {"owners.list": 2}  # archived=false, archived=true


def test_bootstrap_creates_the_properties_once(clock: FrozenClock) -> None:
    with HubSpotSandbox(seed=1, contacts=5, companies=2, clock=clock) as sb:
        with pytest.raises(ConfigError) as info:
            connect(sb, clock, create_properties=False).bootstrap()
        assert "hubspot.score_property" in str(info.value) and "hubspot.grade_property" in str(info.value)

        first = connect(sb, clock)
        first.bootstrap()
        assert first.calls.snapshot() == {"properties.create": 2, "properties.list": 1}
        assert {"connector_lead_score", "connector_lead_grade"} <= set(sb.property_names("contacts"))

        second = connect(sb, clock)
        second.bootstrap()
        assert second.calls.snapshot() == {"properties.list": 1}

        with pytest.raises(ConfigError, match=r"hubspot\.stage_order"):
            connect(sb, clock, stage_order=["lead", "hot_prospect"]).bootstrap()
        with pytest.raises(ConfigError, match=r"hubspot\.score_property"):
            connect(sb, clock, score_property="email").bootstrap()  # exists, but is a string


def test_429_is_retried_honouring_retry_after(sb: HubSpotSandbox, clock: FrozenClock) -> None:
    clock.advance(10)  # earlier tests' requests leave the sandbox's 10-second window
    sb.requests_per_10s = 2
    guard = RecordingGuard()
    adapter = connect(sb, clock, guard=guard)
    slept_before = len(clock.slept)
    ids = sb.records_ids("contacts")[:3]
    for record_id in ids:
        assert [lead.id for lead in adapter.fetch_by_ids([record_id])] == [record_id]
    assert clock.slept[slept_before:] == [10.0]  # the sandbox's Retry-After for a full 10 s window
    assert adapter.calls.snapshot() == {"contacts.batch_read": 4}
    assert [status for _, status, _ in guard.after_calls] == [200, 200, 429, 200]


def test_daily_limit_429_stops_without_retrying(sb: HubSpotSandbox, clock: FrozenClock) -> None:
    sb.daily_limit = 0
    adapter = connect(sb, clock)
    with pytest.raises(BudgetExhaustedError, match="daily"):
        adapter.fetch_owners()
    assert adapter.calls.total == 1


def test_5xx_is_retried_then_surfaces_as_transient(sb: HubSpotSandbox, clock: FrozenClock) -> None:
    sb.error_rate_5xx = 1.0
    adapter = connect(sb, clock, max_attempts=3)
    slept_before = len(clock.slept)
    with pytest.raises(TransientError) as info:
        adapter.fetch_owners()
    assert info.value.status in (502, 503)
    assert adapter.calls.total == 3 and len(clock.slept) - slept_before == 2


def test_401_names_the_access_token_and_never_retries(sb: HubSpotSandbox, clock: FrozenClock) -> None:
    adapter = HubSpotAdapter(settings(base_url=sb.base_url, access_token=SecretStr("wrong-secret-token")), clock=clock, sleep=clock.sleep)
    with pytest.raises(AuthError) as info:
        list(adapter.fetch_changed(None))
    assert info.value.credential == "hubspot.access_token"
    assert "hubspot.access_token" in str(info.value) and "wrong-secret-token" not in str(info.value)
    assert adapter.calls.total == 1


def test_network_failure_is_transient(clock: FrozenClock) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    adapter = HubSpotAdapter(settings(base_url=f"http://127.0.0.1:{port}"), clock=clock, sleep=clock.sleep, max_attempts=2)
    with pytest.raises(TransientError, match="could not reach http://127.0.0.1:[0-9]+: connection refused"):
        adapter.fetch_owners()
    assert adapter.calls.total == 2


def test_archived_records_are_swept_and_merges_redirect(clock: FrozenClock) -> None:
    with HubSpotSandbox(seed=5, contacts=30, companies=3, clock=clock) as sb:
        adapter = connect(sb, clock)
        ids = sb.records_ids("contacts")
        sb.archive("contacts", ids[0])
        clock.advance(3_600)
        pages = list(adapter.fetch_archived(None))
        assert [i for p in pages for i in p.deleted_ids] == [ids[0]]
        assert adapter.calls.snapshot() == {"contacts.list_archived": 1}

        sb.archive("contacts", ids[1])
        clock.advance(3_600)
        later = list(adapter.fetch_archived(pages[-1].cursor))
        assert [i for p in later for i in p.deleted_ids] == [ids[1]]  # only what was archived since the last sweep

        changed_cursor = list(adapter.fetch_changed(None))[-1].cursor
        clock.advance(3_600)
        sb.merge("contacts", ids[2], ids[3])
        pages = list(adapter.fetch_changed(changed_cursor))
        assert ids_of(pages) == [ids[2]]
        assert dict(pages[0].merged) == {ids[3]: ids[2]}
        by_id = {lead.id: lead for lead in adapter.fetch_by_ids([ids[3], ids[4], "99999999"])}
        assert by_id[ids[3]].merged_into == ids[2] and by_id[ids[2]].merged_into is None
        assert ids[4] in by_id and "99999999" not in by_id


def test_find_accounts_with_parent_owner(sb: HubSpotSandbox, clock: FrozenClock) -> None:
    companies = {i: sb.get_record("companies", i) or {} for i in sb.records_ids("companies")}
    child_id, child = next((i, c) for i, c in companies.items() if c.get("hs_parent_company_id") and companies[c["hs_parent_company_id"]].get("hubspot_owner_id"))
    parent = companies[child["hs_parent_company_id"]]
    adapter = connect(sb, clock)
    accounts = adapter.find_accounts([child["domain"].upper(), "nobody.example"])
    account = accounts[child["domain"]]
    assert (account.id, account.parent_id, account.parent_owner_id) == (child_id, child["hs_parent_company_id"], parent["hubspot_owner_id"])
    assert account.owner_id == (child.get("hubspot_owner_id") or None)
    assert "nobody.example" not in accounts
    assert adapter.calls.snapshot() == {"companies.batch_read": 1, "companies.search": 1}


def test_find_contacts_by_email_maps_owned_contacts(sb: HubSpotSandbox, clock: FrozenClock) -> None:
    owned = [r for r in (sb.get_record("contacts", i) or {} for i in sb.records_ids("contacts")) if r.get("hubspot_owner_id")][:3]
    adapter = connect(sb, clock)
    found = adapter.find_contacts_by_email([r["email"].upper() for r in owned] + ["nobody@nowhere.example"])
    assert found == {r["email"].lower(): r["hubspot_owner_id"] for r in owned}
    assert adapter.calls.snapshot() == {"contacts.search": 1}


def test_leads_object_merges_its_contact(sb: HubSpotSandbox, clock: FrozenClock) -> None:
    adapter = connect(sb, clock, object_type="leads")
    pages = list(adapter.fetch_changed(None))
    leads = [lead for page in pages for lead in page.leads]
    assert len(leads) == len(sb.records_ids("leads"))
    first = leads[0]
    contact_id = sb.associated_ids("leads", first.id, "contacts")[0]
    contact = sb.get_record("contacts", contact_id) or {}
    assert (first.object_type, first.email, first.stage) == ("leads", contact["email"], (sb.get_record("leads", first.id) or {})["hs_pipeline_stage"])
    calls = adapter.calls.snapshot()
    assert calls["leads.search"] == 1 and calls["associations.batch_read"] == 1 and calls["contacts.batch_read"] == 1


def test_full_fetch_moves_properties_out_of_an_overlong_url(sb: HubSpotSandbox, clock: FrozenClock) -> None:
    # 80 extra properties push the `properties=` list past the URL budget
    # [crm-behaviour: Pitfall: too many properties in a GET URL]: the page is
    # re-read by id with the properties in a POST body instead.
    extra = {f"alias_{i}": f"custom_property_number_{i:03d}" for i in range(80)}
    adapter = connect(sb, clock, extra_properties=extra)
    page = next(iter(adapter.fetch_all()))
    assert len(page.leads) == 100 and all(lead.email for lead in page.leads)
    assert set(page.leads[0].extra) == set(extra)
    assert adapter.calls.snapshot() == {"contacts.batch_read": 1, "contacts.list": 1}
