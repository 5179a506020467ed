"""diff: only changed fields are written, a person's owner/stage/grade choice wins, stages move forward only."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.config import HUBSPOT_LIFECYCLE_ORDER
from connector.engine.diff import Desired, DiffRules, person_fields, plan_write
from connector.core.models import FieldDecision, Lead, Patch

RULES = DiffRules(stage_order=HUBSPOT_LIFECYCLE_ORDER)


def lead(**kw: object) -> Lead:
    return Lead(crm="hubspot", object_type="contacts", id="1", **kw)  # type: ignore[arg-type]


def test_first_write_sets_every_desired_field() -> None:
    patch = plan_write(lead(stage="lead"), Desired(owner_id="7", score=42.0, grade="warm", stage="marketingqualifiedlead"), {}, RULES)
    assert patch.changes == {"owner_id": "7", "score": 42.0, "grade": "warm", "stage": "marketingqualifiedlead"}
    assert patch.decisions["lead_status"] is FieldDecision.NOT_CONFIGURED


def test_unchanged_lead_costs_nothing() -> None:
    current = lead(owner_id="7", score=42.0, grade="warm", stage="lead")
    written = {"owner_id": "7", "score": 42.0, "grade": "warm", "stage": "lead"}
    patch = plan_write(current, Desired(owner_id="7", score=42.004, grade="Warm", stage="lead"), written, RULES)
    assert patch.is_empty
    assert set(patch.decisions.values()) <= {FieldDecision.UNCHANGED, FieldDecision.NOT_CONFIGURED}


def test_owner_changed_by_a_person_after_our_write_is_kept() -> None:
    current = lead(owner_id="99", score=10.0)
    patch = plan_write(current, Desired(owner_id="7", score=50.0), {"owner_id": "7", "score": 10.0}, RULES)
    assert "owner_id" not in patch.changes
    assert patch.decisions["owner_id"] is FieldDecision.OWNER_LOCKED
    assert patch.changes == {"score": 50.0}


@pytest.mark.parametrize(
    ("current", "want", "expected"),
    [
        ("lead", "marketingqualifiedlead", FieldDecision.WRITE),
        ("salesqualifiedlead", "marketingqualifiedlead", FieldDecision.WOULD_REGRESS),
        ("customer", "lead", FieldDecision.WOULD_REGRESS),
        (None, "lead", FieldDecision.WRITE),
        ("a_custom_stage", "lead", FieldDecision.STAGE_LOCKED),
        ("lead", "not_a_stage", FieldDecision.NOT_CONFIGURED),
    ],
)
def test_stage_moves_forward_only(current: str | None, want: str, expected: FieldDecision) -> None:
    patch = plan_write(lead(stage=current), Desired(stage=want), {}, RULES)
    assert patch.decisions["stage"] is expected
    assert ("stage" in patch.changes) is (expected is FieldDecision.WRITE)


def test_stage_moved_back_by_a_person_is_not_pushed_forward_again() -> None:
    patch = plan_write(lead(stage="lead"), Desired(stage="marketingqualifiedlead"), {"stage": "marketingqualifiedlead"}, RULES)
    assert patch.decisions["stage"] is FieldDecision.STAGE_LOCKED
    assert patch.is_empty


def test_grade_set_by_a_person_after_our_write_is_kept() -> None:
    patch = plan_write(lead(grade="Hot", score=10.0), Desired(grade="cold", score=10.0), {"grade": "cold", "score": 10.0}, RULES)
    assert patch.decisions["grade"] is FieldDecision.GRADE_LOCKED
    assert patch.is_empty
    assert "'Hot'" in patch.reasons["grade"] and "someone else" in patch.reasons["grade"]


def test_person_wins_without_grade_rewrites_a_persons_grade() -> None:
    rules = DiffRules(stage_order=HUBSPOT_LIFECYCLE_ORDER, person_wins=person_fields(["owner", "stage"]))
    patch = plan_write(lead(grade="Hot"), Desired(grade="cold"), {"grade": "cold"}, rules)
    assert patch.changes == {"grade": "cold"}


def test_person_wins_without_owner_and_stage_rewrites_them() -> None:
    rules = DiffRules(stage_order=HUBSPOT_LIFECYCLE_ORDER, person_wins=person_fields(["grade"]))
    written = {"owner_id": "7", "stage": "marketingqualifiedlead"}
    patch = plan_write(lead(owner_id="99", stage="lead"), Desired(owner_id="7", stage="marketingqualifiedlead"), written, rules)
    assert patch.changes == {"owner_id": "7", "stage": "marketingqualifiedlead"}


def test_a_persons_score_edit_is_written_back() -> None:
    patch = plan_write(lead(score=99.0), Desired(score=12.0), {"score": 12.0}, RULES)
    assert patch.changes == {"score": 12.0}


def test_fields_not_in_write_fields_are_never_written() -> None:
    rules = DiffRules(stage_order=HUBSPOT_LIFECYCLE_ORDER, write_fields=frozenset({"score"}))
    patch = plan_write(lead(), Desired(owner_id="7", score=3.0, grade="cold", stage="lead"), {}, rules)
    assert patch.changes == {"score": 3.0}


stages = st.sampled_from([None, *HUBSPOT_LIFECYCLE_ORDER])
owners = st.sampled_from([None, "1", "2", "3"])
scores = st.one_of(st.none(), st.floats(min_value=-100, max_value=500, allow_nan=False))
grades = st.sampled_from([None, "hot", "warm", "cold"])


@given(owner=owners, score=scores, grade=grades, stage=stages)
def test_diff_of_equal_values_is_empty(owner: str | None, score: float | None, grade: str | None, stage: str | None) -> None:
    current = lead(owner_id=owner, score=score, grade=grade, stage=stage)
    patch = plan_write(current, Desired(owner_id=owner, score=score, grade=grade, stage=stage), {}, RULES)
    assert patch.is_empty


@given(current=stages, want=stages, written=st.one_of(st.none(), stages))
def test_stages_never_move_back(current: str | None, want: str | None, written: str | None) -> None:
    memory = {} if written is None else {"stage": written}
    patch = plan_write(lead(stage=current), Desired(stage=want), memory, RULES)
    if "stage" in patch.changes:
        order = list(HUBSPOT_LIFECYCLE_ORDER)
        assert want is not None
        assert current is None or order.index(want) > order.index(current)


def test_unrolled_plan_write_keeps_field_order_and_decisions() -> None:
    rules = DiffRules(stage_order=("subscriber", "lead", "marketingqualifiedlead"), lead_status_order=("NEW", "OPEN"))
    lead = Lead(crm="hubspot", object_type="contacts", id="1", owner_id="9", score=10.0, grade="cold", stage="lead", lead_status="OPEN")
    patch = plan_write(lead, Desired("7", 42.0, "hot", "subscriber", "NEW", "routed by rule"), {"owner_id": "9"}, rules)
    assert isinstance(patch, Patch)
    assert list(patch.decisions) == ["owner_id", "score", "grade", "stage", "lead_status"] == list(patch.current)
    assert patch.changes == {"owner_id": "7", "score": 42.0, "grade": "hot"}
    assert patch.reasons["owner_id"] == "routed by rule"
    assert patch.decisions["stage"] is FieldDecision.WOULD_REGRESS and patch.decisions["lead_status"] is FieldDecision.WOULD_REGRESS


person_wins_lists = st.lists(st.sampled_from(["owner", "stage", "grade"]), unique=True)


@given(current=grades, want=grades, written=grades, chosen=person_wins_lists, score=scores, person_score=scores)
def test_a_persons_value_is_overwritten_only_where_person_wins_allows(
    current: str | None, want: str | None, written: str | None, chosen: list[str], score: float | None, person_score: float | None,
) -> None:
    """Grade: kept when "grade" is chosen and a person changed it; the score is written back whatever is chosen."""
    rules = DiffRules(stage_order=HUBSPOT_LIFECYCLE_ORDER, person_wins=person_fields(chosen))
    memory = {"grade": written, "score": score}
    patch = plan_write(lead(grade=current, score=person_score), Desired(grade=want, score=score), memory, rules)
    person_changed = (current or "") != (written or "")
    if "grade" in patch.changes:
        assert "grade" not in chosen or not person_changed
    elif want is not None and (current or "") != want and ("grade" not in chosen or not person_changed):
        raise AssertionError(f"grade {current!r} -> {want!r} should be written: {patch.reasons['grade']}")
    if score is not None and (person_score is None or abs(person_score - score) >= 0.005):
        assert patch.changes["score"] == score
