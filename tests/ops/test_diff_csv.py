"""diff.csv is the go-live review file: values as the CRM shows them, owners by name, and why each change is made."""

from __future__ import annotations

import csv
from pathlib import Path

from connector.core.models import Owner, Patch
from connector.ops.summary import write_diff_csv

OWNERS = {"hubspot": [
    Owner(crm="hubspot", id="7", email="ana@example.com", name="Ana Lopez"),
    Owner(crm="hubspot", id="9", email=None, name="EMEA inbound", is_queue=True),
]}


def test_a_reviewer_reads_human_values_owner_names_and_reasons(tmp_path: Path) -> None:
    patch = Patch(
        crm="hubspot", object_type="contacts", record_id="101",
        changes={"owner_id": "9", "score": 0.0, "grade": "cold", "stage": "lead"},
        current={"owner_id": "7", "score": None, "grade": "Hot", "stage": "subscriber"},
        reasons={"owner_id": "routed by fallback rule emea", "score": "None -> 0.0", "grade": "'Hot' -> 'cold'",
                 "stage": "moves forward from 'subscriber' to 'lead'"},
    )
    out = tmp_path / "diff.csv"
    assert write_diff_csv(out, [patch], OWNERS) == 4
    text = out.read_text(encoding="utf-8")
    assert "None" not in text and "'" not in text and "0.0" not in text
    rows = {r["field"]: r for r in csv.DictReader(text.splitlines())}
    assert rows["owner_id"]["current_owner"] == "Ana Lopez <ana@example.com>"
    assert rows["owner_id"]["new_owner"] == "EMEA inbound (queue)"
    assert rows["owner_id"]["why"] == "new owner: routed by fallback rule emea"
    assert (rows["score"]["current"], rows["score"]["new"], rows["score"]["why"]) == ("", "0", "first score: 0")
    assert rows["score"]["reason"] == "from (empty) to 0"
    assert (rows["grade"]["current"], rows["grade"]["new"]) == ("Hot", "Cold")
    assert rows["grade"]["why"] == "the score moves the grade from Hot to Cold"
    assert rows["stage"]["why"] == "stage moves forward from subscriber to lead"


def test_without_owners_the_ids_stay_and_the_name_columns_are_empty(tmp_path: Path) -> None:
    patch = Patch(crm="salesforce", object_type="Lead", record_id="00Q1", changes={"owner_id": "005X"}, current={"owner_id": None})
    out = tmp_path / "diff.csv"
    write_diff_csv(out, [patch])
    (row,) = csv.DictReader(out.read_text(encoding="utf-8").splitlines())
    assert (row["current"], row["new"], row["current_owner"], row["new_owner"], row["why"]) == ("", "005X", "", "", "new owner")
