"""`[hubspot.fields.*]`, `[salesforce.fields.*]` and `[canonical]` in the config file: accepted, checked with key paths,
and handed to the adapters the runners open."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.config import load_settings
from connector.core.errors import ConfigError
from connector.runners.jobs import make_adapters

GOOD = '''
[hubspot]
enabled = true
access_token = "t"

[hubspot.fields.budget]
property = "budget_range"
parse = "value_map"
values = { "50k_250k" = true, "under_50k" = false }

[hubspot.fields.employees]
property = "company_size"
parse = "number"

[salesforce.fields.product_interest]
property = "Interest__c"
parse = "multi"

[canonical]
country_aliases = { "Untied States" = "US" }
industry_map = { "cloud" = "technology" }
'''


def test_field_mapping_and_canonical_sections_load_and_reach_the_adapters(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(GOOD, encoding="utf-8")
    settings = load_settings(path)
    assert settings.hubspot.fields["budget"].values == {"50k_250k": True, "under_50k": False}
    assert settings.salesforce.fields["product_interest"].parse == "multi"
    adapter = make_adapters(settings)["hubspot"]
    lead = adapter.normalize({"id": "1", "properties": {"budget_range": "under_50k", "company_size": "40",  # type: ignore[attr-defined]
                                                        "country": "Untied States", "industry": "Cloud"}})
    assert (lead.budget, lead.employees, lead.country, lead.industry) == (False, 40, "US", "technology")


@pytest.mark.parametrize(("table", "path", "words"), [
    ('[hubspot.fields.budget]\nproperty = "b"\nparse = "value_map"\nvalues = { "yes" = "Y" }', "hubspot.fields",
     "budget.values.yes: bool field 'budget' cannot hold 'Y'"),
    ('[salesforce.fields.employees]\nproperty = "E__c"\nparse = "boolean"', "salesforce.fields",
     "employees.parse: parse 'boolean' does not fit number field 'employees'"),
    ('[hubspot.fields.budget]\nproperty = "b"\nparse = "yes_no"', "hubspot.fields.budget.parse", "Input should be"),
    ('[canonical]\nindustry_map = { "cloud" = "software" }', "canonical", "industry_map.cloud: 'software' is not a taxonomy slug"),
])
def test_bad_mappings_name_their_key_path(tmp_path: Path, table: str, path: str, words: str) -> None:
    file = tmp_path / "c.toml"
    file.write_text(table + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(file)
    assert any(p.path == path and words in p.message for p in err.value.problems), err.value.problems


def test_rule_values_leads_can_never_hold_are_refused_with_the_canonical_value_to_write(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text('''
[[scoring.models.core.rules]]
name = "ICP"
points = 10
when = { all = [{ field = "country", op = "in", value = ["US", "USA", "Narnia"] },
                { field = "industry", op = "eq", value = "COMPUTER_SOFTWARE" },
                { field = "state", op = "in", value = ["CA", "US-WA", "California"] }] }
''', encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(file)
    found = {(p.path, p.message) for p in err.value.problems}
    base = "scoring.models.core.rules[0].when.all"
    assert found == {
        (f"{base}[0].value", "country 'USA' is not an ISO 3166-1 alpha-2 code: leads hold codes such as 'US'; write 'US'"),
        (f"{base}[0].value", "country 'Narnia' is not an ISO 3166-1 alpha-2 code: leads hold codes such as 'US'"),
        (f"{base}[1].value", "industry 'COMPUTER_SOFTWARE' is not a taxonomy slug: leads hold slugs such as 'technology'; "
                             "write 'technology'"),
        (f"{base}[2].value", "state 'California' is not an ISO 3166-2 subdivision code: leads hold codes such as 'CA'; "
                             "write 'CA' (or 'US-CA')"),
    }
    # With canonical values off, or the field mapped through a value map, the CRM's own values are what leads hold.
    file.write_text(file.read_text(encoding="utf-8") + "\n[canonical]\nenabled = false\n", encoding="utf-8")
    assert load_settings(file).canonical.enabled is False
