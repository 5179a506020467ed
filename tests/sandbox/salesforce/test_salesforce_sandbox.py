"""The Salesforce sandbox speaks the real API's shapes: OAuth grants, SOQL subset, paging, Collections, limits, errors."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from connector.core.clock import FrozenClock
from connector.sandbox.salesforce import SalesforceSandbox, decode_string_literal, like_regex, parse_soql, tokenize

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
V = "62.0"


class Api:
    """A thin authenticated REST client (verify pinned per request: REQUESTS_CA_BUNDLE must not override it)."""

    def __init__(self, sb: SalesforceSandbox) -> None:
        self.sb = sb
        self.http = requests.Session()
        self.token = self.login()

    def login(self) -> str:
        r = self.http.post(f"{self.sb.instance_url}/services/oauth2/token", verify=self.sb.ca_file,
                           data={"grant_type": "client_credentials", "client_id": "sandbox-client", "client_secret": "sandbox-secret"})
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def call(self, method: str, path: str, **kw: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        return self.http.request(method, f"{self.sb.instance_url}/services/data/v{V}/{path}", headers=headers,
                                 verify=self.sb.ca_file, timeout=10, **kw)

    def query(self, q: str, *, all_rows: bool = False, **kw: Any) -> requests.Response:
        return self.call("GET", "queryAll/" if all_rows else "query/", params={"q": q}, **kw)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def sb(clock: FrozenClock) -> Iterator[SalesforceSandbox]:
    with SalesforceSandbox(seed=42, leads=120, clock=clock) as sandbox:
        yield sandbox


@pytest.fixture
def api(sb: SalesforceSandbox) -> Api:
    return Api(sb)


def test_serves_https_on_loopback_with_its_own_ca_file(sb: SalesforceSandbox) -> None:
    assert sb.instance_url.startswith("https://127.0.0.1:")
    r = requests.get(f"{sb.instance_url}/services/data/", verify=sb.ca_file, timeout=10)
    assert r.status_code == 200 and {"version": V, "label": f"v{V}", "url": f"/services/data/v{V}"} in r.json()
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{sb.instance_url}/services/data/", verify=True, timeout=10)


def test_client_credentials_password_and_bad_secret(sb: SalesforceSandbox) -> None:
    url = f"{sb.instance_url}/services/oauth2/token"
    basic = base64.b64encode(b"sandbox-client:sandbox-secret").decode()
    ok = requests.post(url, data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}, verify=sb.ca_file)
    assert ok.status_code == 200
    assert set(ok.json()) == {"access_token", "instance_url", "id", "token_type", "issued_at", "signature"}
    assert ok.json()["instance_url"] == sb.instance_url
    pw = requests.post(url, verify=sb.ca_file, data={"grant_type": "password", "client_id": "sandbox-client", "client_secret": "sandbox-secret",
                                                     "username": "admin@sandbox.test", "password": "pw" + sb.security_token})
    assert pw.status_code == 200
    bad = requests.post(url, verify=sb.ca_file, data={"grant_type": "client_credentials", "client_id": "sandbox-client", "client_secret": "nope"})
    assert (bad.status_code, bad.json()["error"]) == (400, "invalid_client")


def test_jwt_bearer_checks_issuer_subject_audience_signature_and_expiry(sb: SalesforceSandbox, clock: FrozenClock) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    sb.register_jwt_key(public, "jwt-client", "admin@sandbox.test")
    url = f"{sb.instance_url}/services/oauth2/token"
    grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"

    def post(**claims: Any) -> int:
        base = {"iss": "jwt-client", "sub": "admin@sandbox.test", "aud": sb.instance_url, "exp": int((clock.now() + timedelta(minutes=3)).timestamp())}
        assertion = jwt.encode({**base, **claims}, key, algorithm="RS256")
        return requests.post(url, data={"grant_type": grant, "assertion": assertion}, verify=sb.ca_file).status_code

    assert post() == 200
    assert post(sub="someone@else.test") == 400
    assert post(aud="https://login.salesforce.com") == 400
    assert post(exp=int((clock.now() - timedelta(seconds=1)).timestamp())) == 400
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode({"iss": "jwt-client", "sub": "admin@sandbox.test", "aud": sb.instance_url, "exp": int(clock.now().timestamp()) + 60},
                        other, algorithm="RS256")
    assert requests.post(url, data={"grant_type": grant, "assertion": forged}, verify=sb.ca_file).status_code == 400


def test_rest_calls_need_a_live_token_and_carry_usage(api: Api, sb: SalesforceSandbox, clock: FrozenClock) -> None:
    r = api.query("SELECT Id FROM Lead LIMIT 1")
    assert r.status_code == 200
    assert r.headers["Sforce-Limit-Info"] == f"api-usage={sb.api_usage}/{sb.daily_api_limit}"
    sb.expire_tokens()
    expired = api.query("SELECT Id FROM Lead LIMIT 1")
    assert (expired.status_code, expired.json()) == (401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    api.token = api.login()
    assert api.query("SELECT Id FROM Lead LIMIT 1").status_code == 200
    clock.advance(sb.token_ttl_seconds)
    assert api.query("SELECT Id FROM Lead LIMIT 1").status_code == 401


def test_daily_limit_answers_403_request_limit_exceeded(api: Api, sb: SalesforceSandbox) -> None:
    sb.daily_api_limit = sb.api_usage + 1
    assert api.query("SELECT Id FROM Lead LIMIT 1").status_code == 200
    r = api.query("SELECT Id FROM Lead LIMIT 1")
    assert (r.status_code, r.json()[0]["errorCode"]) == (403, "REQUEST_LIMIT_EXCEEDED")
    assert r.headers["Sforce-Limit-Info"] == f"api-usage={sb.daily_api_limit}/{sb.daily_api_limit}"


def test_5xx_knob_fails_requests(api: Api, sb: SalesforceSandbox) -> None:
    sb.error_rate_5xx = 1.0
    assert api.query("SELECT Id FROM Lead").status_code == 503


def test_soql_where_with_and_or_parentheses_in_like_null_and_order(api: Api, sb: SalesforceSandbox) -> None:
    leads = [sb.get_lead(i) for i in sb.lead_ids()]
    q = ("SELECT Id, Status, Rating, NumberOfEmployees FROM Lead WHERE (Status = 'Working - Contacted' OR Rating IN ('Hot', 'Warm')) "
         "AND NumberOfEmployees >= 45 AND Email != null AND IsConverted = false AND Email LIKE '%.example' "
         "AND SystemModstamp > 2020-01-01T00:00:00Z ORDER BY NumberOfEmployees DESC, Id LIMIT 7")
    body = api.query(q).json()
    expected = sorted(
        (lead for lead in leads if lead and (lead["Status"] == "Working - Contacted" or lead["Rating"] in ("Hot", "Warm"))
         and lead["NumberOfEmployees"] >= 45 and lead["Email"] and not lead["IsConverted"] and lead["Email"].endswith(".example")),
        key=lambda lead: (-lead["NumberOfEmployees"], lead["Id"]),
    )[:7]
    assert [r["Id"] for r in body["records"]] == [lead["Id"] for lead in expected]
    assert body["records"][0]["attributes"] == {"type": "Lead", "url": f"/services/data/v{V}/sobjects/Lead/{expected[0]['Id']}"}
    assert body["totalSize"] == len(expected) and body["done"] is True


def test_datetimes_are_rendered_with_millis_and_plus0000(api: Api) -> None:
    record = api.query("SELECT Id, SystemModstamp, CreatedDate FROM Lead LIMIT 1").json()["records"][0]
    assert record["SystemModstamp"].endswith(".000+0000") and len(record["SystemModstamp"]) == 28


def test_pages_follow_next_records_url_with_batch_size(api: Api, sb: SalesforceSandbox) -> None:
    clamped = api.query("SELECT Id FROM Lead", headers={"Sforce-Query-Options": "batchSize=50"}).json()
    assert len(clamped["records"]) == 120 and clamped["done"] is True  # batchSize below 200 is raised to 200
    for n in range(300):
        sb.create_lead({"LastName": f"Extra{n}", "Company": "Extra Co"})
    first = api.query("SELECT Id FROM Lead ORDER BY Id", headers={"Sforce-Query-Options": "batchSize=200"}).json()
    assert (len(first["records"]), first["done"], first["totalSize"]) == (200, False, 420)
    ids = [r["Id"] for r in first["records"]]
    nxt = first["nextRecordsUrl"]
    while nxt:
        assert nxt.startswith(f"/services/data/v{V}/query/01g")
        page = api.http.get(f"{sb.instance_url}{nxt}", headers={"Authorization": f"Bearer {api.token}"}, verify=sb.ca_file).json()
        ids += [r["Id"] for r in page["records"]]
        nxt = page.get("nextRecordsUrl")
    assert ids == sorted(sb.lead_ids())


def test_query_all_returns_deleted_and_merged_rows(api: Api, sb: SalesforceSandbox) -> None:
    a, b, c = sb.lead_ids()[:3]
    sb.delete(a)
    sb.merge(b, c)
    visible = {r["Id"] for r in api.query("SELECT Id FROM Lead").json()["records"]}
    assert a not in visible and c not in visible and b in visible
    rows = {r["Id"]: r for r in api.query("SELECT Id, IsDeleted, MasterRecordId FROM Lead WHERE IsDeleted = true", all_rows=True).json()["records"]}
    assert rows[a]["IsDeleted"] is True and rows[a]["MasterRecordId"] is None
    assert rows[c]["MasterRecordId"] == b


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("SELECT Id FROM Account WHERE Website = 'o'neil.example'", "MALFORMED_QUERY"),
        ("SELECT Id FROM Lead WHERE SystemModstamp > '2024-01-01T00:00:00Z'", "MALFORMED_QUERY"),
        ("SELECT Id FROM Lead WHERE Email = 'a\\qb'", "MALFORMED_QUERY"),
        ("SELECT Nope__c FROM Lead", "INVALID_FIELD"),
        ("SELECT Id FROM Lead WHERE", "MALFORMED_QUERY"),
    ],
)
def test_bad_queries_are_400_with_salesforce_error_codes(api: Api, query: str, code: str) -> None:
    r = api.query(query)
    assert r.status_code == 400
    assert r.json()[0]["errorCode"] == code and r.json()[0]["message"]


def test_escaped_quote_and_backslash_match_literally(api: Api, sb: SalesforceSandbox) -> None:
    sb.create_account({"Name": "Back Slash", "Website": "back\\slash.example"})
    r = api.query("SELECT Id, Website FROM Account WHERE Website = 'back\\\\slash.example' OR Website LIKE '%o\\'neil.example%'")
    assert sorted(rec["Website"] for rec in r.json()["records"]) == ["back\\slash.example", "http://o'neil.example/"]


def test_describe_lists_fields_picklists_and_key_prefix(api: Api) -> None:
    body = api.call("GET", "sobjects/Lead/describe").json()
    assert body["keyPrefix"] == "00Q"
    fields = {f["name"]: f for f in body["fields"]}
    assert [v["value"] for v in fields["Status"]["picklistValues"]] == [
        "Open - Not Contacted", "Working - Contacted", "Closed - Converted", "Closed - Not Converted"]
    assert fields["Rating"]["restrictedPicklist"] is True and fields["Connector_Score__c"]["custom"] is True
    assert fields["IsConverted"]["updateable"] is False


def _patch(api: Api, records: list[dict[str, Any]], **headers: str) -> requests.Response:
    return api.call("PATCH", "composite/sobjects", json={"allOrNone": False, "records": records}, headers=headers)


def test_collections_update_per_record_errors_in_input_order(api: Api, sb: SalesforceSandbox) -> None:
    ids = sb.lead_ids()
    ok, converted, deleted, picklist, inactive, unknown_owner, bad_field, failing = ids[:8]
    sb.convert(converted)
    sb.delete(deleted)
    sb.fail_write_ids[failing] = ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Score must be set", ["Connector_Score__c"])
    hal = next(u["Id"] for u in sb.users() if not u["IsActive"])

    def rec(rid: str, **fields: Any) -> dict[str, Any]:
        return {"attributes": {"type": "Lead"}, "id": rid, **fields}

    r = _patch(api, [rec(ok, Rating="Hot"), rec(converted, Rating="Hot"), rec(deleted, Rating="Hot"), rec(picklist, Rating="Lukewarm"),
                     rec(inactive, OwnerId=hal), rec(unknown_owner, OwnerId="005999999999999AAA"), rec(bad_field, Nope__c=1),
                     rec(failing, Rating="Cold")], **{"Sforce-Auto-Assign": "FALSE"})
    assert r.status_code == 200
    codes = [(x["id"], x["success"], x["errors"][0]["statusCode"] if x["errors"] else None) for x in r.json()]
    assert codes == [
        (ok, True, None), (converted, False, "CANNOT_UPDATE_CONVERTED_LEAD"), (deleted, False, "ENTITY_IS_DELETED"),
        (picklist, False, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"), (inactive, False, "INACTIVE_OWNER_OR_USER"),
        (unknown_owner, False, "INVALID_CROSS_REFERENCE_KEY"), (bad_field, False, "INVALID_FIELD"),
        (failing, False, "FIELD_CUSTOM_VALIDATION_EXCEPTION"),
    ]
    assert r.json()[3]["errors"][0]["fields"] == ["Rating"]
    assert sb.get_lead(ok)["Rating"] == "Hot" and sb.get_lead(failing)["Rating"] != "Cold"


def test_more_than_200_records_is_a_400(api: Api, sb: SalesforceSandbox) -> None:
    lid = sb.lead_ids()[0]
    r = _patch(api, [{"attributes": {"type": "Lead"}, "id": lid, "Rating": "Hot"}] * 201)
    assert (r.status_code, r.json()[0]["errorCode"]) == (400, "EXCEEDED_ID_LIMIT")


def test_assignment_rule_overwrites_owner_unless_auto_assign_false(api: Api, sb: SalesforceSandbox, clock: FrozenClock) -> None:
    rep = next(u["Id"] for u in sb.users() if u["IsActive"] and u["Email"].endswith("example-corp.test"))
    a, b = sb.lead_ids()[:2]
    clock.advance(60)
    _patch(api, [{"attributes": {"type": "Lead"}, "id": a, "OwnerId": rep}])
    _patch(api, [{"attributes": {"type": "Lead"}, "id": b, "OwnerId": rep}], **{"Sforce-Auto-Assign": "FALSE", "Sforce-Call-Options": "client=me"})
    assert sb.get_lead(a)["OwnerId"] == sb.default_queue_id
    assert sb.get_lead(b)["OwnerId"] == rep
    assert sb.get_lead(b)["SystemModstamp"] == NOW + timedelta(seconds=60)
    assert sb.last_write_client(b) == "me" and sb.last_headers["sforce-auto-assign"] == "FALSE"
    assert sb.calls["collections_update"] == 2


def test_lock_row_knob_and_collections_retrieve(api: Api, sb: SalesforceSandbox) -> None:
    sb.lock_row_rate = 1.0
    lid = sb.lead_ids()[0]
    r = _patch(api, [{"attributes": {"type": "Lead"}, "id": lid, "Rating": "Hot"}])
    assert r.json()[0]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    sb.delete(sb.lead_ids()[1])
    got = api.call("POST", "composite/sobjects/Lead", json={"ids": [lid, sb.lead_ids(include_deleted=True)[1], "00Q999999999999AAA"],
                                                            "fields": ["Id", "Email"]}).json()
    assert got[0]["Id"] == lid and got[1] is None and got[2] is None
    too_many = api.call("POST", "composite/sobjects/Lead", json={"ids": [lid] * 2001, "fields": ["Id"]})
    assert too_many.status_code == 400


def test_users_queues_lead_statuses_and_accounts_are_seeded(api: Api, sb: SalesforceSandbox) -> None:
    users = api.query("SELECT Id, Email, IsActive FROM User WHERE IsActive = false").json()["records"]
    assert [u["Email"] for u in users] == ["hal.former@example-corp.test"]
    queues = api.query("SELECT Id, Name FROM Group WHERE Type = 'Queue'").json()["records"]
    assert all(q["Id"].startswith("00G") for q in queues) and len(queues) == 4  # inbound, enterprise, EMEA, unassigned
    statuses = api.query("SELECT ApiName, IsConverted FROM LeadStatus ORDER BY SortOrder").json()["records"]
    assert [s["ApiName"] for s in statuses][2] == "Closed - Converted" and statuses[2]["IsConverted"] is True
    parented = api.query("SELECT Id, ParentId FROM Account WHERE ParentId != null").json()["records"]
    assert parented and all(p["ParentId"].startswith("001") for p in parented)
    owners = {sb.get_lead(i)["OwnerId"][:3] for i in sb.lead_ids()}  # type: ignore[index]
    assert owners == {"00G", "005"}


def test_seed_is_deterministic() -> None:
    one, two = SalesforceSandbox(seed=3, leads=20), SalesforceSandbox(seed=3, leads=20)
    assert [one.get_lead(i) for i in one.lead_ids()] == [two.get_lead(i) for i in two.lead_ids()]


def test_soap_login_for_legacy_orgs(sb: SalesforceSandbox) -> None:
    envelope = ('<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com">'
                "<env:Body><urn:login><urn:username>admin@sandbox.test</urn:username>"
                f"<urn:password>pw{sb.security_token}</urn:password></urn:login></env:Body></env:Envelope>")
    r = requests.post(f"{sb.instance_url}/services/Soap/u/{V}", data=envelope, headers={"Content-Type": "text/xml"}, verify=sb.ca_file)
    assert r.status_code == 200 and "<sessionId>" in r.text
    bad = requests.post(f"{sb.instance_url}/services/Soap/u/{V}", data=envelope.replace("pw", "xx"), verify=sb.ca_file)
    assert bad.status_code == 500 and "INVALID_LOGIN" in bad.text


def test_parser_pieces_decode_like_salesforce() -> None:
    assert decode_string_literal("'o\\'neil \\\\ \\\"x\\\" \\n'") == "o'neil \\ \"x\" \n"
    assert like_regex("'100\\%_'").fullmatch("100%x") and not like_regex("'100\\%_'").fullmatch("1000x")
    assert [kind for kind, _ in tokenize("Id >= 2024-01-01T00:00:00Z")] == ["word", "op", "dt"]
    with pytest.raises(LookupError):
        parse_soql("SELECT Id FROM Opportunity", {})
