"""Request shapes of the Salesforce adapter: exact URLs, headers and bodies via `responses`; unused stubs fail."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr
from responses import matchers

from connector.adapters.salesforce.adapter import SalesforceAdapter
from connector.core.clock import FrozenClock
from connector.config import SalesforceSettings
from connector.core.errors import AuthError, BudgetExhaustedError
from connector.core.models import Patch

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
HOST = "https://acme.my.salesforce.com"
API = f"{HOST}/services/data/v62.0"
TOKEN_URL = f"{HOST}/services/oauth2/token"
USAGE = {"Sforce-Limit-Info": "api-usage=18/5000"}
WRITE_HEADERS = {"Sforce-Auto-Assign": "FALSE", "Sforce-Call-Options": "client=crm-lead-connector"}
FIELDS = "Id, IsDeleted, MasterRecordId, IsConverted, SystemModstamp, Email, OwnerId, Status, Connector_Score__c, Rating"


def _field(name: str, kind: str, values: tuple[str, ...] = (), updateable: bool = True) -> dict[str, Any]:
    return {"name": name, "type": kind, "updateable": updateable, "custom": name.endswith("__c"), "scale": 0,
            "picklistValues": [{"active": True, "value": v, "label": v, "defaultValue": False} for v in values]}


DESCRIBE = {"name": "Lead", "keyPrefix": "00Q", "fields": [
    _field("Id", "id", updateable=False), _field("IsDeleted", "boolean", updateable=False),
    _field("MasterRecordId", "reference", updateable=False), _field("IsConverted", "boolean", updateable=False),
    _field("SystemModstamp", "datetime", updateable=False), _field("Email", "email"), _field("OwnerId", "reference"),
    _field("Status", "picklist", ("Open - Not Contacted", "Working - Contacted", "Closed - Converted", "Closed - Not Converted")),
    _field("Rating", "picklist", ("Hot", "Warm", "Cold")), _field("Connector_Score__c", "double"),
]}


class RecordingGuard:
    def __init__(self) -> None:
        self.before_calls: list[tuple[str, str]] = []
        self.after_calls: list[tuple[str, int, Mapping[str, str]]] = []

    def before(self, endpoint: str, kind: str) -> None:
        self.before_calls.append((endpoint, kind))

    def after(self, endpoint: str, status: int, headers: Mapping[str, str]) -> None:
        self.after_calls.append((endpoint, status, headers))


def settings(**kw: Any) -> SalesforceSettings:
    base: dict[str, Any] = {"enabled": True, "login_url": HOST, "client_id": "cid", "client_secret": SecretStr("csecret")}
    return SalesforceSettings(**{**base, **kw})


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def slept() -> list[float]:
    return []


def adapter(slept: list[float], guard: RecordingGuard | None = None, **kw: Any) -> SalesforceAdapter:
    return SalesforceAdapter(settings(**kw), guard=guard, clock=FrozenClock(NOW), sleep=slept.append, query_batch_size=200)


def token(rsps: responses.RequestsMock, access_token: str = "tok-1") -> None:
    rsps.add(responses.POST, TOKEN_URL, json={"access_token": access_token, "instance_url": HOST, "id": f"{HOST}/id/00D/005",
                                              "token_type": "Bearer", "issued_at": "1740830400000", "signature": "sig"},
             match=[matchers.urlencoded_params_matcher({"grant_type": "client_credentials", "client_id": "cid", "client_secret": "csecret"})])


def describe(rsps: responses.RequestsMock, access_token: str = "tok-1") -> None:
    rsps.add(responses.GET, f"{API}/sobjects/Lead/describe", json=DESCRIBE, headers=USAGE,
             match=[matchers.header_matcher({"Authorization": f"Bearer {access_token}"})])


def test_bootstrap_gets_a_client_credentials_token_then_describes_and_checks_the_filter(rsps: responses.RequestsMock, slept: list[float]) -> None:
    token(rsps)
    describe(rsps)
    rsps.add(responses.GET, f"{API}/query/", json={"totalSize": 0, "done": True, "records": []}, headers=USAGE,
             match=[matchers.query_param_matcher({"q": "SELECT Id FROM Lead WHERE (IsConverted = false) LIMIT 1"}),
                    matchers.header_matcher({"Authorization": "Bearer tok-1"})])
    adapter(slept).bootstrap()
    assert slept == []


def test_write_is_one_collections_patch_with_auto_assign_off_and_call_options(rsps: responses.RequestsMock, slept: list[float]) -> None:
    token(rsps)
    describe(rsps)
    body = {"allOrNone": False, "records": [
        {"attributes": {"type": "Lead"}, "id": "00QA", "OwnerId": "005R", "Rating": "Hot", "Connector_Score__c": 42, "Status": "Working - Contacted"},
        {"attributes": {"type": "Lead"}, "id": "00QB", "Rating": "Cold"},
    ]}
    rsps.add(responses.PATCH, f"{API}/composite/sobjects", headers=USAGE, json=[
        {"id": "00QA", "success": True, "errors": []},
        {"id": "00QB", "success": False, "errors": [{"statusCode": "CANNOT_UPDATE_CONVERTED_LEAD", "message": "cannot reference converted lead", "fields": []}]},
    ], match=[matchers.json_params_matcher(body), matchers.header_matcher({**WRITE_HEADERS, "Authorization": "Bearer tok-1"})])
    results = adapter(slept).write([
        Patch("salesforce", "Lead", "00QA", {"owner_id": "005R", "grade": "hot", "score": 41.6, "stage": "working - contacted"}),
        Patch("salesforce", "Lead", "00QB", {"grade": "COLD"}),
        Patch("salesforce", "Lead", "00QC", {}),
    ])
    assert [(r.record_id, r.ok, r.error_code, r.retryable) for r in results] == [
        ("00QA", True, None, False), ("00QB", False, "CANNOT_UPDATE_CONVERTED_LEAD", False), ("00QC", True, None, False)]


def test_locked_rows_alone_are_sent_again_after_a_backoff(rsps: responses.RequestsMock, slept: list[float]) -> None:
    token(rsps)
    describe(rsps)
    locked = {"statusCode": "UNABLE_TO_LOCK_ROW", "message": "unable to obtain exclusive access to this record", "fields": []}
    first = {"allOrNone": False, "records": [{"attributes": {"type": "Lead"}, "id": i, "Rating": "Warm"} for i in ("00QA", "00QB")]}
    rsps.add(responses.PATCH, f"{API}/composite/sobjects", headers=USAGE, json=[
        {"id": "00QA", "success": True, "errors": []}, {"id": "00QB", "success": False, "errors": [locked]}],
        match=[matchers.json_params_matcher(first), matchers.header_matcher(WRITE_HEADERS)])
    again = {"allOrNone": False, "records": [{"attributes": {"type": "Lead"}, "id": "00QB", "Rating": "Warm"}]}
    rsps.add(responses.PATCH, f"{API}/composite/sobjects", headers=USAGE, json=[{"id": "00QB", "success": True, "errors": []}],
             match=[matchers.json_params_matcher(again), matchers.header_matcher(WRITE_HEADERS)])
    results = adapter(slept).write([Patch("salesforce", "Lead", i, {"grade": "warm"}) for i in ("00QA", "00QB")])
    assert [r.ok for r in results] == [True, True]
    assert len(slept) == 1


def test_an_expired_session_is_refreshed_once_and_the_call_resent(rsps: responses.RequestsMock, slept: list[float]) -> None:
    token(rsps, "tok-1")
    describe(rsps, "tok-1")
    url = f"{API}/composite/sobjects/Lead"
    rsps.add(responses.POST, url, status=401, json=[{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
             match=[matchers.header_matcher({"Authorization": "Bearer tok-1"})])
    token(rsps, "tok-2")
    rsps.add(responses.POST, url, headers=USAGE, json=[{"attributes": {"type": "Lead"}, "Id": "00QA", "Email": "a@b.example",
                                                         "SystemModstamp": "2025-01-01T00:00:00.000+0000"}, None],
             match=[matchers.header_matcher({"Authorization": "Bearer tok-2"}),
                    matchers.json_params_matcher({"ids": ["00QA", "00QX"], "fields": FIELDS.split(", ")})])
    leads = adapter(slept).fetch_by_ids(["00QA", "00QX", "00QA"])
    assert [(lead.id, lead.email) for lead in leads] == [("00QA", "a@b.example")]
    assert slept == []  # a refresh is not a retry: no backoff


def test_a_second_401_after_refresh_is_an_auth_error(rsps: responses.RequestsMock, slept: list[float]) -> None:
    expired = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    token(rsps, "tok-1")
    rsps.add(responses.GET, f"{API}/sobjects/Lead/describe", status=401, json=expired)
    token(rsps, "tok-2")
    rsps.add(responses.GET, f"{API}/sobjects/Lead/describe", status=401, json=expired)
    with pytest.raises(AuthError, match="salesforce.client_id"):
        adapter(slept).bootstrap()


def test_a_static_token_cannot_refresh_and_names_the_key(rsps: responses.RequestsMock, slept: list[float]) -> None:
    rsps.add(responses.GET, f"{API}/sobjects/Lead/describe", status=401,
             json=[{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
             match=[matchers.header_matcher({"Authorization": "Bearer static-tok"})])
    ad = adapter(slept, client_id=None, client_secret=None, access_token=SecretStr("static-tok"), instance_url=HOST)
    with pytest.raises(AuthError, match="salesforce.access_token") as info:
        ad.bootstrap()
    assert "static-tok" not in str(info.value)


def test_jwt_bearer_assertion_claims(rsps: responses.RequestsMock, slept: list[float], tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "server.key"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    seen: list[dict[str, Any]] = []

    def grant(request: Any) -> tuple[int, dict[str, str], str]:
        form = {k: v[0] for k, v in parse_qs(request.body).items()}
        assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
        seen.append(jwt.decode(form["assertion"], key.public_key(), algorithms=["RS256"], audience="https://login.salesforce.com",
                               options={"verify_exp": False}))
        return 200, {}, '{"access_token": "tok-j", "instance_url": "https://acme.my.salesforce.com"}'

    rsps.add_callback(responses.POST, "https://login.salesforce.com/services/oauth2/token", callback=grant)
    describe(rsps, "tok-j")
    rsps.add(responses.GET, f"{API}/query/", json={"totalSize": 0, "done": True, "records": []}, headers=USAGE)
    ad = SalesforceAdapter(SalesforceSettings(enabled=True, client_id="cid", username="api@acme.example", private_key_file=str(key_file)),
                           clock=FrozenClock(NOW), sleep=slept.append)
    ad.bootstrap()
    assert seen == [{"iss": "cid", "sub": "api@acme.example", "aud": "https://login.salesforce.com", "exp": int(NOW.timestamp()) + 180}]


def test_legacy_soap_login_posts_the_escaped_envelope(rsps: responses.RequestsMock, slept: list[float]) -> None:
    def login(request: Any) -> tuple[int, dict[str, str], str]:
        body = request.body.decode()
        assert "<urn:username>a&amp;b@acme.example</urn:username>" in body and "<urn:password>p&lt;wTOKEN</urn:password>" in body
        return 200, {}, ('<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com">'
                         "<soapenv:Body><loginResponse><result><serverUrl>https://acme.my.salesforce.com/services/Soap/u/62.0/00D</serverUrl>"
                         "<sessionId>tok-s</sessionId></result></loginResponse></soapenv:Body></soapenv:Envelope>")

    rsps.add_callback(responses.POST, "https://login.salesforce.com/services/Soap/u/62.0", callback=login,
                      match=[matchers.header_matcher({"SOAPAction": "login"})])
    describe(rsps, "tok-s")
    ad = SalesforceAdapter(SalesforceSettings(enabled=True, username="a&b@acme.example", password=SecretStr("p<w"),
                                              security_token=SecretStr("TOKEN"), lead_filter=""),
                           clock=FrozenClock(NOW), sleep=slept.append)
    ad.bootstrap()


def test_query_pages_follow_next_records_url_and_carry_batch_size(rsps: responses.RequestsMock, slept: list[float]) -> None:
    token(rsps)
    describe(rsps)
    since = '{"since":"2025-03-01T11:00:00.000000Z","stream":"fetch_changed","v":1}'
    q = (f"SELECT {FIELDS} FROM Lead WHERE SystemModstamp >= 2025-03-01T11:00:00Z AND ((IsConverted = false) OR IsDeleted = true OR IsConverted = true) "
         "ORDER BY SystemModstamp, Id")

    def row(i: str, **kw: Any) -> dict[str, Any]:
        return {"attributes": {"type": "Lead"}, "Id": i, "IsDeleted": False, "MasterRecordId": None, "IsConverted": False,
                "SystemModstamp": "2025-03-01T11:30:00.000+0000", "Email": f"{i}@x.example", "OwnerId": "00G1", **kw}

    rsps.add(responses.GET, f"{API}/queryAll/", headers=USAGE,
             json={"totalSize": 3, "done": False, "nextRecordsUrl": "/services/data/v62.0/query/01gXYZ-200", "records": [row("00QA")]},
             match=[matchers.query_param_matcher({"q": q}), matchers.header_matcher({"Sforce-Query-Options": "batchSize=200"})])
    rsps.add(responses.GET, f"{API}/query/01gXYZ-200", headers=USAGE,
             json={"totalSize": 3, "done": True, "records": [row("00QB", IsDeleted=True), row("00QC", IsDeleted=True, MasterRecordId="00QA")]})
    guard = RecordingGuard()
    pages = list(adapter(slept, guard).fetch_changed(since))
    assert [[lead.id for lead in p.leads] for p in pages] == [["00QA"], []]
    assert (pages[1].deleted_ids, dict(pages[1].merged)) == (("00QB",), {"00QC": "00QA"})
    assert pages[0].cursor == ('{"after":["2025-03-01T11:30:00.000000Z","00QA"],"since":"2025-03-01T11:00:00.000000Z",'
                               '"started":"2025-03-01T12:00:00.000000Z","stream":"fetch_changed","v":1}')
    assert pages[1].cursor == '{"since":"2025-03-01T11:55:00.000000Z","stream":"fetch_changed","v":1}'
    assert [(e, s) for e, s, _ in guard.after_calls] == [("describe.Lead", 200), ("queryAll", 200), ("query_more", 200)]
    assert all(h["sforce-limit-info"] == "api-usage=18/5000" for _, _, h in guard.after_calls)
    assert guard.before_calls == [("describe.Lead", "read"), ("queryAll", "read"), ("query_more", "read")]


def test_resuming_mid_scan_uses_the_systemmodstamp_id_tie_break(rsps: responses.RequestsMock, slept: list[float]) -> None:
    token(rsps)
    describe(rsps)
    cursor = ('{"after":["2025-03-01T11:30:00.000000Z","00Q\'A"],"since":null,"started":"2025-03-01T12:00:00.000000Z",'
              '"stream":"fetch_changed","v":1}')
    q = (f"SELECT {FIELDS} FROM Lead WHERE (SystemModstamp > 2025-03-01T11:30:00Z OR (SystemModstamp = 2025-03-01T11:30:00Z "
         "AND Id > '00Q\\'A')) AND ((IsConverted = false) OR IsDeleted = true) ORDER BY SystemModstamp, Id")
    rsps.add(responses.GET, f"{API}/queryAll/", headers=USAGE, json={"totalSize": 0, "done": True, "records": []},
             match=[matchers.query_param_matcher({"q": q})])
    pages = list(adapter(slept).fetch_changed(cursor))
    assert [p.leads for p in pages] == [()]
    assert pages[0].cursor == '{"since":"2025-03-01T11:55:00.000000Z","stream":"fetch_changed","v":1}'


def test_request_limit_exceeded_is_budget_exhausted_and_the_guard_sees_it(rsps: responses.RequestsMock, slept: list[float]) -> None:
    token(rsps)
    describe(rsps)
    rsps.add(responses.PATCH, f"{API}/composite/sobjects", status=403, headers={"Sforce-Limit-Info": "api-usage=5000/5000"},
             json=[{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    guard = RecordingGuard()
    with pytest.raises(BudgetExhaustedError, match="daily API request limit"):
        adapter(slept, guard).write([Patch("salesforce", "Lead", "00QA", {"score": 1})])
    assert guard.after_calls[-1][:2] == ("composite.sobjects.update", 403)
    assert guard.after_calls[-1][2]["sforce-limit-info"] == "api-usage=5000/5000"
    assert slept == []  # waiting does not help against the daily allocation


def test_5xx_is_retried_with_backoff(rsps: responses.RequestsMock, slept: list[float]) -> None:
    token(rsps)
    rsps.add(responses.GET, f"{API}/sobjects/Lead/describe", status=503, json=[{"message": "down", "errorCode": "SERVER_UNAVAILABLE"}])
    describe(rsps)
    rsps.add(responses.GET, f"{API}/query/", json={"totalSize": 0, "done": True, "records": []}, headers=USAGE)
    ad = adapter(slept)
    ad.bootstrap()
    assert len(slept) == 1
    assert ad.calls.snapshot() == {"describe.Lead": 2, "query": 1}


def test_fetch_by_ids_retrieves_at_most_2000_per_call(rsps: responses.RequestsMock, slept: list[float]) -> None:
    token(rsps)
    describe(rsps)
    ids = [f"00Q{i:015d}" for i in range(2001)]
    rsps.add(responses.POST, f"{API}/composite/sobjects/Lead", json=[None] * 2000,
             match=[matchers.json_params_matcher({"ids": ids[:2000], "fields": FIELDS.split(", ")})])
    rsps.add(responses.POST, f"{API}/composite/sobjects/Lead", json=[None],
             match=[matchers.json_params_matcher({"ids": ids[2000:], "fields": FIELDS.split(", ")})])
    assert adapter(slept).fetch_by_ids(ids) == []
