"""`connector doctor`: the fields the rules read, as a sample of the CRM's leads holds them; read-only; exit 0 / 1 / 2."""

from __future__ import annotations

import json
import tempfile
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from connector.canonical import CanonicalSettings
from connector.cli import main
from connector.config import Settings, example_config_path
from connector.core.clock import PinnedClock
from connector.core.models import Lead
from connector.ops.doctor import MIN_PARSED_SHARE, FieldCheck
from connector.ops.doctor_fields import empty_counts, never_firing, rule_uses
from connector.ops.doctor_suggest import country_aliases, industry_map, suggestions
from connector.sandbox.hubspot import HubSpotSandbox
from connector.sandbox.salesforce import SalesforceSandbox

# A Tuesday afternoon in Europe: the sandboxes and the connector share this instant (`--at`), whatever the hour.
T0 = datetime(2026, 12, 8, 15, 0, tzinfo=UTC)
AT = "2026-12-08T15:00:00Z"
# What a write looks like in either sandbox's call counters.
WRITE_WORDS = ("update", "create", "archive", "merge", "delete")


@pytest.fixture
def hubspot() -> Iterator[HubSpotSandbox]:
    with HubSpotSandbox(seed=42, contacts=150, clock=PinnedClock(T0)) as sb:
        yield sb


@pytest.fixture
def salesforce() -> Iterator[SalesforceSandbox]:
    with SalesforceSandbox(seed=7, leads=150, clock=PinnedClock(T0)) as sb:
        yield sb


class Doctor:
    """`connector --at T0 doctor` with CONNECTOR_* pointing at the sandboxes and at a store path that must stay absent."""

    def __init__(self, tmp: Path, hubspot: HubSpotSandbox | None = None, salesforce: SalesforceSandbox | None = None) -> None:
        self.store = tmp / "state.db"
        self.env = {"CONNECTOR_STORE__URL": f"sqlite:///{self.store}", "CONNECTOR_LOGGING__LEVEL": "ERROR",
                    "CONNECTOR_HUBSPOT__ENABLED": "false", "CONNECTOR_SALESFORCE__ENABLED": "false"}
        if hubspot is not None:
            self.env |= {"CONNECTOR_HUBSPOT__ENABLED": "true", "CONNECTOR_HUBSPOT__BASE_URL": hubspot.base_url,
                         "CONNECTOR_HUBSPOT__ACCESS_TOKEN": hubspot.token}
        if salesforce is not None:
            self.env |= {"CONNECTOR_SALESFORCE__ENABLED": "true", "CONNECTOR_SALESFORCE__LOGIN_URL": salesforce.instance_url,
                         "CONNECTOR_SALESFORCE__CLIENT_ID": salesforce.client_id,
                         "CONNECTOR_SALESFORCE__CLIENT_SECRET": salesforce.client_secret,
                         "CONNECTOR_SALESFORCE__CA_BUNDLE": str(salesforce.ca_file)}

    def run(self, *args: str, config: Path | None = None) -> Result:
        argv = ["--at", AT, "doctor", *args, "--config", str(config or example_config_path())]
        result = CliRunner(env=self.env).invoke(main, argv)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    def json(self, *args: str, config: Path | None = None) -> tuple[int, Any]:
        result = self.run(*args, "--json", config=config)
        return result.exit_code, json.loads(result.stdout)


def config_with(tmp: Path, extra_toml: str, *, base: Path | None = None) -> Path:
    """The example config (or `base`) with TOML appended (rules of a model are an array: more can follow)."""
    path = tmp / "config.toml"
    path.write_text((base or example_config_path()).read_text(encoding="utf-8") + "\n" + extra_toml, encoding="utf-8")
    return path


def fields_of(data: dict[str, Any], crm: str) -> dict[str, dict[str, Any]]:
    return {f["field"]: f for f in data["crms"][crm]["fields"]}


def writes(calls: Any) -> dict[str, int]:
    return {label: n for label, n in calls.items() if n and any(w in label for w in WRITE_WORDS)}


def test_realistic_sandboxes_are_healthy_with_the_example_config(tmp_path: Path, hubspot: HubSpotSandbox,
                                                                 salesforce: SalesforceSandbox) -> None:
    code, data = Doctor(tmp_path, hubspot, salesforce).json("--sample", "150")
    problems = {crm: c["problems"] for crm, c in data["crms"].items()}
    assert code == 0 and data["healthy"] is True, problems
    for crm in ("hubspot", "salesforce"):  # both enabled, no --crm: each reported
        fields = fields_of(data, crm)
        for name in ("country", "employees", "industry"):
            assert fields[name]["parsed_share"] >= 0.95, (crm, fields[name])
        assert data["crms"][crm]["never_firing"] == []


def test_json_is_one_object_with_fields_grades_and_routing(tmp_path: Path, hubspot: HubSpotSandbox) -> None:
    code, data = Doctor(tmp_path, hubspot).json("--sample", "100")
    assert set(data) == {"healthy", "min_parsed_share", "crms"} and data["min_parsed_share"] == MIN_PARSED_SHARE
    report = data["crms"]["hubspot"]
    assert list(data["crms"]) == ["hubspot"] and code == (0 if report["healthy"] else 1)
    assert report["sample"] == {"leads": 100, "pages": 1, "read": "fetch_all"}
    country = fields_of(data, "hubspot")["country"]
    assert {"property", "crm_type", "parse", "parsed_share", "empty_share", "unparsed", "status", "used_by"} <= set(country)
    assert any("routing regions" == u or "rule" in u for u in country["used_by"])
    assert sum(report["grades"].values()) == 100
    routing = report["routing"]
    assert routing["routed"] + routing["waiting"] + routing["kept"] + routing["unrouted"] == 100
    assert sum(routing["routed_by"].values()) == routing["routed"]


def test_reads_only_and_keeps_no_state_store(tmp_path: Path, hubspot: HubSpotSandbox, salesforce: SalesforceSandbox,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    doctor = Doctor(tmp_path, hubspot, salesforce)
    result = doctor.run("--sample", "150")
    assert result.exit_code in (0, 1), result.output
    assert hubspot.calls["contacts.list"] >= 1 and salesforce.calls["query"] >= 1
    assert writes(hubspot.calls) == {} and writes(salesforce.calls) == {}
    assert not doctor.store.exists()
    assert list(scratch.iterdir()) == []  # its throwaway store is gone too


def test_a_rule_on_a_field_empty_everywhere_can_never_fire(tmp_path: Path, hubspot: HubSpotSandbox) -> None:
    for rid in hubspot.records_ids("contacts"):
        hubspot.person_update("contacts", rid, {"city": ""})
    config = config_with(tmp_path, '[[scoring.models.core.rules]]\nname = "Berlin office"\npoints = 5\n'
                                   'when = { field = "city", op = "eq", value = "Berlin" }\n')
    doctor = Doctor(tmp_path, hubspot)
    code, data = doctor.json("--sample", "150", config=config)
    assert code == 1 and data["healthy"] is False
    assert {"rule": "Berlin office", "model": "core", "kind": "scoring", "fields": ["city"]} in data["crms"]["hubspot"]["never_firing"]
    text = doctor.run("--sample", "150", config=config).output
    assert "scoring rule 'Berlin office' (core): city empty on every sampled lead" in " ".join(text.split())


def test_unparsed_country_values_are_listed_with_an_alias_suggestion(tmp_path: Path, hubspot: HubSpotSandbox) -> None:
    ids = sorted(hubspot.records_ids("contacts"), key=int)
    for rid in ids[:9]:
        hubspot.person_update("contacts", rid, {"country": "Swizterland", "phone": ""})
    for rid in ids[9:17]:
        hubspot.person_update("contacts", rid, {"country": "Atlantis", "phone": ""})
    doctor = Doctor(tmp_path, hubspot)
    result = doctor.run("--sample", "150")
    text = " ".join(result.output.split())
    assert "unknown: 'Swizterland' ×9, 'Atlantis' ×8" in text
    assert '"Swizterland" = "CH"' in result.output  # [canonical.country_aliases], with the nearest country
    assert 'no country close to "Atlantis"' in result.output
    country = fields_of(doctor.json("--sample", "150")[1], "hubspot")["country"]
    assert {"value": "Swizterland", "count": 9} in country["unparsed"] and country["unparsed_count"] >= 17
    assert country["status"] in ("ok", "low") and country["parsed_share"] < 1


def test_a_rule_on_an_unmapped_field_exits_1_and_the_suggested_mapping_fixes_it(tmp_path: Path, hubspot: HubSpotSandbox) -> None:
    # `need` (BANT) has no default property in either CRM: unmapped means unknown.
    minimal = tmp_path / "base.toml"
    minimal.write_text("[scoring.models.core]\n", encoding="utf-8")
    config = config_with(tmp_path, '[[scoring.models.core.rules]]\nname = "Need confirmed"\npoints = 10\n'
                                   'when = { field = "need", op = "eq", value = true }\n', base=minimal)
    doctor = Doctor(tmp_path, hubspot)
    code, data = doctor.json("--sample", "100", config=config)
    need = fields_of(data, "hubspot")["need"]
    assert code == 1 and need["status"] == "unmapped"
    assert need["used_by"] == ["scoring rule 'Need confirmed' (core)"]
    assert data["crms"]["hubspot"]["problems"] == ["need is not mapped to a hubspot property"]
    # The sandbox portal has a yes/no property named like it: the suggestion maps it, and pasted in, it works.
    suggestion = next(s for s in data["crms"]["hubspot"]["suggestions"] if "[hubspot.fields.need]" in s)
    assert 'property = "need_confirmed"' in suggestion and 'parse = "boolean"' in suggestion
    fixed = config_with(tmp_path, suggestion + "\n", base=config)
    code, data = doctor.json("--sample", "100", config=fixed)
    assert code == 0 and fields_of(data, "hubspot")["need"]["status"] == "ok", data["crms"]["hubspot"]["problems"]


def test_a_mismatched_type_exits_1(tmp_path: Path, hubspot: HubSpotSandbox) -> None:
    # HubSpot's numemployees is an enumeration of bands: read as a plain number it is a type mismatch.
    minimal = tmp_path / "base.toml"
    minimal.write_text('[hubspot.fields.employees]\nproperty = "numemployees"\nparse = "number"\n[scoring.models.core]\n',
                       encoding="utf-8")
    config = config_with(tmp_path, '[[scoring.models.core.rules]]\nname = "Mid-size"\npoints = 10\n'
                                   'when = { field = "employees", op = "gte", value = 100 }\n', base=minimal)
    code, data = Doctor(tmp_path, hubspot).json("--sample", "100", config=config)
    employees = fields_of(data, "hubspot")["employees"]
    assert code == 1 and employees["status"] == "mismatch" and employees["crm_type"] == "enumeration"
    assert any('parse = "number_band"' in s for s in data["crms"]["hubspot"]["suggestions"])


def test_usage_and_config_errors_exit_2(tmp_path: Path, hubspot: HubSpotSandbox) -> None:
    doctor = Doctor(tmp_path, hubspot)
    code, data = doctor.json("--crm", "salesforce")
    assert code == 2 and "salesforce is not enabled" in data["error"]
    assert doctor.run("--sample", "0").exit_code == 2
    bad = config_with(tmp_path, '[[scoring.models.core.rules]]\nname = "Typo"\npoints = 1\n'
                                'when = { field = "contry", op = "eq", value = "US" }\n')
    result = doctor.run(config=bad)
    assert result.exit_code == 2 and "contry" in result.output and hubspot.calls["contacts.list"] == 0


def test_lines_fit_80_columns(tmp_path: Path, hubspot: HubSpotSandbox) -> None:
    doctor = Doctor(tmp_path, hubspot)
    doctor.env["COLUMNS"] = "80"
    output = doctor.run("--sample", "150").output  # every contact: unknown values, suggestions, problems
    assert "fields the rules, regions, territories and pools read" in output and "suggested config" in output
    assert all(len(line) <= 80 for line in output.splitlines()), max(output.splitlines(), key=len)


def test_share_counts_the_values_held_and_a_low_share_is_a_problem() -> None:
    check = FieldCheck("country", ["routing regions"], mapped_property="country", parse="text", crm_type="string",
                       mapped=True, seen=100, empty=20, parsed=70, unparsed_count=10)
    assert check.parsed_share == pytest.approx(70 / 80) and check.status == "low"
    assert FieldCheck("country", [], mapped=True, crm_type="string", seen=10, empty=10).status == "empty"
    assert FieldCheck("need", [], mapped=False).status == "unmapped"


def test_country_alias_suggestion_guesses_the_nearest_country() -> None:
    text = country_aliases(["Untied States", "Germny", "N/A"])
    assert '"Untied States" = "US"' in text and '"Germny" = "DE"' in text
    assert 'no country close to "N/A"' in text and '"N/A" =' not in text
    assert "[canonical.country_aliases]" not in country_aliases(["N/A", "-"])  # no empty table to paste


def _rules(*rules: dict[str, Any]) -> Settings:
    return Settings.model_validate({"scoring": {"models": {"core": {"rules": list(rules)}}}})


def test_rule_uses_expand_context_fields_to_the_lead_fields_behind_them() -> None:
    settings = _rules(
        {"name": "BANT hot", "points": 10, "when": {"field": "bant", "op": "eq", "value": "hot"}},
        {"name": "Served", "points": 5, "when": {"field": "region", "op": "eq", "value": "NA"}},
        {"name": "Hot and big", "points": 5, "when": {"all": [{"field": "grade", "op": "eq", "value": "hot"},
                                                                {"field": "employees", "op": "gte", "value": 100}]}},
        {"name": "Views", "points": 1, "engagement": "page_views"},
    )
    uses = {u.name: u for u in rule_uses(settings)}
    assert uses["BANT hot"].fields == ("budget", "authority", "need", "timeframe")
    assert uses["Served"].fields == ("country",)  # [scoring] regions are countries
    assert uses["Hot and big"].fields == ("employees",) and uses["Hot and big"].judged is False  # reads a result too
    assert uses["Views"].fields == ("engagement.page_views",)


def test_never_firing_needs_every_field_empty_and_the_rule_not_firing_on_empty() -> None:
    settings = _rules(
        {"name": "Deal", "points": 5, "when": {"field": "deal_size", "op": "gte", "value": 1}},
        {"name": "No company", "points": -5, "when": {"field": "deal_size", "op": "missing"}},
        {"name": "Views", "points": 1, "engagement": "page_views"},
    )
    uses = rule_uses(settings)
    leads = [Lead(crm="salesforce", object_type="Lead", id=str(i), email=f"p{i}@x.test") for i in range(3)]
    broken, inapplicable = never_firing(uses, leads, empty_counts(leads, ["deal_size", "engagement.page_views"]))
    assert [u.name for u in broken] == ["Deal"]  # `missing` fires on empty: not broken
    assert [u.name for u in inapplicable] == ["Views"]  # no lead holds any counter: the CRM has none
    counted = [lead.replace(engagement={"form_submissions": 2.0}) for lead in leads]
    broken, inapplicable = never_firing(uses, counted, empty_counts(counted, ["deal_size", "engagement.page_views"]))
    assert [u.name for u in broken] == ["Deal", "Views"] and inapplicable == []


def test_crm_option_checks_that_crm_only(tmp_path: Path, hubspot: HubSpotSandbox, salesforce: SalesforceSandbox) -> None:
    code, data = Doctor(tmp_path, hubspot, salesforce).json("--crm", "salesforce", "--sample", "50")
    assert list(data["crms"]) == ["salesforce"] and code == (0 if data["healthy"] else 1)
    assert hubspot.calls["contacts.list"] == 0


def test_suggested_canonical_lines_are_config_that_loads() -> None:
    snippets = country_aliases(["Untied States", "Deutschlnd", "N/A"]) + "\n" + industry_map(["Finanical Services", "tbd"])
    canonical = CanonicalSettings.model_validate(tomllib.loads(snippets)["canonical"])
    assert canonical.country_aliases == {"Untied States": "US", "Deutschlnd": "DE"}
    assert canonical.industry_map == {"Finanical Services": "finance"}
    assert 'no industry close to "tbd"' in snippets


class _Schema:
    """An adapter as far as suggestions read it: its CRM and its schema."""

    crm = "salesforce"

    def schema_properties(self) -> dict[str, dict[str, Any]]:
        values = [{"value": "Decision Maker", "active": True}, {"value": "Influencer", "active": True},
                  {"value": "Retired option", "active": False}]
        return {"Buying_Role__c": {"name": "Buying_Role__c", "label": "Buying Role", "type": "picklist", "picklistValues": values},
                "Company_Size__c": {"name": "Company_Size__c", "label": "Company size", "type": "picklist", "picklistValues": []}}


def test_suggestions_map_an_unmapped_field_from_the_schema_and_fix_a_mismatched_parser() -> None:
    checks = [FieldCheck("authority", ["scoring rule 'Auth' (core)"], mapped=False),
              FieldCheck("employees", [], mapped_property="Company_Size__c", parse="number", crm_type="picklist", mapped=True,
                         problem="Company_Size__c is a picklist but parse = 'number'")]
    found = suggestions(Settings(), _Schema(), checks)  # type: ignore[arg-type]
    authority, employees = found
    assert '"Decision Maker" = true' in authority and '"Influencer" = false' in authority and "Retired" not in authority
    assert 'parse = "number_band"' in employees
    pasted = Settings.model_validate({"salesforce": tomllib.loads("\n".join(found))["salesforce"]})
    assert pasted.salesforce.fields["authority"].values == {"Decision Maker": True, "Influencer": False}
    assert pasted.salesforce.fields["employees"].parse == "number_band"


def test_raw_values_and_bands_are_checked_against_the_field_they_come_from(tmp_path: Path, hubspot: HubSpotSandbox) -> None:
    config = config_with(tmp_path, '[[scoring.models.core.rules]]\nname = "Deutschland as typed"\npoints = 1\n'
                                   'when = { field = "raw.country", op = "eq", value = "Deutschland" }\n'
                                   '[[scoring.models.core.rules]]\nname = "Top band"\npoints = 1\n'
                                   'when = { field = "employees_band", op = "eq", value = "1000+" }\n')
    code, data = Doctor(tmp_path, hubspot).json("--sample", "150", config=config)
    fields = fields_of(data, "hubspot")
    assert fields["raw.country"]["property"] == "country" and fields["raw.country"]["empty"] < 150
    assert fields["employees_band"]["property"] == "numemployees" and fields["employees_band"]["status"] == "ok"
    assert code == 0, data["crms"]["hubspot"]["problems"]
