"""Scoring engine: the example config, worked examples, decay, models, grades, stages, aggregates and config checks."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from connector.config import load_settings
from connector.canonical.domains import shipped_free_mail_domains
from connector.engine.scoring import (
    CompiledScoring,
    EventAggregates,
    ScoreOutcome,
    ScoringConfig,
    aggregate_events,
    bant_view,
    check_scoring,
    compile_scoring,
    desired_stage,
    score_lead,
    update_aggregates,
)
from connector.core.errors import ConfigError
from connector.core.models import Event, Lead, ScoreResult

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[3]


def example_scoring_table() -> dict[str, Any]:
    """The `[scoring]` table of the shipped example config."""
    return dict(tomllib.loads((REPO / "config.example.toml").read_text(encoding="utf-8"))["scoring"])


@pytest.fixture(scope="module")
def example() -> CompiledScoring:
    cfg = ScoringConfig.model_validate(example_scoring_table())
    assert check_scoring(cfg, "scoring") == []
    return compile_scoring(cfg, shipped_free_mail_domains())


def lead(**kw: Any) -> Lead:
    base: dict[str, Any] = {"crm": "hubspot", "object_type": "contacts", "id": "1", "email": "ana@acme.example", "company_name": "Acme"}
    return Lead(**{**base, **kw})


def ev(name: str, days_ago: float = 0, kind: str = "track", **props: Any) -> Event:
    return Event("ana@acme.example", name, NOW - timedelta(days=days_ago), props, kind)  # type: ignore[arg-type]


def page(path: str, days_ago: float = 0) -> Event:
    return ev("Page Viewed", days_ago, "page", path=path)


def compiled(data: dict[str, Any]) -> CompiledScoring:
    cfg = ScoringConfig.model_validate(data)
    assert check_scoring(cfg, "scoring") == []
    return compile_scoring(cfg, shipped_free_mail_domains())


def one_model(*rules: dict[str, Any], **model: Any) -> CompiledScoring:
    return compiled({"models": {"m": {"rules": list(rules), **model}}})


def score(c: CompiledScoring, events: Sequence[Event] = (), now: datetime = NOW, **lead_kw: Any) -> ScoreResult:
    return score_lead(lead(**lead_kw), events, c, now).primary


def assert_sums(result: ScoreResult) -> None:
    total = sum(c.points for c in result.contributions)
    assert result.score == round(total, 2)
    assert abs(result.score - total) < 1e-9
    assert all(round(c.points, 2) == c.points for c in result.contributions)


# ---- the example config ------------------------------------------------------------------------


def test_example_config_is_complete(example: CompiledScoring) -> None:
    cfg = example.config
    rules = [r for m in cfg.models.values() for r in m.rules]
    forms = {r.form for r in rules}
    assert len(rules) >= 30
    assert forms == {"fit", "behaviour", "engagement"}
    assert any(r.points < 0 for r in rules if r.form == "fit") and any(r.points < 0 for r in rules if r.form == "behaviour")
    assert {"core", "payments"} <= set(cfg.models)
    assert [b.name for b in cfg.grades] == ["hot", "warm", "cold"]
    assert cfg.mql_threshold is not None
    assert [(s.days, s.points) for s in cfg.models["core"].inactivity] == [(30, -15), (60, -30), (90, -50)]
    assert {"hubspot", "salesforce"} <= set(cfg.stages)


def test_example_config_loads_through_settings(tmp_path: Path) -> None:
    path = tmp_path / "connector.toml"
    path.write_text((REPO / "config.example.toml").read_text(encoding="utf-8"), encoding="utf-8")
    settings = load_settings(path)
    assert "core" in settings.scoring.models


def test_example_scores_a_strong_lead_hot(example: CompiledScoring) -> None:
    events = [page("/pricing", d) for d in (0, 1, 2)] + [ev("Form Submitted", 1, form_id="demo-request"), ev("Signed Up", 2)]
    result = score_lead(
        lead(title="CTO", country="US", industry="SOFTWARE", employees=300, budget=True, authority=True, need=True, timeframe=True),
        events, example, NOW,
    )
    core = result.by_model["core"]
    assert core.grade == "hot" and core.is_mql
    assert core.stage == "marketingqualifiedlead" and core.lead_status == "OPEN"
    assert "payments" not in result.by_model  # audience: product_interest contains payments
    assert_sums(core)


def test_example_opens_alone_never_make_a_lead_hot(example: CompiledScoring) -> None:
    opens = [ev("Email Opened", d / 10) for d in range(500)]
    outcome = score_lead(
        lead(product_interest=("payments",), engagement={"email_opens": 10_000}), opens, example, NOW,
    )
    assert outcome.by_model.keys() == {"core", "payments"}
    for result in outcome.by_model.values():
        assert result.grade != "hot"
        assert result.score < 60


def test_example_free_mail_competitor_and_careers_lower_the_score(example: CompiledScoring) -> None:
    base: dict[str, Any] = {"title": "CTO", "country": "US", "industry": "SOFTWARE", "employees": 300}
    good = score(example, [page("/pricing")], **base)
    assert score(example, [page("/pricing")], **{**base, "email": "ana@gmail.com"}).score < good.score
    assert score(example, [page("/pricing")], **{**base, "email": "ana@rivalsoft.example"}).score < good.score
    assert score(example, [page("/pricing"), page("/careers")], **base).score < good.score
    assert score(example, [page("/pricing"), ev("Unsubscribed")], **base).score < good.score
    assert score(example, [page("/pricing"), ev("Meeting Cancelled")], **base).score < good.score


def test_example_salesforce_stage_and_rating(example: CompiledScoring) -> None:
    result = score_lead(lead(crm="salesforce", object_type="Lead", title="CTO", country="US"), [page("/pricing")], example, NOW).primary
    assert result.stage == "Open - Not Contacted"
    assert result.grade_label == result.grade.capitalize()


# ---- worked examples from the product research -------------------------------------------------


@pytest.mark.parametrize(("actions", "points", "is_mql"), [(0, 0, False), (3, 15, False), (4, 20, True), (6, 30, True)])
def test_key_actions_cross_the_threshold(actions: int, points: float, is_mql: bool) -> None:
    c = compiled({
        "mql_threshold": 20,
        "models": {"product": {"rules": [{"name": "key action", "event": ["Signed Up", "Task Created", "Project Created"], "points": 5}]}},
    })
    names = ["Signed Up", "Task Created", "Project Created"]
    result = score(c, [ev(names[i % 3], i / 24) for i in range(actions)])
    assert result.score == points
    assert result.is_mql is is_mql


LADDER = [{"days": 30, "points": -15}, {"days": 60, "points": -30}, {"days": 90, "points": -50}]


@pytest.mark.parametrize(("idle_days", "decay"), [(0, 0), (29.9, 0), (30, -15), (59, -15), (60, -30), (89.99, -30), (90, -50), (400, -50)])
def test_inactivity_ladder(idle_days: float, decay: float) -> None:
    c = one_model({"name": "fit", "when": {"field": "country", "op": "eq", "value": "US"}, "points": 100}, inactivity=LADDER)
    result = score(c, [ev("Signed Up", idle_days)], country="US")
    assert result.score == 100 + decay
    lines = [x for x in result.contributions if x.source.startswith("decay:")]
    assert [x.points for x in lines] == ([decay] if decay else [])
    assert all(x.decay == -x.points for x in lines)


@pytest.mark.parametrize(
    ("event_days", "last_activity_days", "created_days", "decay"),
    [
        (100, 10, None, 0),  # the CRM's last activity is later than the latest event
        (10, 100, None, 0),  # the latest event is later than the CRM's last activity
        (None, 65, None, -30),
        (None, None, 45, -15),  # creation counts as activity
        (100, None, 5, 0),  # an event tracked before the lead was created
        (None, None, None, -50),  # no sign of life at all: inactive for ever
    ],
)
def test_inactivity_reference(event_days: float | None, last_activity_days: float | None, created_days: float | None, decay: float) -> None:
    c = one_model({"name": "fit", "when": {"field": "country", "op": "present"}, "points": 60}, inactivity=LADDER)
    events = [ev("Signed Up", event_days)] if event_days is not None else []
    result = score(
        c, events, country="US",
        last_activity_at=NOW - timedelta(days=last_activity_days) if last_activity_days is not None else None,
        created_at=NOW - timedelta(days=created_days) if created_days is not None else None,
    )
    assert result.score == 60 + decay


@pytest.mark.parametrize(("visits", "points"), [(1, 5), (2, 10), (5, 25), (9, 25)])
def test_repeated_pricing_visits_score_more_up_to_the_cap(visits: int, points: float) -> None:
    c = one_model({"name": "pricing", "event": "Page Viewed", "where": {"field": "properties.path", "op": "matches", "value": "^/pricing"}, "points": 5, "cap": 25})
    result = score(c, [page("/pricing", i) for i in range(visits)] + [page("/about")])
    assert result.score == points
    assert result.contributions[0].source == f"event:Page Viewed x{visits}"


def test_page_weights_pricing_and_demo_above_about(example: CompiledScoring) -> None:
    scores = {p: score(example, [page(p)]).score for p in ("/pricing", "/demo", "/about")}
    assert scores["/demo"] > scores["/about"] and scores["/pricing"] > scores["/about"]
    clicks = score(example, [ev("Email Clicked")]).score
    opens = score(example, [ev("Email Opened")]).score
    assert clicks > opens


# ---- decay, windows, caps ----------------------------------------------------------------------


@pytest.mark.parametrize(("days_ago", "points", "decay"), [(0, 10, 0), (14, 5, 5), (28, 2.5, 7.5), (7, 7.07, 2.93)])
def test_half_life(days_ago: float, points: float, decay: float) -> None:
    c = one_model({"name": "demo", "event": "Demo Requested", "points": 10, "half_life_days": 14})
    result = score(c, [ev("Demo Requested", days_ago)])
    assert (result.score, result.contributions[0].decay) == (points, decay)


def test_half_life_with_cap_decays_from_the_cap() -> None:
    c = one_model({"name": "demo", "event": "Demo Requested", "points": 10, "cap": 10, "half_life_days": 14})
    result = score(c, [ev("Demo Requested", 14), ev("Demo Requested", 14)])  # 2 x 10 x 0.5 = 10, at the cap
    assert (result.score, result.contributions[0].decay) == (10, 0)
    result = score(c, [ev("Demo Requested", 28), ev("Demo Requested", 28)])
    assert (result.score, result.contributions[0].decay) == (5, 5)


@pytest.mark.parametrize("n", [3, 64, 65, 200])  # counts up to 64 read a prebuilt text and fresh value; more are worked out
def test_a_fading_rules_line_names_its_count_and_what_fading_took_whatever_the_count(n: int) -> None:
    c = one_model({"name": "visits", "event": "Page Viewed", "points": 1, "cap": 100, "half_life_days": 14})
    [line] = score(c, [page("/product", 14)] * n).contributions
    assert line.source == f"event:Page Viewed x{n}"
    assert (line.points, line.decay) == (round(min(n * 0.5, 100), 2), round(min(n, 100) - min(n * 0.5, 100), 2))


@pytest.mark.parametrize(("days", "counted"), [([1, 5, 29.9], 3), ([1, 30, 31], 1), ([45, 60], 0)])
def test_window(days: list[float], counted: int) -> None:
    c = one_model({"name": "product", "event": "Page Viewed", "points": 2, "window_days": 30})
    result = score(c, [page("/product", d) for d in days])
    assert result.score == 2 * counted


def test_negative_cap() -> None:
    c = one_model({"name": "careers", "event": "Page Viewed", "where": {"field": "properties.path", "op": "contains", "value": "careers"}, "points": -10, "cap": 20})
    assert score(c, [page("/careers", d) for d in range(5)]).score == -20


def test_events_after_now_are_ignored() -> None:
    c = one_model({"name": "signup", "event": "Signed Up", "points": 5})
    assert score(c, [ev("Signed Up", -1), ev("Signed Up", 1)]).score == 5


def test_kind_filter_and_lead_gate() -> None:
    c = one_model(
        {"name": "pages", "kind": "page", "points": 1},
        {"name": "us pricing", "event": "Page Viewed", "when": {"field": "country", "op": "eq", "value": "US"}, "points": 10},
    )
    events = [page("/x"), ev("Page Viewed")]  # the second is a track event with the same name
    assert score(c, events, country="US").score == 1 + 20
    assert score(c, events, country="FI").score == 1


# ---- fit rules and context ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "lead_kw", "fires"),
    [
        ({"field": "region", "op": "eq", "value": "EMEA"}, {"country": "fi"}, True),
        ({"field": "region", "op": "eq", "value": "EMEA"}, {"country": "US"}, False),
        ({"field": "is_free_mail", "op": "eq", "value": True}, {"email": "x@GMail.com"}, True),
        ({"field": "is_free_mail", "op": "eq", "value": True}, {"email": "x@extra-free.example"}, True),
        ({"field": "is_free_mail", "op": "eq", "value": True}, {"email": "x@acme.example"}, False),
        ({"field": "is_competitor", "op": "eq", "value": True}, {"email": "x@eu.rival.example"}, True),
        ({"field": "is_competitor", "op": "eq", "value": True}, {"company_domain": "Rival.Example"}, True),
        ({"field": "is_competitor", "op": "eq", "value": True}, {"email": "x@notrival.example"}, False),
        ({"field": "bant", "op": "eq", "value": "warm"}, {"need": True, "budget": True}, True),
        ({"field": "model", "op": "eq", "value": "m"}, {}, True),
        ({"field": "title", "op": "matches", "value": r"\b(vp|director)\b"}, {"title": "Director of IT"}, True),
        ({"field": "employees", "op": "between", "value": [50, 999]}, {"employees": 1000}, False),
        ({"field": "product_interest", "op": "contains", "value": "crm"}, {"product_interest": ("CRM",)}, True),
        ({"field": "lead_source", "op": "not_in", "value": ["OFFLINE"]}, {"lead_source": "REFERRALS"}, True),
        ({"any": [{"field": "industry", "op": "missing"}, {"field": "industry", "op": "eq", "value": "RETAIL"}]}, {}, True),
        ({"not": {"field": "industry", "op": "missing"}}, {}, False),
    ],
)
def test_fit_rules_and_context(when: dict[str, Any], lead_kw: dict[str, Any], fires: bool) -> None:
    c = compiled({
        "free_mail_domains": ["extra-free.example"],
        "competitor_domains": ["rival.example"],
        "regions": {"EMEA": ["FI", "GB"], "NA": ["US"]},
        "models": {"m": {"rules": [{"name": "r", "when": when, "points": -7.5}]}},
    })
    assert score(c, **lead_kw).score == (-7.5 if fires else 0)


def test_the_engine_receives_the_shipped_free_mail_domains_and_adds_the_configs_or_turns_them_off() -> None:
    rule = {"name": "free", "when": {"field": "is_free_mail", "op": "eq", "value": True}, "points": -10}
    data: dict[str, Any] = {"free_mail_domains": ["Own.example"], "models": {"m": {"rules": [rule]}}}
    shipped = frozenset({"gmail.com"})  # the packages' lists arrive as data: the engine itself holds none
    on = compile_scoring(ScoringConfig.model_validate(data), shipped)
    assert (score(on, email="a@gmail.com").score, score(on, email="a@own.example").score) == (-10, -10)
    assert compile_scoring(ScoringConfig.model_validate(data)).free_mail == frozenset({"own.example"})  # nothing shipped
    off = compile_scoring(ScoringConfig.model_validate({**data, "use_shipped_free_mail": False}), shipped)
    assert score(off, email="a@gmail.com").score == 0
    assert score(off, email="a@own.example").score == -10


def test_engagement_rules() -> None:
    c = one_model(
        {"name": "pricing views", "engagement": "pricing_page_views", "points": 4, "cap": 20},
        {"name": "clicks", "engagement": "email_clicks", "points": 0.5},
    )
    result = score(c, engagement={"pricing_page_views": 3, "email_clicks": 7, "page_views": 50})
    assert [(x.rule, x.points, x.source) for x in result.contributions] == [
        ("pricing views", 12, "engagement:pricing_page_views x3"),
        ("clicks", 3.5, "engagement:email_clicks x7"),
    ]
    assert score(c, engagement={"pricing_page_views": 30}).score == 20
    assert score(c, engagement={"pricing_page_views": "lots", "email_clicks": -3}).score == 0


def test_rounding_each_contribution_to_cents() -> None:
    c = one_model(*({"name": f"r{i}", "when": {"field": "country", "op": "present"}, "points": 0.333} for i in range(3)))
    result = score(c, country="US")
    assert [x.points for x in result.contributions] == [0.33, 0.33, 0.33]
    assert result.score == 0.99
    assert_sums(result)


@pytest.mark.parametrize(("points", "expected", "clamp"), [(150, 100, "ceiling"), (-40, 0, "floor"), (55, 55, None)])
def test_floor_and_ceiling_are_explained(points: float, expected: float, clamp: str | None) -> None:
    c = one_model({"name": "r", "when": {"field": "country", "op": "present"}, "points": points}, floor=0, ceiling=100)
    result = score(c, country="US")
    assert result.score == expected
    assert [x.rule for x in result.contributions if x.source.startswith("clamp:")] == ([clamp] if clamp else [])
    assert_sums(result)


# ---- grades, BANT, models, stages ---------------------------------------------------------------


@pytest.mark.parametrize(("points", "grade"), [(100, "hot"), (60, "hot"), (59.99, "warm"), (30, "warm"), (29, "cold"), (-5, "cold")])
def test_default_grade_bands(points: float, grade: str) -> None:
    c = one_model({"name": "r", "when": {"field": "country", "op": "present"}, "points": points})
    assert score(c, country="US").grade == grade


def test_letter_grades() -> None:
    c = compiled({
        "grades": [{"name": "A", "min": 75}, {"name": "B", "min": 50, "max": 75}, {"name": "C", "min": 25}, {"name": "D"}],
        "models": {"m": {"rules": [{"name": "r", "engagement": "page_views", "points": 1}]}},
    })
    assert [score(c, engagement={"page_views": n}).grade for n in (80, 50, 49, 0)] == ["A", "B", "C", "D"]


@pytest.mark.parametrize(
    ("budget", "authority", "need", "timeframe", "view"),
    [
        (True, True, True, True, "hot"),
        (None, True, True, True, "warm"),
        (True, True, True, None, "warm"),
        (False, False, True, False, "warm"),
        (True, None, True, True, "warm"),
        (True, True, None, True, "cold"),
        (True, True, False, True, "cold"),
        (None, None, None, None, "cold"),
    ],
)
def test_bant_view(budget: bool | None, authority: bool | None, need: bool | None, timeframe: bool | None, view: str) -> None:
    the_lead = lead(budget=budget, authority=authority, need=need, timeframe=timeframe)
    assert bant_view(the_lead) == view
    c = compiled({
        "grade_from": "bant",
        "grades": [{"name": "A", "min": 50}, {"name": "B", "min": 20}, {"name": "D"}],
        "bant_grades": {"hot": "A", "warm": "B", "cold": "D"},
    })
    result = score_lead(the_lead, [], c, NOW).primary
    assert result.bant == view
    assert result.grade == {"hot": "A", "warm": "B", "cold": "D"}[view]


def test_no_models_scores_zero_cold() -> None:
    c = compiled({})
    outcome = score_lead(lead(), [ev("Signed Up")], c, NOW)
    assert (outcome.primary.model, outcome.primary.score, outcome.primary.grade, dict(outcome.by_model)) == ("none", 0, "cold", {})


MODELS = {
    "core": {"rules": [{"name": "country", "when": {"field": "country", "op": "eq", "value": "US"}, "points": 20}]},
    "payments": {
        "audience": {"field": "product_interest", "op": "contains", "value": "payments"},
        "rules": [{"name": "api key", "event": "API Key Created", "points": 40}],
    },
}


@pytest.mark.parametrize(
    ("write_model", "interest", "events", "primary", "score_", "models"),
    [
        ("best", (), [], "core", 20, {"core"}),
        ("best", ("payments",), [], "core", 20, {"core", "payments"}),
        ("best", ("payments",), ["API Key Created"], "payments", 40, {"core", "payments"}),
        ("payments", (), ["API Key Created"], "payments", 0, {"core"}),  # outside the named model's audience
        ("core", ("payments",), ["API Key Created"], "core", 20, {"core", "payments"}),
    ],
)
def test_models_and_write_model(write_model: str, interest: tuple[str, ...], events: list[str], primary: str, score_: float, models: set[str]) -> None:
    c = compiled({"write_model": write_model, "models": MODELS})
    outcome = score_lead(lead(country="US", product_interest=interest), [ev(n) for n in events], c, NOW)
    assert (outcome.primary.model, outcome.primary.score) == (primary, score_)
    assert set(outcome.by_model) == models


def test_best_ties_go_to_the_first_model() -> None:
    c = compiled({"models": {"b": MODELS["core"], "a": MODELS["core"]}})
    assert score(c, country="US").model == "b"


STAGES = {
    "mql_threshold": 45,
    "stages": {
        "hubspot": {"by_grade": {"hot": "salesqualifiedlead"}, "mql": "marketingqualifiedlead", "default": "lead", "lead_status_by_grade": {"hot": "OPEN"}},
        "hubspot:leads": {"by_grade": {"hot": "qualified-stage"}},
        "salesforce": {"default": "Open - Not Contacted", "grade_labels": {"hot": "Hot", "warm": "Warm", "cold": "Cold"}},
    },
}


@pytest.mark.parametrize(
    ("crm", "object_type", "points", "stage", "lead_status", "label"),
    [
        ("hubspot", "contacts", 70, "salesqualifiedlead", "OPEN", None),
        ("hubspot", "contacts", 50, "marketingqualifiedlead", None, None),
        ("hubspot", "contacts", 40, "lead", None, None),
        ("hubspot", "leads", 70, "qualified-stage", None, None),
        ("hubspot", "leads", 40, None, None, None),
        ("salesforce", "Lead", 70, "Open - Not Contacted", None, "Hot"),
        ("salesforce", "Lead", 10, "Open - Not Contacted", None, "Cold"),
    ],
)
def test_stage_mapping(crm: str, object_type: str, points: float, stage: str | None, lead_status: str | None, label: str | None) -> None:
    c = compiled({**STAGES, "models": {"m": {"rules": [{"name": "r", "engagement": "n", "points": 1}]}}})
    result = score_lead(lead(crm=crm, object_type=object_type, engagement={"n": points}), [], c, NOW).primary
    assert (result.stage, result.lead_status, result.grade_label) == (stage, lead_status, label)
    target = desired_stage(result, crm, object_type, c)
    assert (target.stage, target.lead_status, target.grade_label) == (stage, lead_status, label)


# ---- aggregates -------------------------------------------------------------------------------


def example_events() -> list[Event]:
    return [
        page("/pricing", 3), page("/pricing", 40), page("/product", 2), page("/product", 35), page("/about", 1),
        ev("Form Submitted", 5, form_id="ebook-crm"), ev("Signed Up", 6), ev("Task Created", 5.5), ev("Email Opened", 4),
        ev("Email Clicked", 4, campaign="product-launch"), ev("Webinar Attended", 20), ev("Identify", 0.5, "identify"),
    ]


@pytest.mark.parametrize("later_days", [0, 1, 17.5, 45, 120])
def test_aggregates_score_like_raw_events(example: CompiledScoring, later_days: float) -> None:
    events = example_events()
    the_lead = lead(title="CTO", country="US", product_interest=("payments",))
    now = NOW + timedelta(days=later_days)
    raw = score_lead(the_lead, events, example, now)
    batch = aggregate_events(events, example)
    incremental = EventAggregates(example.signature)
    for e in reversed(events):  # out of order on purpose
        incremental = update_aggregates(incremental, e, example)
    assert incremental.event_count == batch.event_count == len(events)
    for agg in (batch, incremental):
        via_agg = score_lead(the_lead, agg, example, now)
        assert via_agg.by_model.keys() == raw.by_model.keys()
        for name, result in raw.by_model.items():
            assert via_agg.by_model[name].score == pytest.approx(result.score, abs=0.011)
            assert [c.rule for c in via_agg.by_model[name].contributions] == [c.rule for c in result.contributions]


def test_identify_events_are_not_activity() -> None:
    c = one_model({"name": "r", "when": {"field": "country", "op": "present"}, "points": 50}, inactivity=LADDER)
    assert score(c, [ev("Signed Up", 40), ev("Identify", 1, "identify")], country="US").score == 35


def test_aggregates_from_another_config_are_refused(example: CompiledScoring) -> None:
    other = one_model({"name": "r", "event": "Signed Up", "points": 1})
    agg = aggregate_events([ev("Signed Up")], other)
    with pytest.raises(ValueError, match="rebuild them with aggregate_events"):
        score_lead(lead(), agg, example, NOW)


def test_outcome_is_a_value(example: CompiledScoring) -> None:
    first = score_lead(lead(country="US"), example_events(), example, NOW)
    again = score_lead(lead(country="US"), list(reversed(example_events())), example, NOW)
    assert isinstance(first, ScoreOutcome)
    assert first == again


# ---- config checks ----------------------------------------------------------------------------

FIT = {"name": "fit", "when": {"field": "country", "op": "eq", "value": "US"}, "points": 10}


def model_with(*rules: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"models": {"core": {"rules": [FIT, *rules], **extra}}}


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        (model_with({"name": "x", "when": {"field": "contry", "op": "eq", "value": "US"}, "points": 1}), "scoring.models.core.rules[1].when.field", "unknown field"),
        (model_with({"name": "x", "when": {"all": [FIT["when"], {"field": "employees", "op": "matches", "value": "1"}]}, "points": 1}), "scoring.models.core.rules[1].when.all[1].op", "does not apply to number"),
        (model_with({"name": "x", "when": {"field": "score", "op": "gt", "value": 5}, "points": 1}), "scoring.models.core.rules[1].when.field", "result of scoring"),
        (model_with({"name": "x", "event": "Page Viewed", "where": {"field": "url", "op": "eq", "value": "/"}, "points": 1}), "scoring.models.core.rules[1].where.field", "known: name, kind, properties.NAME"),
        (model_with({"name": "fit", "when": FIT["when"], "points": 1}), "scoring.models.core.rules[1].name", "used twice"),
        (model_with({"name": "x", "event": "Unsubscribed", "points": -5, "half_life_days": 10}), "scoring.models.core.rules[1].half_life_days", "cannot fade"),
        (model_with({"name": "x", "event": "Unsubscribed", "points": -5, "window_days": 10}), "scoring.models.core.rules[1].window_days", "cannot expire"),
        (model_with({"name": "x", "event": "Email Opened", "points": 1}), "scoring.models.core.rules[1].cap", "without a cap"),
        (model_with({"name": "x", "engagement": "email_opens", "points": 1}), "scoring.models.core.rules[1].cap", "without a cap"),
        (model_with({"name": "x", "kind": "track", "points": 1}), "scoring.models.core.rules[1].cap", "low-intent"),
        (model_with({"name": "x", "event": ["Email Opened", "Email Clicked"], "points": 5, "cap": 40}, {"name": "y", "engagement": "email_opens", "points": 1, "cap": 20}), "scoring.models.core.rules", "reaching 'hot'"),
        (model_with(inactivity=[{"days": 60, "points": -30}, {"days": 30, "points": -30}]), "scoring.models.core.inactivity[1].days", "fewest to most"),
        (model_with(inactivity=[{"days": 30, "points": -30}, {"days": 60, "points": -15}]), "scoring.models.core.inactivity[1].points", "at least as many"),
        (model_with(floor=100, ceiling=0), "scoring.models.core.floor", "not below ceiling"),
        (model_with(audience={"field": "grade", "op": "eq", "value": "hot"}), "scoring.models.core.audience.field", "result of scoring"),
        ({"models": {"core": {"rules": []}}}, "scoring.models.core.rules", "no rules"),
        ({"write_model": "enterprise", **model_with()}, "scoring.write_model", "unknown model 'enterprise'; known: best, core"),
        ({"grades": [{"name": "hot", "min": 60}, {"name": "warm", "min": 30, "max": 70}, {"name": "cold"}]}, "scoring.grades[1].max", "overlaps"),
        ({"grades": [{"name": "hot", "min": 60}, {"name": "warm", "min": 30, "max": 50}, {"name": "cold"}]}, "scoring.grades[1].max", "gap"),
        ({"grades": [{"name": "warm", "min": 30}, {"name": "hot", "min": 60}, {"name": "cold"}]}, "scoring.grades[1].min", "unordered"),
        ({"grades": [{"name": "hot", "min": 60, "max": 100}, {"name": "cold"}]}, "scoring.grades[0].max", "top band"),
        ({"grades": [{"name": "hot", "min": 60}, {"name": "cold", "min": 0}]}, "scoring.grades[1].min", "lowest band"),
        ({"grades": [{"name": "hot", "min": 60}, {"name": "hot"}]}, "scoring.grades[1].name", "listed twice"),
        ({"grades": [{"name": "hot"}, {"name": "cold"}]}, "scoring.grades[0].min", "only the lowest band"),
        ({"grade_from": "bant", "bant_grades": {"hot": "A", "warm": "warm", "cold": "cold"}}, "scoring.bant_grades.hot", "not one of the grades"),
        ({"free_mail_domains": ["@gmail.com"]}, "scoring.free_mail_domains[0]", "not a domain"),
        ({"competitor_domains": ["rival"]}, "scoring.competitor_domains[0]", "not a domain"),
        ({"regions": {"NA": ["US"], "AMER": ["BR", "us"]}}, "scoring.regions.AMER[1]", "already in region"),
        ({"stages": {"pipedrive": {"default": "x"}}}, "scoring.stages.pipedrive", "keyed by CRM"),
        ({"stages": {"hubspot": {"by_grade": {"super": "x"}}}}, "scoring.stages.hubspot.by_grade.super", "not one of the grades"),
        ({"stages": {"salesforce": {"grade_labels": {"hot": " "}}}}, "scoring.stages.salesforce.grade_labels.hot", "empty"),
    ],
)
def test_check_scoring_reports_key_paths(data: dict[str, Any], path: str, message: str) -> None:
    problems = check_scoring(ScoringConfig.model_validate(data), "scoring")
    assert [p.path for p in problems] == [path], problems
    assert message in problems[0].message


@pytest.mark.parametrize(
    ("scoring", "path"),
    [
        ({"models": {"core": {"rules": [{"name": "x", "points": 1}]}}}, "scoring.models.core.rules[0]"),
        ({"models": {"core": {"rules": [{"name": "x", "points": 1, "event": "A", "engagement": "b"}]}}}, "scoring.models.core.rules[0]"),
        ({"models": {"core": {"rules": [{**FIT, "cap": 3}]}}}, "scoring.models.core.rules[0]"),
        ({"models": {"core": {"rules": [{"name": "x", "engagement": "b", "points": 1, "window_days": 3}]}}}, "scoring.models.core.rules[0]"),
        ({"models": {"core": {"rules": [{"name": "x", "event": [], "points": 1}]}}}, "scoring.models.core.rules[0]"),
        ({"models": {"core": {"rules": [{**FIT, "pionts": 1}]}}}, "scoring.models.core.rules[0].pionts"),
        ({"models": {"core": {"inactivity": [{"days": 30, "points": 15}], "rules": [FIT]}}}, "scoring.models.core.inactivity[0].points"),
        ({"grades": []}, "scoring.grades"),
        ({"grade_from": "rating"}, "scoring.grade_from"),
    ],
)
def test_shape_errors_carry_paths(tmp_path: Path, scoring: dict[str, Any], path: str) -> None:
    with pytest.raises(ValidationError):
        ScoringConfig.model_validate(scoring)
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg_file, overrides={"scoring": scoring})
    assert path in [p.path for p in info.value.problems]


def test_empty_scoring_section_is_valid() -> None:
    assert check_scoring(ScoringConfig(), "scoring") == []
