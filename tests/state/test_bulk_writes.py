"""The per-lead writes of a batch (issue 18): JSON columns through orjson, execute_many, one lead_states write per lead."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType

import pytest
import sqlalchemy as sa

from connector.core.models import FieldDecision
from connector.state import db as db_module
from connector.state.db import Database
from connector.state.schema import decisions_t
from connector.state.store import Store

NOW = datetime(2025, 3, 10, 9, 30, tzinfo=UTC)
EAST = timezone(timedelta(hours=5, minutes=30))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store.open(store_url) as s:
        yield s


def _json_dumps(value: object) -> str:
    """What the store wrote before orjson."""
    return json.dumps(value, default=db_module._json_default, separators=(",", ":"))


def test_json_columns_are_written_as_json_dumps_wrote_them() -> None:
    value = {
        "at": datetime(2025, 3, 10, 9, 30, 0, 5, tzinfo=UTC), "naive": datetime(2025, 1, 1), "east": datetime(2025, 1, 1, tzinfo=EAST),
        "decision": FieldDecision.WRITE, "tags": {"b", "a"}, "frozen": frozenset({3, 1}), "view": MappingProxyType({"k": 1}),
        "nested": [{"x": 1.5, "y": None, "z": True}, (1, 2)], 7: "int key", "big": 2**70,
    }
    assert db_module._dumps(value) == _json_dumps(value)
    assert json.loads(db_module._dumps({"name": "Zoë 日本"})) == {"name": "Zoë 日本"}  # UTF-8 instead of \u escapes
    with pytest.raises(TypeError, match="cannot store a object in a JSON column of the state store"):
        db_module._dumps({"x": object()})


def test_json_text_stored_before_reads_the_same() -> None:
    for text in ['{"a":1,"b":[1.5,null,true],"c":"Zo\\u00eb"}', '{"score":NaN}', '"\\ud800"', "[1e400]"]:
        assert json.dumps(db_module._loads(text)) == json.dumps(json.loads(text))
    assert db_module._loads(b'{"a":1}') == {"a": 1}  # psycopg hands over bytes


def _decision(id_: int, created_at: datetime) -> dict[str, object]:
    return {
        "id": id_, "lead_key": "hubspot:contacts:1", "kind": "route", "owner_id": "o-1", "rep": None, "rule": "r", "pool": None,
        "strategy": None, "arm": None, "score": 42.5, "grade": "B", "model": None,
        "explanation": {"at": NOW, "tags": {"y", "x"}, "name": "Zoë"}, "created_at": created_at,
    }


@pytest.mark.parametrize("created_at", [NOW, NOW.replace(microsecond=120), datetime(2025, 3, 10, 15, 0, 0, 999999, tzinfo=EAST)])
def test_execute_many_stores_rows_exactly_as_sqlalchemy_does(store_url: str, created_at: datetime) -> None:
    db = Database.open(store_url)
    try:
        with db.write() as conn:
            conn.execute(sa.insert(decisions_t), [_decision(1, created_at)])
            db.execute_many(conn, "test.decisions", lambda: sa.insert(decisions_t), [_decision(2, created_at)])
        with db.read() as conn:
            read = [row._asdict() for row in conn.execute(sa.select(decisions_t).order_by(decisions_t.c.id))]
            # The stored text too: SQLite compares datetimes as text, so it must be SQLAlchemy's to the character.
            text = [tuple(r) for r in conn.execute(sa.text("SELECT CAST(created_at AS TEXT), CAST(explanation AS TEXT) FROM decisions"))]
    finally:
        db.close()
    assert [{**r, "id": 0} for r in read[:1]] == [{**r, "id": 0} for r in read[1:]]
    assert read[1]["created_at"] == created_at and read[1]["explanation"]["tags"] == ["x", "y"]
    assert text[0] == text[1]
    if store_url.startswith("sqlite"):
        assert text[0][0] == created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def test_execute_many_reports_bad_values_like_sqlalchemy_and_needs_every_parameter(store_url: str) -> None:
    db = Database.open(store_url)
    try:
        with pytest.raises(sa.exc.StatementError, match="timezone-aware"), db.write() as conn:
            db.execute_many(conn, "test.decisions", lambda: sa.insert(decisions_t), [_decision(1, datetime(2025, 1, 1))])
        with pytest.raises(ValueError, match="lack the bound parameters"), db.write() as conn:
            by_id = sa.update(decisions_t).where(decisions_t.c.id == sa.bindparam("b_id")).values(rule=sa.bindparam("b_rule"))
            db.execute_many(conn, "test.update", lambda: by_id, [{"b_id": 1}])
    finally:
        db.close()


def test_a_lead_routed_and_remembered_in_one_transaction_is_written_once(store: Store) -> None:
    with store.routing_transaction(["route:hubspot"]) as txn:
        txn.set_routed("hubspot:contacts:1", "o-1", "ann@x.com", NOW, initial_status="new", sla_due_at=NOW + timedelta(hours=1))
        txn.remember_values("hubspot:contacts:2", {"stage": "lead"}, NOW)
    later = NOW + timedelta(minutes=5)
    with store.round_trips() as trips, store.routing_transaction(["route:hubspot"]) as txn:
        txn.set_routed("hubspot:contacts:1", "o-2", "bob@x.com", later, reassignment=True)
        txn.remember_values("hubspot:contacts:1", {"owner_id": "o-2"}, later)
        txn.remember_values("hubspot:contacts:1", {"grade": "A"}, later)
        txn.remember_values("hubspot:contacts:2", {"grade": "B"}, later)
        txn.set_routed("hubspot:contacts:3", "o-3", None, later, initial_status="open")
    assert trips.by_kind["INSERT lead_states"] == 1, trips.by_kind
    states = store.get_lead_states(["hubspot:contacts:1", "hubspot:contacts:2", "hubspot:contacts:3"])
    first, second, third = states["hubspot:contacts:1"], states["hubspot:contacts:2"], states["hubspot:contacts:3"]
    assert (first.routed_owner_id, first.routed_rep, first.routed_at, first.reassignments) == ("o-2", "bob@x.com", later, 1)
    assert (first.initial_status, first.sla_due_at) == ("new", None)  # a known initial status stays; the SLA is the new decision's
    assert (first.written, first.written_at) == ({"owner_id": "o-2", "grade": "A"}, later)
    assert (second.routed_owner_id, second.routed_at, second.reassignments) == (None, None, 0)
    assert (second.written, second.written_at) == ({"stage": "lead", "grade": "B"}, later)
    assert (third.routed_owner_id, third.initial_status, third.written, third.written_at) == ("o-3", "open", {}, None)


def test_sqlite_commits_without_an_fsync_each_and_keeps_a_large_page_cache(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = Database.open(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with db.read() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == 1  # NORMAL
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == -65536
    finally:
        db.close()
