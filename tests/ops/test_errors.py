"""`connector errors list|show|retry|discard`: dead letters are visible, retried through the pipeline, or set aside."""

from __future__ import annotations

from .conftest import Ops


def test_a_dead_letter_is_listed_retried_and_resolved_once_the_crm_accepts_it(ops_any_store: Ops) -> None:
    ops = ops_any_store
    bad = ops.ids()[2]
    ops.hubspot.fail_write_ids[bad] = ("VALIDATION_ERROR", "Property values were not valid: lifecyclestage")
    ops.run("sync", "--once")

    listed = ops.json("errors", "list")["dead_letters"]
    assert len(listed) == 1
    letter = listed[0]
    assert (letter["crm"], letter["object"], letter["record_id"], letter["code"]) == ("hubspot", "contacts", bad, "VALIDATION_ERROR")
    assert letter["status"] == "open" and letter["attempts"] == 1
    assert "not valid" in letter["message"] and letter["first_seen"] == letter["last_seen"]
    table = ops.run("errors", "list").stdout
    assert f"hubspot:contacts:{bad}" in table and "VALIDATION_ERROR" in table

    shown = ops.json("errors", "show", str(letter["id"]))
    assert shown["payload"]["record_id"] == bad and "score" in shown["payload"]["changes"]

    # Still failing: it stays open with one attempt more.
    failed = ops.json("errors", "retry", str(letter["id"]), code=1)["results"]
    assert failed[0]["outcome"] == "failed"
    again = ops.json("errors", "list")["dead_letters"][0]
    assert again["attempts"] == 2 and again["last_seen"] > again["first_seen"]

    # The CRM accepts it now: the retry writes the record and resolves the letter.
    ops.hubspot.fail_write_ids.pop(bad)
    resolved = ops.json("errors", "retry", "--all")["results"]
    assert [r["outcome"] for r in resolved] == ["resolved"]
    record = ops.hubspot.get_record("contacts", bad) or {}
    assert record.get(ops.settings().hubspot.score_property) not in (None, "")
    assert ops.json("errors", "list")["dead_letters"] == []
    assert [d["status"] for d in ops.json("errors", "list", "--status", "all")["dead_letters"]] == ["resolved"]


def test_discard_and_attempt_limit(ops: Ops) -> None:
    ids = ops.ids()
    for rid in ids[:2]:
        ops.hubspot.fail_write_ids[rid] = ("INVALID_OPTION", "bad option")
    ops.run("sync", "--once")
    first, second = (d["id"] for d in ops.json("errors", "list")["dead_letters"])
    assert ops.run("errors", "discard", str(first)).stdout.strip() == f"discarded 1 dead letter(s): {first}"
    assert [d["id"] for d in ops.json("errors", "list")["dead_letters"]] == [second]
    skipped = ops.json("errors", "retry", str(first))["results"][0]
    assert skipped["outcome"] == "skipped" and "discarded" in skipped["detail"]
    # [sync] max_dead_letter_attempts: never retried forever.
    ops.env["CONNECTOR_SYNC__MAX_DEAD_LETTER_ATTEMPTS"] = "1"
    exhausted = ops.json("errors", "retry", str(second))["results"][0]
    assert exhausted["outcome"] == "exhausted" and "max_dead_letter_attempts" in exhausted["detail"]
    forced = ops.json("errors", "retry", "--force", str(second), code=1)["results"][0]
    assert forced["outcome"] == "failed"


def test_unknown_ids_and_missing_arguments_are_usage_errors(ops: Ops) -> None:
    assert "no dead letter with id 42" in ops.run("errors", "show", "42", code=2).stderr
    assert "--all" in ops.run("errors", "discard", code=2).stderr
    assert ops.run("errors", "list").stdout.strip() == "no dead letters"
