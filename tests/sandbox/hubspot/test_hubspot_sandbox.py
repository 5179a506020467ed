"""The HubSpot sandbox driven by the real hubspot-api-client 12: paths, shapes, limits and per-record errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import hubspot
import pytest
import urllib3
from hubspot.crm.associations.v4.models import BatchInputPublicFetchAssociationsBatchRequest
from hubspot.crm.contacts import ApiException as ContactsApiException
from hubspot.crm.contacts.exceptions import NotFoundException, ServiceException, UnauthorizedException
from hubspot.crm.contacts.models import (
    BatchInputSimplePublicObjectBatchInput,
    BatchReadInputSimplePublicObjectId,
    BatchResponseSimplePublicObject,
    BatchResponseSimplePublicObjectWithErrors,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInput,
)
from hubspot.crm.properties import ApiException as PropertiesApiException
from hubspot.crm.properties.models import OptionInput, PropertyCreate

from connector.core.clock import FrozenClock
from connector.sandbox.hubspot import HubSpotSandbox

START = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
START_MS = int(START.timestamp() * 1000)


def client_for(sb: HubSpotSandbox, token: str | None = None) -> Any:
    # Retry(0): urllib3 would otherwise sleep on and retry GET 429s that carry Retry-After
    # [crm-behaviour: hubspot-api-client: host and retries].
    return hubspot.Client.create(access_token=token or sb.token, host=sb.base_url, retry=urllib3.Retry(0))


@pytest.fixture(scope="module")
def shared() -> Iterator[HubSpotSandbox]:
    """Read-only tests share one sandbox; tests that change data use `fresh`."""
    with HubSpotSandbox(seed=42, contacts=300, clock=FrozenClock(START)) as sb:
        yield sb


@pytest.fixture
def fresh() -> Iterator[tuple[HubSpotSandbox, FrozenClock]]:
    clock = FrozenClock(START)
    with HubSpotSandbox(seed=7, contacts=60, companies=20, clock=clock) as sb:
        yield sb, clock


@pytest.fixture(scope="module")
def big() -> Iterator[HubSpotSandbox]:
    with HubSpotSandbox(seed=1, contacts=10_050, companies=60, leads=0, clock=FrozenClock(START)) as sb:
        yield sb


def search(client: Any, filters: list[Filter], *, after: int | None = None, limit: int = 200,
           sorts: list[Any] | None = None, object_type: str = "contacts") -> Any:
    request = PublicObjectSearchRequest(
        filter_groups=[FilterGroup(filters=filters)] if filters else [],
        sorts=sorts if sorts is not None else [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
        properties=["email", "lastmodifieddate"], limit=limit, after=None if after is None else str(after),
    )
    if object_type == "contacts":
        return client.crm.contacts.search_api.do_search(public_object_search_request=request)
    return client.crm.objects.search_api.do_search(object_type, request)


def update(client: Any, inputs: list[tuple[str, dict[str, str]]]) -> Any:
    return client.crm.contacts.batch_api.update(BatchInputSimplePublicObjectBatchInput(
        inputs=[SimplePublicObjectBatchInput(id=rid, properties=props, object_write_trace_id=f"t{rid}") for rid, props in inputs]
    ))


def test_list_paging_returns_every_contact_once(shared: HubSpotSandbox) -> None:
    client = client_for(shared)
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        page = client.crm.contacts.basic_api.get_page(limit=100, after=after, properties=["email", "lifecyclestage"])
        pages += 1
        seen.extend(r.id for r in page.results)
        assert all(r.properties["email"] for r in page.results)
        if page.paging is None:
            break
        after = page.paging.next.after
    assert pages == 3
    assert len(seen) == len(set(seen)) == 300
    assert seen == shared.records_ids("contacts")


def test_list_refuses_more_than_100_per_page(shared: HubSpotSandbox) -> None:
    with pytest.raises(ContactsApiException) as info:
        client_for(shared).crm.contacts.basic_api.get_page(limit=101)
    assert info.value.status == 400


def test_seed_is_deterministic_and_shaped_like_hubspot(shared: HubSpotSandbox) -> None:
    other = HubSpotSandbox(seed=42, contacts=300, clock=FrozenClock(START))
    ids = shared.records_ids("contacts")
    assert ids == other.records_ids("contacts")
    assert [shared.get_record("contacts", i) for i in ids[:50]] == [other.get_record("contacts", i) for i in ids[:50]]
    records = [shared.get_record("contacts", i) or {} for i in ids]
    stages = {r.get("lifecyclestage") for r in records}
    assert stages <= {"subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity"}
    owned = [r for r in records if r.get("hubspot_owner_id")]
    assert 0 < len(owned) < len(records) / 3  # mostly unowned, some already owned
    assert all(r["createdate"].endswith("Z") and r["hs_object_id"] for r in records)
    assert {"email", "jobtitle", "hs_analytics_source", "numemployees", "product_interest"} <= set(records[0])


def test_search_keyset_on_object_id_pages_every_match(shared: HubSpotSandbox) -> None:
    client = client_for(shared)
    watermark = "0"
    last_id = 0
    seen: list[str] = []
    calls = 0
    while True:
        filters = [Filter(property_name="lastmodifieddate", operator="GTE", value=watermark)]
        if last_id:
            filters.append(Filter(property_name="hs_object_id", operator="GT", value=str(last_id)))
        result = search(client, filters, limit=120)
        calls += 1
        seen.extend(r.id for r in result.results)
        if result.paging is None:
            break
        last_id = int(result.results[-1].id)
    assert calls == 3
    assert seen == shared.records_ids("contacts")


def test_search_offset_paging_total_and_datetime_filters(shared: HubSpotSandbox) -> None:
    client = client_for(shared)
    records = {i: shared.get_record("contacts", i) or {} for i in shared.records_ids("contacts")}
    modified = sorted(records.values(), key=lambda r: r["lastmodifieddate"])
    pivot = modified[150]["lastmodifieddate"]  # ISO form is accepted as well as epoch ms
    expected = sorted((i for i, r in records.items() if r["lastmodifieddate"] >= pivot), key=int)
    first = search(client, [Filter(property_name="lastmodifieddate", operator="GTE", value=pivot)], limit=100)
    assert first.total == len(expected)
    assert first.paging.next.after == "100"
    second = search(client, [Filter(property_name="lastmodifieddate", operator="GTE", value=pivot)], limit=100, after=100)
    assert [r.id for r in first.results + second.results] == expected
    assert second.paging is None
    descending = search(client, [], limit=5, sorts=[{"propertyName": "lastmodifieddate", "direction": "DESCENDING"}])
    assert descending.results[0].properties["lastmodifieddate"] == modified[-1]["lastmodifieddate"]


def test_search_operators(shared: HubSpotSandbox) -> None:
    client = client_for(shared)
    records = {i: shared.get_record("contacts", i) or {} for i in shared.records_ids("contacts")}
    leads = sorted((i for i, r in records.items() if r.get("lifecyclestage") in ("lead", "opportunity")), key=int)
    got = search(client, [Filter(property_name="lifecyclestage", operator="IN", values=["lead", "opportunity"])])
    assert [r.id for r in got.results] == leads
    unowned = [i for i, r in records.items() if not r.get("hubspot_owner_id")]
    assert search(client, [Filter(property_name="hubspot_owner_id", operator="NOT_HAS_PROPERTY")]).total == len(unowned)
    views = [i for i, r in records.items() if 5 <= int(r["hs_analytics_num_page_views"]) <= 15]
    got = search(client, [Filter(property_name="hs_analytics_num_page_views", operator="BETWEEN", value="5", high_value="15")])
    assert got.total == len(views)
    one = records[leads[0]]["email"]
    got = search(client, [Filter(property_name="email", operator="EQ", value=one.upper())])
    assert [r.id for r in got.results] == [leads[0]]


@pytest.mark.parametrize(
    "request_body",
    [
        {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}]}] * 6},
        {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}] * 11}]},
        {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}] * 9}] * 3},
        {"sorts": [{"propertyName": "hs_object_id"}, {"propertyName": "email"}]},
        {"limit": 201},
        {"filterGroups": [{"filters": [{"propertyName": "no_such_property", "operator": "EQ", "value": "x"}]}]},
        {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "LIKE", "value": "x"}]}]},
    ],
    ids=["6-groups", "11-filters-in-a-group", "27-filters", "2-sorts", "limit-201", "unknown-property", "bad-operator"],
)
def test_search_request_limits_are_400(shared: HubSpotSandbox, request_body: dict[str, Any]) -> None:
    http = urllib3.PoolManager()
    response = http.request(
        "POST", f"{shared.base_url}/crm/v3/objects/contacts/search", body=json.dumps(request_body).encode(),
        headers={"Authorization": f"Bearer {shared.token}", "Content-Type": "application/json"},
    )
    assert response.status == 400
    assert json.loads(response.data)["category"] == "VALIDATION_ERROR"


def test_search_is_capped_at_10000_results(big: HubSpotSandbox) -> None:
    client = client_for(big)
    modified = [Filter(property_name="lastmodifieddate", operator="GTE", value="0")]
    last_allowed = search(client, modified, after=9_800, limit=200)
    assert last_allowed.total == 10_050
    assert len(last_allowed.results) == 200
    # HubSpot hands out the cursor it will then refuse [crm-behaviour: Pitfall: HubSpot search past 10,000 results]
    assert last_allowed.paging.next.after == "10000"
    with pytest.raises(ContactsApiException) as info:
        search(client, modified, after=10_000, limit=200)
    assert info.value.status == 400
    assert json.loads(info.value.body)["category"] == "VALIDATION_ERROR"
    with pytest.raises(ContactsApiException):
        search(client, modified, after=9_900, limit=200)
    # The keyset restart never meets the cap.
    tail = search(client, [*modified, Filter(property_name="hs_object_id", operator="GT", value=big.records_ids("contacts")[-51])])
    assert tail.total == 50


def test_batch_update_ok_is_200_and_marks_integration(fresh: tuple[HubSpotSandbox, FrozenClock]) -> None:
    sb, clock = fresh
    client = client_for(sb)
    ids = sb.records_ids("contacts")[:3]
    owner = sb.owners()[0]["id"]
    clock.advance(60)
    result = update(client, [(rid, {"hubspot_owner_id": owner, "hs_lead_status": "OPEN"}) for rid in ids])
    assert type(result) is BatchResponseSimplePublicObject
    assert result.status == "COMPLETE"
    assert sorted(r.id for r in result.results) == sorted(ids)
    assert {r.object_write_trace_id for r in result.results} == {f"t{rid}" for rid in ids}
    for rid in ids:
        record = sb.get_record("contacts", rid) or {}
        assert record["hubspot_owner_id"] == owner
        assert record["lastmodifieddate"] == "2025-03-03T12:01:00.000Z"
        assert sb.last_change_source("contacts", rid) == "INTEGRATION"
    assert sb.calls["contacts.batch_update"] == 1


def test_batch_update_partial_failure_is_207_with_errors(fresh: tuple[HubSpotSandbox, FrozenClock]) -> None:
    sb, _ = fresh
    client = client_for(sb)
    ids = sb.records_ids("contacts")[:4]
    sb.fail_write_ids[ids[0]] = ("VALIDATION_ERROR", "Property values were not valid")
    sb.archive("contacts", ids[1])
    result = update(client, [(rid, {"hs_lead_status": "CONNECTED"}) for rid in ids])
    assert type(result) is BatchResponseSimplePublicObjectWithErrors
    assert result.num_errors == 2
    by_category = {e.category: e for e in result.errors}
    assert by_category["VALIDATION_ERROR"].context["ids"] == [ids[0]]
    assert by_category["VALIDATION_ERROR"].context["objectWriteTraceId"] == [f"t{ids[0]}"]
    assert by_category["OBJECT_NOT_FOUND"].context["ids"] == [ids[1]]
    assert sorted(r.id for r in result.results) == sorted(ids[2:])
    assert (sb.get_record("contacts", ids[0]) or {}).get("hs_lead_status") != "CONNECTED"
    assert (sb.get_record("contacts", ids[2]) or {})["hs_lead_status"] == "CONNECTED"


@pytest.mark.parametrize(
    ("properties", "code"),
    [
        ({"no_such_property": "1"}, "PROPERTY_DOESNT_EXIST"),
        ({"hs_object_id": "5"}, "READ_ONLY_VALUE"),
        ({"lastmodifieddate": "0"}, "READ_ONLY_VALUE"),
        ({"hs_lead_status": "SOMETHING"}, "INVALID_OPTION"),
        ({"lifecyclestage": "prospect"}, "INVALID_OPTION"),
        ({"pricing_page_views": "many"}, "INVALID_DECIMAL"),
        ({"need_confirmed": "maybe"}, "INVALID_BOOLEAN"),
        ({"numemployees": "250"}, "INVALID_OPTION"),  # a dropdown of bands, not a number
    ],
)
def test_invalid_values_are_per_record_errors(fresh: tuple[HubSpotSandbox, FrozenClock], properties: dict[str, str], code: str) -> None:
    sb, _ = fresh
    good, bad = sb.records_ids("contacts")[:2]
    result = update(client_for(sb), [(good, {"firstname": "Ok"}), (bad, properties)])
    assert type(result) is BatchResponseSimplePublicObjectWithErrors
    (error,) = result.errors
    assert error.category == "VALIDATION_ERROR"
    assert error.context["ids"] == [bad]
    assert [e.code for e in error.errors] == [code]
    assert error.context["propertyName"] == list(properties)
    assert (sb.get_record("contacts", good) or {})["firstname"] == "Ok"


def test_lifecyclestage_cannot_move_backwards(fresh: tuple[HubSpotSandbox, FrozenClock]) -> None:
    sb, _ = fresh
    client = client_for(sb)
    rid = sb.records_ids("contacts")[5]
    sb.person_update("contacts", rid, {"lifecyclestage": "salesqualifiedlead"})
    result = update(client, [(rid, {"lifecyclestage": "lead"})])
    assert type(result) is BatchResponseSimplePublicObjectWithErrors
    assert result.errors[0].errors[0].code == "INVALID_LIFECYCLE_STAGE"
    assert (sb.get_record("contacts", rid) or {})["lifecyclestage"] == "salesqualifiedlead"
    assert type(update(client, [(rid, {"lifecyclestage": "opportunity"})])) is BatchResponseSimplePublicObject
    # The documented way back: clear it, then set the earlier stage in a separate request
    # [crm-behaviour: HubSpot lifecycle stages move forward only].
    assert type(update(client, [(rid, {"lifecyclestage": ""})])) is BatchResponseSimplePublicObject
    assert "lifecyclestage" not in (sb.get_record("contacts", rid) or {})
    assert type(update(client, [(rid, {"lifecyclestage": "lead"})])) is BatchResponseSimplePublicObject
    assert (sb.get_record("contacts", rid) or {})["lifecyclestage"] == "lead"


def test_owner_must_be_an_active_owner_id(fresh: tuple[HubSpotSandbox, FrozenClock]) -> None:
    sb, _ = fresh
    client = client_for(sb)
    owners = sb.owners()
    archived = next(o for o in owners if o["archived"])
    active = next(o for o in owners if not o["archived"] and o["type"] == "PERSON")
    ids = sb.records_ids("contacts")[:3]
    result = update(client, [
        (ids[0], {"hubspot_owner_id": "12345"}),  # no such owner
        (ids[1], {"hubspot_owner_id": archived["id"]}),  # deactivated
        (ids[2], {"hubspot_owner_id": str(active["userId"])}),  # a userId is not an owner id [crm-behaviour: HubSpot owners: assign by owner id]
    ])
    assert type(result) is BatchResponseSimplePublicObjectWithErrors
    assert sorted(e.context["ids"][0] for e in result.errors) == sorted(ids)
    assert {e.errors[0].code for e in result.errors} == {"INVALID_OWNER_ID"}
    sb.deactivate_owner(active["id"])
    again = update(client, [(ids[0], {"hubspot_owner_id": active["id"]})])
    assert type(again) is BatchResponseSimplePublicObjectWithErrors


def test_batch_limits_and_duplicates_are_400(fresh: tuple[HubSpotSandbox, FrozenClock]) -> None:
    sb, _ = fresh
    client = client_for(sb)
    rid = sb.records_ids("contacts")[0]
    with pytest.raises(ContactsApiException) as info:
        update(client, [(str(1000 + i), {"firstname": "x"}) for i in range(101)])
    assert info.value.status == 400
    with pytest.raises(ContactsApiException) as info:
        update(client, [(rid, {"firstname": "a"}), (rid, {"firstname": "b"})])
    assert info.value.status == 400


def test_batch_read_reports_missing_ids(shared: HubSpotSandbox) -> None:
    client = client_for(shared)
    ids = shared.records_ids("contacts")[:3]
    result = client.crm.contacts.batch_api.read(BatchReadInputSimplePublicObjectId(
        inputs=[{"id": i} for i in [*ids, "999999"]], properties=["email", "lifecyclestage"]))
    assert type(result) is BatchResponseSimplePublicObjectWithErrors
    assert sorted(r.id for r in result.results) == sorted(ids)
    assert result.errors[0].category == "OBJECT_NOT_FOUND"
    assert result.errors[0].context["ids"] == ["999999"]
    by_email = client.crm.contacts.batch_api.read(BatchReadInputSimplePublicObjectId(
        inputs=[{"id": (shared.get_record("contacts", ids[0]) or {})["email"]}], id_property="email", properties=["email"]))
    assert [r.id for r in by_email.results] == [ids[0]]


def test_ten_second_limit_is_429_with_headers(fresh: tuple[HubSpotSandbox, FrozenClock]) -> None:
    sb, clock = fresh
    sb.requests_per_10s = 3
    http = urllib3.PoolManager(retries=False)
    auth = {"Authorization": f"Bearer {sb.token}"}
    remaining = []
    for _ in range(3):
        response = http.request("GET", f"{sb.base_url}/crm/v3/objects/contacts?limit=1", headers=auth)
        assert response.status == 200
        assert response.headers["X-HubSpot-RateLimit-Max"] == "3"
        assert response.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
        assert response.headers["X-HubSpot-RateLimit-Daily"] == "1000000"
        remaining.append(int(response.headers["X-HubSpot-RateLimit-Remaining"]))
    assert remaining == [2, 1, 0]
    with pytest.raises(ContactsApiException) as info:
        client_for(sb).crm.contacts.basic_api.get_page(limit=1)
    assert info.value.status == 429
    body = json.loads(info.value.body)
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["errorType"] == "RATE_LIMIT"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert int(info.value.headers["Retry-After"]) == 10
    assert info.value.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    clock.advance(10.5)
    assert client_for(sb).crm.contacts.basic_api.get_page(limit=1).results
    statuses = [status for _, _, path, status in sb.request_log if path == "/crm/v3/objects/contacts"]
    assert statuses == [200, 200, 200, 429, 200]


def test_search_has_its_own_limit_and_no_rate_headers(fresh: tuple[HubSpotSandbox, FrozenClock]) -> None:
    sb, clock = fresh
    sb.search_rate_per_second = 5
    sb.requests_per_10s = 100
    http = urllib3.PoolManager(retries=False)
    auth = {"Authorization": f"Bearer {sb.token}", "Content-Type": "application/json"}
    statuses = []
    for _ in range(6):
        response = http.request("POST", f"{sb.base_url}/crm/v3/objects/contacts/search", body=b"{}", headers=auth)
        statuses.append(response.status)
        assert not any(h.lower().startswith("x-hubspot-ratelimit") for h in response.headers)
    assert statuses == [200] * 5 + [429]
    assert json.loads(response.data)["policyName"] == "SECONDLY"
    clock.advance(1.0)
    assert http.request("POST", f"{sb.base_url}/crm/v3/objects/contacts/search", body=b"{}", headers=auth).status == 200


def test_bad_token_is_401(shared: HubSpotSandbox) -> None:
    with pytest.raises(UnauthorizedException) as info:
        client_for(shared, token="wrong-token").crm.contacts.basic_api.get_page(limit=1)
    assert info.value.status == 401
    assert json.loads(info.value.body)["category"] == "INVALID_AUTHENTICATION"


def test_unknown_path_is_404_and_malformed_json_is_400(shared: HubSpotSandbox) -> None:
    http = urllib3.PoolManager(retries=False)
    auth = {"Authorization": f"Bearer {shared.token}", "Content-Type": "application/json"}
    missing = http.request("GET", f"{shared.base_url}/crm/v3/nothing/here", headers=auth)
    assert missing.status == 404
    assert json.loads(missing.data)["status"] == "error"
    broken = http.request("POST", f"{shared.base_url}/crm/v3/objects/contacts/search", body=b"{not json", headers=auth)
    assert broken.status == 400
    assert json.loads(broken.data)["category"] == "VALIDATION_ERROR"


def test_server_errors_follow_the_knob(fresh: tuple[HubSpotSandbox, FrozenClock]) -> None:
    sb, _ = fresh
    sb.error_rate_5xx = 1.0
    with pytest.raises(ServiceException) as info:
        client_for(sb).crm.contacts.basic_api.get_page(limit=1)
    assert info.value.status in (502, 503)
    sb.error_rate_5xx = 0.0
    assert client_for(sb).crm.contacts.basic_api.get_page(limit=1).results


def test_property_create_then_get(fresh: tuple[HubSpotSandbox, FrozenClock]) -> None:
    sb, _ = fresh
    client = client_for(sb)
    with pytest.raises(PropertiesApiException) as info:
        client.crm.properties.core_api.get_by_name("contacts", "connector_lead_grade")
    assert info.value.status == 404
    created = client.crm.properties.core_api.create("contacts", PropertyCreate(
        name="connector_lead_grade", label="Lead grade", group_name="contactinformation", type="enumeration",
        field_type="select", options=[OptionInput(label=g.title(), value=g, display_order=i, hidden=False)
                                      for i, g in enumerate(("hot", "warm", "cold"))],
    ))
    assert created.name == "connector_lead_grade"
    fetched = client.crm.properties.core_api.get_by_name("contacts", "connector_lead_grade")
    assert [o.value for o in fetched.options] == ["hot", "warm", "cold"]
    assert "connector_lead_grade" in [p.name for p in client.crm.properties.core_api.get_all("contacts").results]
    with pytest.raises(PropertiesApiException) as info:
        client.crm.properties.core_api.create("contacts", PropertyCreate(
            name="connector_lead_grade", label="again", group_name="contactinformation", type="string", field_type="text"))
    assert info.value.status == 409
    rid = sb.records_ids("contacts")[0]
    assert type(update(client, [(rid, {"connector_lead_grade": "warm"})])) is BatchResponseSimplePublicObject
    assert type(update(client, [(rid, {"connector_lead_grade": "lukewarm"})])) is BatchResponseSimplePublicObjectWithErrors


def test_standard_property_definitions(shared: HubSpotSandbox) -> None:
    client = client_for(shared)
    stage = client.crm.properties.core_api.get_by_name("contacts", "lifecyclestage")
    assert [o.value for o in stage.options] == [
        "subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer", "evangelist", "other"]
    status = client.crm.properties.core_api.get_by_name("contacts", "hs_lead_status")
    assert [o.value for o in status.options] == [
        "NEW", "OPEN", "IN_PROGRESS", "OPEN_DEAL", "UNQUALIFIED", "ATTEMPTED_TO_CONTACT", "CONNECTED", "BAD_TIMING"]
    names = {p.name for p in client.crm.properties.core_api.get_all("contacts").results}
    assert {"hubspot_owner_id", "lastmodifieddate", "need_confirmed", "pricing_page_views"} <= names
    assert "connector_lead_score" not in names


def test_owners_listing_excludes_archived_by_default(shared: HubSpotSandbox) -> None:
    client = client_for(shared)
    active = client.crm.owners.owners_api.get_page()
    archived = client.crm.owners.owners_api.get_page(archived=True)
    assert all(not o.archived for o in active.results)
    assert [o.email for o in archived.results] == ["hal.former@example-corp.test"]
    assert {o.type for o in active.results} == {"PERSON", "QUEUE"}
    by_email = client.crm.owners.owners_api.get_page(email="ava.sales@example-corp.test")
    assert [o.first_name for o in by_email.results] == ["Ava"]
    first_two = client.crm.owners.owners_api.get_page(limit=2)
    rest = client.crm.owners.owners_api.get_page(limit=100, after=first_two.paging.next.after)
    assert [o.id for o in first_two.results + rest.results] == [o.id for o in active.results]


def test_v4_associations(shared: HubSpotSandbox) -> None:
    client = client_for(shared)
    contacts = shared.records_ids("contacts")[:40]
    linked = {c: shared.associated_ids("contacts", c, "companies") for c in contacts}
    result = client.crm.associations.v4.batch_api.get_page(
        "contacts", "companies", BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": c} for c in contacts]))
    got = {r._from.id: [t.to_object_id for t in r.to] for r in result.results}
    assert got == {c: ids for c, ids in linked.items() if ids}
    types = {a.type_id for r in result.results for t in r.to for a in t.association_types}
    assert types == {1, 279}
    children = [c for c in shared.records_ids("companies") if (shared.get_record("companies", c) or {}).get("hs_parent_company_id")]
    assert children
    parents = client.crm.associations.v4.batch_api.get_page(
        "companies", "companies", BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": c} for c in children]))
    for row in parents.results:
        # A child that is itself a parent also lists its own children (type 13); its parent is the one type-14 link.
        up = [t.to_object_id for t in row.to if any(a.type_id == 14 for a in t.association_types)]
        assert up == [(shared.get_record("companies", row._from.id) or {})["hs_parent_company_id"]]
        assert {a.type_id for t in row.to for a in t.association_types} <= {13, 14}


def test_leads_object_with_contact_associations(shared: HubSpotSandbox) -> None:
    client = client_for(shared)
    page = client.crm.objects.basic_api.get_page("leads", limit=10, properties=["hs_lead_name", "hs_pipeline_stage"])
    assert len(page.results) == 10
    assert all(r.properties["hs_lead_name"] for r in page.results)
    rows = client.crm.associations.v4.batch_api.get_page(
        "leads", "contacts", BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": r.id} for r in page.results]))
    assert len(rows.results) == 10
    found = search(client, [Filter(property_name="hs_pipeline_stage", operator="EQ", value="new-stage-id")], object_type="leads")
    assert found.total > 0


def test_merged_id_reads_as_the_survivor(fresh: tuple[HubSpotSandbox, FrozenClock]) -> None:
    sb, _ = fresh
    client = client_for(sb)
    primary, merged = sb.records_ids("contacts")[:2]
    sb.merge("contacts", primary, merged)
    record = client.crm.contacts.basic_api.get_by_id(merged, properties=["email", "hs_merged_object_ids"])
    assert record.id == primary
    assert merged in record.properties["hs_merged_object_ids"].split(";")
    read = client.crm.contacts.batch_api.read(BatchReadInputSimplePublicObjectId(inputs=[{"id": merged}], properties=["email"]))
    assert [r.id for r in read.results] == [primary]
    everyone = search(client, [Filter(property_name="lastmodifieddate", operator="GTE", value="0")])
    assert merged not in [r.id for r in everyone.results]
    assert sb.merged_into("contacts", merged) == primary


def test_archived_records_are_404_unless_asked_for(fresh: tuple[HubSpotSandbox, FrozenClock]) -> None:
    sb, clock = fresh
    client = client_for(sb)
    rid = sb.records_ids("contacts")[0]
    before = (sb.get_record("contacts", rid) or {})["lastmodifieddate"]
    clock.advance(5)
    sb.archive("contacts", rid)
    with pytest.raises(NotFoundException):
        client.crm.contacts.basic_api.get_by_id(rid)
    again = client.crm.contacts.basic_api.get_by_id(rid, archived=True)
    assert again.archived is True
    assert again.archived_at is not None
    assert (sb.get_record("contacts", rid) or {})["lastmodifieddate"] == before  # archiving does not bump it
    listed = client.crm.contacts.basic_api.get_page(archived=True, limit=100)
    assert [r.id for r in listed.results] == [rid]


def test_person_edits_and_ties(fresh: tuple[HubSpotSandbox, FrozenClock]) -> None:
    sb, clock = fresh
    client = client_for(sb)
    rid = sb.records_ids("contacts")[3]
    clock.advance(120)
    sb.person_update("contacts", rid, {"jobtitle": "CFO"})
    assert sb.last_change_source("contacts", rid) == "CRM_UI"
    assert sb.change_log[-1].source == "CRM_UI"
    changed = search(client, [Filter(property_name="lastmodifieddate", operator="GTE", value=str(START_MS))])
    assert [r.id for r in changed.results] == [rid]
    new_id = sb.create_contact({"email": "new.person@hooli.example", "firstname": "New"})
    assert (sb.get_record("contacts", new_id) or {})["createdate"] == "2025-03-03T12:02:00.000Z"
    sb.set_all_modified(START_MS)
    tied = search(client, [Filter(property_name="lastmodifieddate", operator="EQ", value=str(START_MS))])
    assert tied.total == len(sb.records_ids("contacts"))
