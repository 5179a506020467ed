"""`connector demo` as a person reads it in an 80-column terminal: nothing past the edge, every figure there."""

from __future__ import annotations

import json
import re

from click.testing import CliRunner

from connector.cli import main
from connector.ops.words import hanging


def test_demo_fits_80_columns_and_keeps_its_figures() -> None:
    result = CliRunner(env={"COLUMNS": "80"}).invoke(main, ["demo", "--contacts", "40"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    for head in ("Sandbox CRMs up: ", "Clock: ", "Leads: ", "Decisions: routed ", "Grades: ", "New leads per rep (",
                 "API calls used (whole demo): ", "A person's owner change kept: yes", "Dead-lettered: 1"):
        assert any(line.startswith(head) for line in lines), head
    # Continuation lines hang under their first line; a command in backticks is never split.
    assert all(line.startswith("    ") for line in lines if line and not re.match(r"(\S|   \S)", line))
    assert "`connector --at ISO-TIME demo`" in result.stdout and "`connector errors list`" in result.stdout
    # Unwrapped, the lines are the ones `--json` gives the figures of.
    text = " ".join(result.stdout.split())
    data = json.loads(CliRunner(env={"COLUMNS": "80"}).invoke(main, ["demo", "--contacts", "40", "--json"]).stdout)
    assert f"Leads: {data['leads']} (each counted once over the whole story) written: {data['written']} " in text
    assert f"API calls used (whole demo): {data['api_calls_total']} (backfill " in text


def test_hanging_keeps_labels_with_their_figures() -> None:
    text = hanging("   fetched 1170 (375 of them re-checked): 795 leads, routed 5 (account match 5), unchanged 1164, "
                   "next available Tue 2026-12-08 16:00 UTC", 60)
    assert all(len(line) <= 60 for line in text.splitlines())
    assert "unchanged 1164" in text and "Tue 2026-12-08 16:00 UTC" in text
    assert text.splitlines()[1].startswith("       ") and " ".join(text.split()).startswith("fetched 1170")
