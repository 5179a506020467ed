"""Salesforce adapter end to end against the loopback sandbox with the real simple-salesforce, plus normalize."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from connector.adapters.salesforce.adapter import SalesforceAdapter
from connector.adapters.salesforce.fields import parse_datetime, website_domain
from connector.core.clock import FrozenClock
from connector.config import SalesforceSettings
from connector.core.errors import AuthError, BudgetExhaustedError, ConfigError
from connector.core.models import Patch
from connector.sandbox.salesforce import SalesforceSandbox

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def sb(clock: FrozenClock) -> Iterator[SalesforceSandbox]:
    with SalesforceSandbox(seed=42, leads=200, clock=clock) as sandbox:
        yield sandbox


def make(sb: SalesforceSandbox, clock: FrozenClock, slept: list[float] | None = None, batch: int | None = None,
         max_attempts: int = 5, **kw: Any) -> SalesforceAdapter:
    base: dict[str, Any] = {"enabled": True, "login_url": sb.instance_url, "client_id": "sandbox-client",
                            "client_secret": SecretStr("sandbox-secret"), "ca_bundle": sb.ca_file}
    sleeps = slept if slept is not None else []
    return SalesforceAdapter(SalesforceSettings(**{**base, **kw}), clock=clock, sleep=sleeps.append, query_batch_size=batch,
                             max_attempts=max_attempts)


def open_ids(sb: SalesforceSandbox) -> list[str]:
    return [i for i in sb.lead_ids() if not sb.get_lead(i)["IsConverted"]]  # type: ignore[index]


def active_rep(sb: SalesforceSandbox) -> str:
    return next(u["Id"] for u in sb.users() if u["IsActive"] and u["Email"].endswith("example-corp.test"))


CUSTOM_FIELDS = {
    "budget": {"property": "Budget_Confirmed__c", "parse": "boolean"},
    "authority": {"property": "Decision_Maker__c", "parse": "boolean"},
    "need": {"property": "Need_Confirmed__c", "parse": "boolean"},
    "timeframe": {"property": "Timeframe_Confirmed__c", "parse": "boolean"},
    "product_interest": {"property": "Product_Interest__c", "parse": "multi"},
    "seniority": {"property": "Seniority__c", "parse": "value_map", "values": {"VP": "vp", "Director": "director"}},
}


def test_normalize_maps_lead_fields_to_the_common_model(sb: SalesforceSandbox, clock: FrozenClock) -> None:
    adapter = make(sb, clock, extra_fields={"seniority_raw": "Seniority__c"}, fields=CUSTOM_FIELDS)
    lead = adapter.normalize({
        "attributes": {"type": "Lead"}, "Id": "00QA", "Email": "aino@nordic.example", "FirstName": "Aino", "LastName": "Virtanen",
        "Company": "Nordic Oy", "Website": "https://www.Nordic.example/fi", "NumberOfEmployees": 250, "AnnualRevenue": 1200000.5,
        "Status": "Working - Contacted", "Rating": "Warm", "OwnerId": "00G000000000001AAA", "Connector_Score__c": 42,
        "IsConverted": True, "IsDeleted": False, "MasterRecordId": "00QB", "Product_Interest__c": "analytics;crm",
        "Budget_Confirmed__c": "Yes", "Decision_Maker__c": "No", "Need_Confirmed__c": None, "Seniority__c": "vp",
        "CreatedDate": "2024-01-02T03:04:05.678+0000", "SystemModstamp": "2024-03-01T12:00:00.000+0000", "LastActivityDate": "2024-02-01",
    })
    assert (lead.crm, lead.object_type, lead.key) == ("salesforce", "Lead", "salesforce:Lead:00QA")
    assert (lead.employees, lead.annual_revenue, lead.score) == (250, 1200000.5, 42.0)
    assert (lead.stage, lead.lead_status, lead.grade, lead.owner_id) == ("Working - Contacted", "Working - Contacted", "Warm", "00G000000000001AAA")
    assert (lead.is_converted, lead.merged_into, lead.company_domain) == (True, "00QB", "nordic.example")
    assert lead.product_interest == ("analytics", "crm") and (lead.budget, lead.authority, lead.need) == (True, False, None)
    assert lead.created_at == datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert lead.modified_at == datetime(2024, 3, 1, 12, tzinfo=UTC) and lead.last_activity_at == datetime(2024, 2, 1, tzinfo=UTC)
    assert lead.extra == {"seniority_raw": "vp"} and lead.seniority == "vp"


def test_last_activity_is_the_latest_of_last_activity_date_and_the_mapped_activity_fields(sb: SalesforceSandbox, clock: FrozenClock) -> None:
    adapter = make(sb, clock, activity_fields=["Last_Visit__c", "Last_Form__c"])
    lead = adapter.normalize({
        "attributes": {"type": "Lead"}, "Id": "00QC", "LastName": "Old", "Company": "Old Co", "LastActivityDate": "2023-01-05",
        "Last_Visit__c": "2024-05-30T09:00:00.000+0000", "Last_Form__c": "2022-01-01T00:00:00.000+0000",
    })
    assert lead.last_activity_at == datetime(2024, 5, 30, 9, tzinfo=UTC)


def test_normalize_leaves_bad_values_empty_and_counts_them(sb: SalesforceSandbox, clock: FrozenClock, caplog: pytest.LogCaptureFixture) -> None:
    adapter = make(sb, clock, fields=CUSTOM_FIELDS)
    lead = adapter.normalize({"Id": "00QA", "NumberOfEmployees": "lots", "Budget_Confirmed__c": "maybe", "CreatedDate": "yesterday"})
    assert (lead.employees, lead.budget, lead.created_at) == (None, None, None)
    assert "lots" not in caplog.text  # no line per lead (and no value in a log): the tallies are reported once a run
    tallies = adapter.parse_stats.tallies
    assert (tallies["employees"].unparsed, tallies["budget"].unparsed, tallies["created_at"].unparsed) == ({"lots": 1}, {"maybe": 1}, {"yesterday": 1})


@pytest.mark.parametrize(("raw", "expected"), [("2024-01-01T00:00:00.000+0000", datetime(2024, 1, 1, tzinfo=UTC)),
                                               ("2024-01-01T02:00:00.000+0200", datetime(2024, 1, 1, tzinfo=UTC)),
                                               ("2024-01-01", datetime(2024, 1, 1, tzinfo=UTC)), (None, None)])
def test_salesforce_datetimes_parse(raw: str | None, expected: datetime | None) -> None:
    assert parse_datetime(raw) == expected


@pytest.mark.parametrize(("website", "domain"), [("https://www.Acme.example/x", "acme.example"), ("acme.example", "acme.example"),
                                                 ("http://o'neil.example/", "o'neil.example"), ("", None), (None, None)])
def test_website_domain(website: str | None, domain: str | None) -> None:
    assert website_domain(website) == domain


def test_converted_lead_fails_alone_and_the_rest_of_the_batch_is_written(sb: SalesforceSandbox, clock: FrozenClock) -> None:
    ids = open_ids(sb)[:5]
    sb.convert(ids[2])
    results = make(sb, clock).write([Patch("salesforce", "Lead", i, {"score": 70, "grade": "hot"}) for i in ids])
    assert [r.ok for r in results] == [True, True, False, True, True]
    bad = results[2]
    assert (bad.record_id, bad.error_code, bad.retryable) == (ids[2], "CANNOT_UPDATE_CONVERTED_LEAD", False)
    assert [sb.get_lead(i)["Rating"] for i in ids if i != ids[2]] == ["Hot"] * 4  # type: ignore[index]
    assert sb.calls["collections_update"] == 1


def test_record_errors_carry_field_and_code(sb: SalesforceSandbox, clock: FrozenClock) -> None:
    a, b, c = open_ids(sb)[:3]
    hal = next(u["Id"] for u in sb.users() if not u["IsActive"])
    sb.fail_write_ids[c] = ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Score needs a source", ["Connector_Score__c"])
    results = make(sb, clock).write([Patch("salesforce", "Lead", a, {"owner_id": hal}), Patch("salesforce", "Lead", b, {"stage": "Nope"}),
                                     Patch("salesforce", "Lead", c, {"score": 5})])
    assert [(r.error_code, r.field, r.retryable) for r in results] == [
        ("INACTIVE_OWNER_OR_USER", None, False), ("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "Status", False),
        ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Connector_Score__c", False)]


def test_owner_is_written_with_assignment_rules_off(sb: SalesforceSandbox, clock: FrozenClock) -> None:
    rep = active_rep(sb)
    a, b = open_ids(sb)[:2]
    results = make(sb, clock).write([Patch("salesforce", "Lead", a, {"owner_id": rep})])
    assert results[0].ok and sb.get_lead(a)["OwnerId"] == rep  # type: ignore[index]
    assert sb.last_headers["sforce-auto-assign"] == "FALSE" and sb.last_write_client(a) == "crm-lead-connector"
    # Control: the same write without the header is re-routed by the org's assignment rule.
    token = requests.post(f"{sb.instance_url}/services/oauth2/token", verify=sb.ca_file, data={
        "grant_type": "client_credentials", "client_id": "sandbox-client", "client_secret": "sandbox-secret"}).json()["access_token"]
    requests.patch(f"{sb.instance_url}/services/data/v62.0/composite/sobjects", verify=sb.ca_file, headers={"Authorization": f"Bearer {token}"},
                   json={"allOrNone": False, "records": [{"attributes": {"type": "Lead"}, "id": b, "OwnerId": rep}]})
    assert sb.get_lead(b)["OwnerId"] == sb.default_queue_id  # type: ignore[index]


def test_450_patches_take_3_collections_calls(sb: SalesforceSandbox, clock: FrozenClock) -> None:
    for n in range(300):
        sb.create_lead({"LastName": f"Bulk{n}", "Company": "Bulk Co"})
    ids = open_ids(sb)[:450]
    assert len(ids) == 450
    results = make(sb, clock).write([Patch("salesforce", "Lead", i, {"score": 10}) for i in ids])
    assert [r.record_id for r in results] == ids and all(r.ok for r in results)
    assert sb.calls["collections_update"] == 3


def test_token_expiry_mid_sync_is_refreshed_once_and_the_sync_continues(sb: SalesforceSandbox, clock: FrozenClock) -> None:
    for n in range(400):
        sb.create_lead({"LastName": f"More{n}", "Company": "More Co"})
    adapter = make(sb, clock, batch=200)
    pages = adapter.fetch_changed(None)
    seen = [lead.id for lead in next(pages).leads]
    sb.expire_tokens()
    for page in pages:
        seen += [lead.id for lead in page.leads]
    assert sorted(seen) == sorted(open_ids(sb))
    assert sb.calls["token"] == 2
    assert [s for _, _, label, s in sb.request_log if label == "query_more"] == [401, 200, 200]
    sb.expire_tokens()
    assert adapter.write([Patch("salesforce", "Lead", seen[0], {"score": 3})])[0].ok
    assert sb.calls["token"] == 3


def test_a_revoked_static_token_is_an_auth_error_naming_it(sb: SalesforceSandbox, clock: FrozenClock) -> None:
    token = requests.post(f"{sb.instance_url}/services/oauth2/token", verify=sb.ca_file, data={
        "grant_type": "client_credentials", "client_id": "sandbox-client", "client_secret": "sandbox-secret"}).json()["access_token"]
    adapter = make(sb, clock, client_id=None, client_secret=None, access_token=SecretStr(token), instance_url=sb.instance_url)
    assert adapter.fetch_owners()
    sb.expire_tokens()
    with pytest.raises(AuthError, match="salesforce.access_token"):
        adapter.fetch_owners()


def test_request_limit_exceeded_stops_writing(sb: SalesforceSandbox, clock: FrozenClock) -> None:
    adapter = make(sb, clock)
    adapter.bootstrap()
    sb.daily_api_limit = sb.api_usage
    with pytest.raises(BudgetExhaustedError, match="REQUEST_LIMIT_EXCEEDED"):
        adapter.write([Patch("salesforce", "Lead", open_ids(sb)[0], {"score": 1})])
    assert [s for _, _, label, s in sb.request_log if label == "collections_update"] == [403]


def test_locked_rows_stay_retryable_after_max_attempts(sb: SalesforceSandbox, clock: FrozenClock) -> None:
    slept: list[float] = []
    sb.lock_row_rate = 1.0
    results = make(sb, clock, slept, max_attempts=3).write([Patch("salesforce", "Lead", open_ids(sb)[0], {"score": 1})])
    assert (results[0].ok, results[0].error_code, results[0].retryable) == (False, "UNABLE_TO_LOCK_ROW", True)
    assert len(slept) == 2 and sb.calls["collections_update"] == 3


def test_5xx_is_retried_until_it_clears(sb: SalesforceSandbox, clock: FrozenClock) -> None:
    slept: list[float] = []
    adapter = make(sb, clock, slept)
    adapter.bootstrap()
    sb.error_rate_5xx = 1.0
    with pytest.raises(Exception) as info:
        adapter.fetch_owners()
    assert type(info.value).__name__ == "TransientError" and len(slept) == 4


def test_soql_escaping_of_a_quote_and_a_backslash_through_the_sandbox(sb: SalesforceSandbox, clock: FrozenClock) -> None:
    sb.create_account({"Name": "Back Slash", "Website": "https://back\\slash.example"})
    rep = active_rep(sb)
    sb.create_contact({"LastName": "O'Neil", "Email": "pat.o'neil@o'neil.example", "OwnerId": rep})
    adapter = make(sb, clock)
    accounts = adapter.find_accounts(["o'neil.example", "back\\slash.example", "O'NEIL.example", "missing.example"])
    assert sorted(accounts) == ["back\\slash.example", "o'neil.example"]
    assert accounts["o'neil.example"].name == "Vandelay"
    assert adapter.find_contacts_by_email(["Pat.O'Neil@o'neil.example", "x\\'y@z.example"]) == {"pat.o'neil@o'neil.example": rep}


def test_find_accounts_reports_the_parent_owner(sb: SalesforceSandbox, clock: FrozenClock) -> None:
    parent = sb.create_account({"Name": "Parent", "Website": "parent.example", "OwnerId": active_rep(sb)})
    sb.create_account({"Name": "Child", "Website": "https://www.child.example/", "ParentId": parent})
    sb.create_account({"Name": "Not child", "Website": "notchild.example"})
    found = make(sb, clock).find_accounts(["child.example"])
    assert list(found) == ["child.example"]
    assert (found["child.example"].name, found["child.example"].parent_id, found["child.example"].parent_owner_id) == ("Child", parent, active_rep(sb))


def test_owners_are_users_and_queues(sb: SalesforceSandbox, clock: FrozenClock) -> None:
    owners = make(sb, clock).fetch_owners()
    by_email = {o.email: o for o in owners}
    assert by_email["hal.former@example-corp.test"].is_active is False
    queues = [o for o in owners if o.is_queue]
    assert len(queues) == 4 and all(o.id.startswith("00G") for o in queues)  # inbound, enterprise, EMEA, unassigned


def test_queue_owned_leads_keep_the_queue_id(sb: SalesforceSandbox, clock: FrozenClock) -> None:
    leads = [lead for page in make(sb, clock).fetch_changed(None) for lead in page.leads]
    assert any(lead.owner_id == sb.default_queue_id for lead in leads)


def test_ties_on_systemmodstamp_across_pages_lose_nothing(sb: SalesforceSandbox, clock: FrozenClock) -> None:
    tie = datetime(2025, 2, 1, tzinfo=UTC)
    ids = [sb.create_lead({"LastName": f"Tie{n}", "Company": "Tie Co"}) for n in range(500)]
    sb.set_stamp(ids, tie)
    adapter = make(sb, clock, batch=200, lookback_seconds=0, lead_filter="LastName LIKE 'Tie%'")
    pages = list(adapter.fetch_changed(None))
    assert [len(p.leads) for p in pages] == [200, 200, 100]
    assert sorted(lead.id for p in pages for lead in p.leads) == sorted(ids)
    # Resuming from a page boundary inside the tie returns exactly the rest.
    rest = [lead.id for p in adapter.fetch_changed(pages[0].cursor) for lead in p.leads]
    assert rest == [lead.id for p in pages[1:] for lead in p.leads]
    last = [lead.id for p in adapter.fetch_changed(pages[1].cursor) for lead in p.leads]
    assert last == [lead.id for lead in pages[2].leads]


def test_deletes_merges_and_late_commits_arrive_on_the_next_poll(sb: SalesforceSandbox, clock: FrozenClock) -> None:
    adapter = make(sb, clock, lookback_seconds=300)
    cursor = list(adapter.fetch_changed(None))[-1].cursor
    a, b, c, late = open_ids(sb)[:4]
    clock.advance(600)
    sb.delete(a)
    sb.merge(b, c)
    sb.set_stamp([late], clock.now() - timedelta(seconds=1000))  # older than the watermark: not seen yet
    pages = list(adapter.fetch_changed(cursor))
    assert [lead.id for p in pages for lead in p.leads] == [b]
    assert [d for p in pages for d in p.deleted_ids] == [a]
    assert {k: v for p in pages for k, v in p.merged.items()} == {c: b}
    # A late commit inside the lookback window is picked up by the next poll.
    cursor = pages[-1].cursor
    sb.set_stamp([late], clock.now() - timedelta(seconds=120))
    clock.advance(60)
    # (b, changed 60 s ago, is inside the lookback too: re-reads are expected, the diff makes them free.)
    assert sorted(lead.id for p in adapter.fetch_changed(cursor) for lead in p.leads) == sorted([b, late])


def test_backfill_is_resumable_from_any_page(sb: SalesforceSandbox, clock: FrozenClock) -> None:
    for n in range(250):
        sb.create_lead({"LastName": f"Back{n}", "Company": "Back Co"})
    adapter = make(sb, clock, batch=200)
    pages = list(adapter.fetch_all())
    assert [lead.id for p in pages for lead in p.leads] == sorted(open_ids(sb))
    resumed = [lead.id for p in adapter.fetch_all(pages[0].cursor) for lead in p.leads]
    assert resumed == [lead.id for p in pages[1:] for lead in p.leads]
    assert list(adapter.fetch_all(pages[-1].cursor)) == []


def test_fetch_by_ids_leaves_out_deleted_and_unknown_ids(sb: SalesforceSandbox, clock: FrozenClock) -> None:
    a, b = open_ids(sb)[:2]
    sb.delete(b)
    assert [lead.id for lead in make(sb, clock).fetch_by_ids([a, b, "00Q999999999999AAA"])] == [a]
    assert sb.calls["collections_retrieve"] == 1


def test_bootstrap_passes_on_the_seeded_org(sb: SalesforceSandbox, clock: FrozenClock) -> None:
    make(sb, clock).bootstrap()
    assert sb.calls["describe_lead"] == 1


def test_bootstrap_names_a_missing_score_field_and_says_to_create_it(sb: SalesforceSandbox, clock: FrozenClock) -> None:
    sb.drop_field("Connector_Score__c")
    with pytest.raises(ConfigError) as info:
        make(sb, clock).bootstrap()
    text = str(info.value)
    assert "salesforce.score_field" in text and "create a Number(5, 1) custom field" in text and "Connector_Score__c" in text


def test_bootstrap_lists_every_problem(sb: SalesforceSandbox, clock: FrozenClock) -> None:
    adapter = SalesforceAdapter(
        SalesforceSettings(enabled=True, login_url=sb.instance_url, client_id="sandbox-client", client_secret=SecretStr("sandbox-secret"),
                           ca_bundle=sb.ca_file, grade_field="Industry", status_order=["Open - Not Contacted", "Qualified"],
                           score_field="Email", extra_fields={"plan": "Plan__c"}, lead_filter="Nope__c = 1"),
        clock=clock, sleep=lambda s: None, grade_options=("a", "b"))
    with pytest.raises(ConfigError) as info:
        adapter.bootstrap()
    paths = {p.path for p in info.value.problems}
    assert paths == {"salesforce.score_field", "salesforce.grade_field", "salesforce.status_order[1]", "salesforce.extra_fields.plan",
                     "salesforce.lead_filter"}


def test_bad_client_secret_is_an_auth_error_naming_the_credential(sb: SalesforceSandbox, clock: FrozenClock) -> None:
    with pytest.raises(AuthError, match="salesforce.client_id / salesforce.client_secret") as info:
        make(sb, clock, client_secret=SecretStr("wrong")).bootstrap()
    assert "wrong" not in str(info.value)


def test_an_untrusted_certificate_names_ca_bundle(sb: SalesforceSandbox, clock: FrozenClock) -> None:
    with pytest.raises(ConfigError, match="salesforce.ca_bundle"):
        make(sb, clock, ca_bundle=None).bootstrap()


def test_password_grant_soap_login_and_jwt_reach_the_sandbox(sb: SalesforceSandbox, clock: FrozenClock, tmp_path: Path) -> None:
    oauth = make(sb, clock, username="admin@sandbox.test", password=SecretStr("pw"), security_token=SecretStr(sb.security_token))
    soap = make(sb, clock, client_id=None, client_secret=None, username="admin@sandbox.test", password=SecretStr("pw"),
                security_token=SecretStr(sb.security_token))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "jwt.key"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    sb.register_jwt_key(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
                        "jwt-app", "admin@sandbox.test")
    jwt_adapter = make(sb, clock, client_id="jwt-app", client_secret=None, username="admin@sandbox.test", private_key_file=str(key_file))
    for adapter in (oauth, soap, jwt_adapter):
        assert adapter.fetch_owners()
    assert (sb.calls["token"], sb.calls["soap_login"]) == (2, 1)
    sb.expire_tokens()
    assert jwt_adapter.fetch_owners() and sb.calls["token"] == 3  # a JWT session is re-minted, not refreshed
