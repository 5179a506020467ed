"""`connector rules test FILE`: sample leads scored and routed with the configured engine, no CRM; bad rows named."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from connector.cli import main
from connector.config import example_config_path, load_settings
from connector.engine.scoring import compile_scoring, score_lead
from connector.canonical.reader import Canonical
from connector.ops.rules_test import parse_lead

# A Wednesday: 11:00 in Los Angeles, 14:00 in New York — inside the sample reps' working hours.
AT = "2025-06-11T18:00:00Z"
CSV = """email,first_name,title,country,state,employees,industry,lead_source,product_interest,budget,need
cto@bigcorp.example,Ada,CTO,US,CA,1200,SOFTWARE,Demo Request,analytics;crm,true,true
someone@gmail.com,Bo,Student,TH,,3,EDUCATION,,,,
vp@acme-retail.example,Cy,VP of Sales,US,NY,250,RETAIL,Webinar,payments,,true
bad@example.com,Di,CEO,US,,many,SOFTWARE,,,,maybe
"""


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner(env={"CONNECTOR_LOGGING__LEVEL": "WARNING"}).invoke(main, ["rules", "test", *args, "--config", str(example_config_path())])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_csv_samples_are_scored_and_routed_and_bad_rows_reported(tmp_path: Path) -> None:
    sample = tmp_path / "leads.csv"
    sample.write_text(CSV, encoding="utf-8")
    code, out, _ = _run(str(sample), "--at", AT, "--json")
    assert code == 1  # one bad row
    data = json.loads(out)
    assert [lead["row"] for lead in data["leads"]] == [2, 3, 4]
    assert {(p["row"], p["field"]) for p in data["problems"]} == {(5, "employees"), (5, "need")}
    by_email = {lead["lead"]: lead for lead in data["leads"]}
    big, student = by_email["cto@bigcorp.example"], by_email["someone@gmail.com"]
    assert big["score"] > student["score"]
    reps = {r.email for r in load_settings(example_config_path()).routing.reps}
    for lead in data["leads"]:
        assert lead["grade"] in ("hot", "warm", "cold") and lead["model"] and lead["reasons"]
        assert lead["kind"] in ("rule", "fallback", "wait") and lead["pool"], lead
    for email in ("cto@bigcorp.example", "vp@acme-retail.example"):  # US reps are at work at AT
        assert by_email[email]["kind"] == "rule" and by_email[email]["rule"] and by_email[email]["rep"] in reps
    # A Thai lead at 01:00 Bangkok time: the APAC pool is off hours, so it waits (routing.when_unavailable = wait).
    assert student["kind"] == "wait" and student["rep"] is None
    # The same numbers the engine gives that lead.
    settings = load_settings(example_config_path())
    parsed = parse_lead(2, {"email": "cto@bigcorp.example", "first_name": "Ada", "title": "CTO", "country": "US", "state": "CA",
                            "employees": "1200", "industry": "SOFTWARE", "lead_source": "Demo Request",
                            "product_interest": "analytics;crm", "budget": "true", "need": "true"},
                        Canonical(settings.canonical))
    assert not isinstance(parsed, list)
    at = datetime(2025, 6, 11, 18, tzinfo=UTC)
    expected = score_lead(parsed.replace(created_at=at), (), compile_scoring(settings.scoring), at).primary
    assert big["score"] == expected.score and big["grade"] == expected.grade


def test_jsonl_samples_and_the_table(tmp_path: Path) -> None:
    sample = tmp_path / "leads.jsonl"
    sample.write_text(
        json.dumps({"email": "cto@bigcorp.example", "country": "US", "employees": 1200, "industry": "SOFTWARE", "budget": True}) + "\n"
        + "not json\n"
        + json.dumps({"email": "x@y.example", "colour": "blue"}) + "\n",
        encoding="utf-8",
    )
    code, out, _ = _run(str(sample), "--at", AT)
    assert code == 1
    assert "cto@bigcorp.example" in out and "bad row" in out
    assert "row 2, field (line): not JSON" in out
    assert 'row 3, field colour, value "blue": not a lead attribute' in out
    for column in ("score", "grade", "model", "rule", "pool", "rep"):
        assert column in out


def test_all_good_rows_exit_zero(tmp_path: Path) -> None:
    sample = tmp_path / "ok.csv"
    sample.write_text("email,country,employees\nceo@fine.example,DE,50\n", encoding="utf-8")
    code, out, _ = _run(str(sample), "--at", AT, "--json")
    assert code == 0 and json.loads(out)["problems"] == []


def test_the_shipped_sample_file_scores_and_routes_every_row() -> None:
    """README's `connector rules test examples/leads.sample.csv`: every row becomes a routed lead, exit 0."""
    sample = Path(__file__).resolve().parents[2] / "examples" / "leads.sample.csv"
    code, out, _ = _run(str(sample), "--at", "2026-12-08T15:00:00Z", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["problems"] == [] and len(data["leads"]) == len(sample.read_text(encoding="utf-8").splitlines()) - 1
    assert {lead["grade"] for lead in data["leads"]} >= {"hot", "warm", "cold"}
    assert all(lead["kind"] == "rule" and lead["rep"] for lead in data["leads"])


def test_a_bad_row_is_named_by_row_field_and_value_in_words(tmp_path: Path) -> None:
    sample = tmp_path / "leads.csv"
    sample.write_text(CSV, encoding="utf-8")
    code, out, _ = _run(str(sample), "--at", AT)
    assert code == 1
    lines = [line for line in out.splitlines() if line.startswith("bad ")]
    assert lines == [
        'bad row 5, field employees, value "many": expected a number (e.g. 250 or 1200.5)',
        'bad row 5, field need, value "maybe": expected true or false (yes/no, 1/0 also work)',
    ]
    data = json.loads(_run(str(sample), "--at", AT, "--json")[1])
    assert {(p["row"], p["field"], p["value"]) for p in data["problems"]} == {(5, "employees", "many"), (5, "need", "maybe")}


def test_sample_values_are_read_as_a_sync_reads_them_canonical_places_industries_and_bands() -> None:
    """A sample row written as the CRM holds it scores like the same person written in canonical values."""
    canonical = Canonical(load_settings(example_config_path()).canonical)
    as_typed = parse_lead(2, {"email": "cto@bigcorp.example", "country": "United States", "state": "California",
                              "employees": "100-500", "industry": "Computer Software"}, canonical)
    assert not isinstance(as_typed, list)
    assert (as_typed.country, as_typed.state, as_typed.industry) == ("US", "CA", "technology")
    assert (as_typed.employees, as_typed.employees_band) == (100, "100-500")
    assert as_typed.raw["country"] == "United States" and as_typed.raw["employees"] == "100-500"
    unknown = parse_lead(3, {"email": "x@y.example", "country": "Untied States"}, canonical)
    assert not isinstance(unknown, list) and unknown.country is None and unknown.raw["country"] == "Untied States"
    bad_band = parse_lead(4, {"email": "x@y.example", "employees": "500-100"}, canonical)
    assert isinstance(bad_band, list) and [p.field for p in bad_band] == ["employees"]
