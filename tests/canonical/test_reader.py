"""Field mapping through both adapters: standard-schema defaults, canonical values on by default, raw values for
rules, unmapped BANT = unknown, ParseStats instead of log lines, and the schema type check at start-up."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr

from connector.adapters.hubspot.adapter import HubSpotAdapter
from connector.adapters.salesforce.adapter import SalesforceAdapter
from connector.canonical import CanonicalSettings, FieldSource, HasFieldReport, ParseStats, report_parse_stats
from connector.config import HubSpotSettings, SalesforceSettings
from connector.core.clock import FrozenClock
from connector.core.models import Lead
from connector.engine.conditions import Condition, check_condition, compile_condition
from connector.sandbox.hubspot import HubSpotSandbox
from connector.sandbox.salesforce import SalesforceSandbox

NOW = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)


def hubspot(canonical: CanonicalSettings | None = None, **kw: Any) -> HubSpotAdapter:
    settings = HubSpotSettings(enabled=True, access_token=SecretStr("t"), base_url="http://127.0.0.1:9/", **kw)
    return HubSpotAdapter(settings, clock=FrozenClock(NOW), sleep=lambda s: None, canonical=canonical)


def contact(**props: str) -> dict[str, Any]:
    return {"id": "1", "properties": {"email": "dana@lumen.example", **props}}


def matches(cond: dict[str, Any], lead: Lead) -> bool:
    condition = Condition.model_validate(cond)
    assert check_condition(condition, "when") == []
    return compile_condition(condition)(lead, {})


def test_real_hubspot_shapes_become_canonical_with_no_mapping_keys() -> None:
    lead = hubspot().normalize(contact(country="United States", state="California", numemployees="100-500",
                                       industry="Computer Software", annualrevenue="$10M"))
    assert (lead.country, lead.state, lead.employees, lead.employees_band) == ("US", "CA", 100, "100-500")
    assert (lead.industry, lead.annual_revenue, lead.country_inferred) == ("technology", 10_000_000, False)
    assert lead.raw == {"email": "dana@lumen.example", "country": "United States", "state": "California",
                        "employees": "100-500", "industry": "Computer Software", "annual_revenue": "$10M"}
    for rule in ({"field": "country", "op": "in", "value": ["US", "CA"]}, {"field": "employees", "op": "gte", "value": 100},
                 {"field": "state", "op": "in", "value": ["CA"]}, {"field": "state", "op": "eq", "value": "US-CA"},
                 {"field": "industry", "op": "in", "value": ["TECHNOLOGY"]}, {"field": "employees_band", "op": "eq", "value": "100-500"},
                 {"field": "raw.country", "op": "eq", "value": "united states"}):
        assert matches(rule, lead), rule
    assert not matches({"field": "raw.country", "op": "eq", "value": "US"}, lead)


@pytest.mark.parametrize(("raw", "code"), [("USA", "US"), ("us", "US"), ("Deutschland", "DE"), ("UK", "GB"), ("Australia", "AU")])
def test_country_rules_written_with_iso_codes_match_every_spelling(raw: str, code: str) -> None:
    lead = hubspot().normalize(contact(country=raw))
    assert lead.country == code and matches({"field": "raw.country", "op": "eq", "value": raw}, lead)


def test_bant_seniority_and_interest_have_no_default_property_unmapped_is_unknown(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        lead = hubspot().normalize(contact(bant_budget="50k_250k", bant_authority="decision maker", product_interest="crm",
                                           seniority="VP"))
    assert (lead.budget, lead.authority, lead.need, lead.timeframe, lead.seniority, lead.product_interest) == (None,) * 5 + ((),)
    assert not caplog.records  # no "is not a valid true/false" line per lead any more
    assert "bant_budget" not in hubspot().fields.record_properties()


def test_mapped_bant_and_picklists_read_with_their_parsers() -> None:
    adapter = hubspot(fields={
        "budget": {"property": "budget_range", "parse": "value_map", "values": {"50k_250k": True, "under_50k": False}},
        "authority": {"property": "decision_role", "parse": "boolean", "true_values": ["decision_maker"], "false_values": ["user"]},
        "seniority": {"property": "seniority", "parse": "value_map", "values": {"VP": "vp"}},
        "product_interest": {"property": "interest", "parse": "multi"},
        "employees": {"property": "company_size", "parse": "number"},
    })
    lead = adapter.normalize(contact(budget_range="50K_250K", decision_role="ceo", seniority="vp", interest="Analytics;CRM",
                                     company_size="1,200"))
    assert (lead.budget, lead.authority, lead.seniority, lead.product_interest, lead.employees) == (
        True, None, "vp", ("analytics", "crm"), 1200)
    assert adapter.parse_stats.tallies["authority"].unparsed == {"ceo": 1}
    assert {"budget_range", "decision_role", "interest", "company_size"} <= set(adapter.fields.record_properties())


def test_country_is_inferred_from_the_phone_only_when_the_field_is_empty() -> None:
    adapter = hubspot()
    inferred = adapter.normalize(contact(phone="+49 30 1234567"))
    assert (inferred.country, inferred.country_inferred) == ("DE", True)
    typo = adapter.normalize(contact(phone="+49 30 1234567", country="Germny"))
    assert (typo.country, typo.country_inferred, typo.raw["country"]) == (None, False, "Germny")
    tally = adapter.parse_stats.tallies["country"]
    assert (tally.seen, tally.empty, tally.inferred, tally.parsed, dict(tally.unparsed)) == (2, 1, 1, 0, {"Germny": 1})
    off = hubspot(CanonicalSettings(infer_country_from_phone=False)).normalize(contact(phone="+49 30 1234567"))
    assert (off.country, off.country_inferred) == (None, False)


def test_canonical_values_can_be_switched_off() -> None:
    lead = hubspot(CanonicalSettings(enabled=False)).normalize(contact(country="Deutschland", industry="Computer Software"))
    assert (lead.country, lead.industry) == ("Deutschland", "Computer Software")


def test_salesforce_reads_country_and_state_codes_first_and_its_picklist_industry() -> None:
    settings = SalesforceSettings(enabled=True, access_token=SecretStr("t"), instance_url="https://127.0.0.1:9")
    adapter = SalesforceAdapter(settings, clock=FrozenClock(NOW), sleep=lambda s: None)
    lead = adapter.normalize({"Id": "00Q1", "Country": "USA", "CountryCode": "US", "State": "Calif", "StateCode": "CA",
                              "Industry": "Technology", "NumberOfEmployees": 250, "AnnualRevenue": 25_000_000.0})
    assert (lead.country, lead.state, lead.industry, lead.employees, lead.employees_band) == ("US", "CA", "technology", 250, None)
    free_text = adapter.normalize({"Id": "00Q2", "Country": "Deutschland", "State": "Bayern", "Industry": "Not For Profit"})
    assert (free_text.country, free_text.state, free_text.industry) == ("DE", "BY", "not_for_profit")
    assert isinstance(adapter, HasFieldReport)


def test_unparsed_values_are_reported_once_per_run_as_counts(caplog: pytest.LogCaptureFixture) -> None:
    adapter = hubspot()
    for i in range(50):
        adapter.normalize(contact(numemployees="lots" if i % 10 == 0 else "5-25", country="Untied States" if i < 3 else "US"))
    log = logging.getLogger("connector.test")
    with caplog.at_level(logging.WARNING, logger="connector.test"):
        report_parse_stats("hubspot", adapter.parse_stats, log)
        report_parse_stats("hubspot", adapter.parse_stats, log)  # counted anew: nothing more to say
    assert len(caplog.records) == 1
    text = caplog.records[0].getMessage()
    assert "country: 3 of 50 values unparsed" in text and "employees: 5 of 50 values unparsed" in text
    assert "Untied" not in text  # values may be personal data: `connector doctor` shows them, logs do not
    assert adapter.parse_stats.tallies == {}


def test_parse_stats_keep_few_distinct_values() -> None:
    stats = ParseStats()
    for i in range(150):
        stats.tally("country").note_unparsed(f"place {i}")
    tally = stats.tally("country")
    assert len(tally.unparsed) == 101 and tally.unparsed["…"] == 50 and tally.unparsed_count == 150


@pytest.fixture(scope="module")
def hubspot_sandbox() -> Iterator[HubSpotSandbox]:
    with HubSpotSandbox(seed=5, contacts=5, companies=2, clock=FrozenClock(NOW)) as sb:
        yield sb


def test_hubspot_schema_type_mismatch_is_warned_at_start_up(hubspot_sandbox: HubSpotSandbox, caplog: pytest.LogCaptureFixture) -> None:
    settings = HubSpotSettings(enabled=True, access_token=SecretStr("sandbox-token"), base_url=hubspot_sandbox.base_url + "/",
                               fields={"employees": {"property": "numemployees", "parse": "number"},
                                       "budget": {"property": "no_such_property", "parse": "boolean"}})
    adapter = HubSpotAdapter(settings, clock=FrozenClock(NOW), sleep=lambda s: None)
    with caplog.at_level(logging.WARNING, logger="connector.adapters.hubspot"):
        adapter.bootstrap()
    sources = {s.field: s for s in adapter.field_sources()}
    assert sources["employees"] == FieldSource("employees", "numemployees", "number", "enumeration",
                                               "numemployees is an enumeration but parse = 'number'; use parse = \"number_band\"")
    assert sources["budget"].crm_type is None and sources["budget"].problem == "no_such_property does not exist"
    assert sources["country"] == FieldSource("country", "country", "text", "string", None)
    warned = [r.getMessage() for r in caplog.records]
    assert any("field employees: numemployees is an enumeration" in w for w in warned)
    assert any("field budget: no_such_property does not exist" in w for w in warned)
    assert "numemployees" in adapter.schema_properties()


def test_hubspot_default_mapping_fits_the_standard_schema(hubspot_sandbox: HubSpotSandbox) -> None:
    settings = HubSpotSettings(enabled=True, access_token=SecretStr("sandbox-token"), base_url=hubspot_sandbox.base_url + "/")
    adapter = HubSpotAdapter(settings, clock=FrozenClock(NOW), sleep=lambda s: None)
    calls_before = adapter.calls.total
    assert [s for s in adapter.field_sources() if s.problem] == []
    adapter.field_sources()
    assert adapter.calls.total - calls_before == 1  # the properties are read once, never bootstrapped


def test_salesforce_describe_type_mismatch_is_warned_at_start_up(caplog: pytest.LogCaptureFixture) -> None:
    clock = FrozenClock(NOW)
    with SalesforceSandbox(seed=3, leads=5, clock=clock) as sb:
        settings = SalesforceSettings(enabled=True, login_url=sb.instance_url, client_id="sandbox-client",
                                      client_secret=SecretStr("sandbox-secret"), ca_bundle=sb.ca_file,
                                      fields={"budget": {"property": "NumberOfEmployees", "parse": "boolean"}})
        adapter = SalesforceAdapter(settings, clock=clock, sleep=clock.sleep)
        with caplog.at_level(logging.WARNING, logger="connector.adapters.salesforce"):
            adapter.bootstrap()
        sources = {s.field: s for s in adapter.field_sources()}
    assert sources["budget"].problem == "NumberOfEmployees is an int but parse = 'boolean'"
    assert sources["country"].property == "CountryCode"  # the org has state and country picklists
    assert [s for s in sources.values() if s.problem and s.field != "budget"] == []
    assert any("field budget: NumberOfEmployees is an int" in r.getMessage() for r in caplog.records)


def test_routing_regions_written_with_iso_codes_match_canonical_leads() -> None:
    from connector.engine.routing import RoutingConfig, compile_routing
    from connector.engine.routing.compile import place_of

    cfg = RoutingConfig.model_validate({
        "regions": {"us_west": {"countries": ["US"], "states": ["CA", "US-WA"]}, "dach": {"countries": ["DE", "AT", "CH"]}},
        "territories": {"bay_area": {"countries": ["US"], "postal_ranges": [["94000", "95199"]]}},
    })
    compiled = compile_routing(cfg)
    adapter = hubspot()
    west = adapter.normalize(contact(country="United States", state="California", zip="94105"))
    washington = adapter.normalize(contact(country="USA", state="Washington"))
    bavaria = adapter.normalize(contact(country="Deutschland", state="Bayern"))
    assert (place_of(west, compiled).region, place_of(west, compiled).territory) == ("us_west", "bay_area")
    assert place_of(washington, compiled).region == "us_west"  # the config may write "US-WA"
    assert place_of(bavaria, compiled).region == "dach"


def test_the_example_configs_regions_and_territories_are_iso_codes_canonical_values_match() -> None:
    import tomllib

    from connector.canonical import Canonical
    from connector.config import example_config_path

    routing = tomllib.loads(example_config_path().read_text(encoding="utf-8"))["routing"]
    canon = Canonical()
    for table in ("regions", "territories"):
        for name, place in routing.get(table, {}).items():
            for country in place.get("countries", []):
                assert canon.country(country) == country, (table, name, country)
                for state in place.get("states", []):
                    assert canon.state(state, country) == state.split("-")[-1], (table, name, state)
