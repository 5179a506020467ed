"""Engine throughput on one core: score, route and diff per second on the example config grown to 200 reps / 10 pools."""

from __future__ import annotations

import argparse
import gc
import random
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.table import Table

from connector.config import example_config_path
from connector.engine.diff import Desired, DiffRules, plan_write
from connector.engine.routing import (
    CompiledRouting,
    RoutingConfig,
    RoutingContext,
    RoutingState,
    apply_change,
    availability_snapshot,
    build_reps,
    check_routing,
    compile_routing,
    required_scopes,
    route_lead,
    state_from_counters,
)
from connector.engine.scoring import (
    CompiledScoring,
    EventAggregates,
    ScoreOutcome,
    ScoringConfig,
    aggregate_events,
    check_scoring,
    compile_scoring,
    score_lead,
)
from connector.core.models import Account, Event, Lead, Owner, Patch, Rep, RoutingDecision
from connector.pipeline.stages import desired_for
from connector.sandbox.seed import INDUSTRIES, PRODUCTS, SEED_REPS, SeedPerson, generate_companies, generate_people

# Tuesday 15:00 UTC: the Americas and Europe are at work, Asia-Pacific mostly is not (as on a real afternoon).
NOW = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)
BATCH = 200  # [sync] batch_size: one availability snapshot per batch, as the pipeline does
SAMPLE = 2_000  # leads whose raw events are kept to time aggregation (the rest keep only their aggregates)
EVENT_DAYS = 120.0
REPS = 200
EXTRA_POOLS: dict[str, tuple[str, str]] = {
    # new pool -> (its strategy, the example rule re-pointed to it)
    "us_west": ("round_robin", "us-west"),
    "us_east": ("round_robin", "us-east"),
    "canada": ("least_loaded", "canada"),
    "latam": ("best_match", "latam"),
    "mid_market": ("least_loaded", "qualified-mid-market"),
}
# (time zone, holiday country, working hours or None = always, pools the rep joins)
REP_PLACES: tuple[tuple[str, str, str | None, tuple[str, ...]], ...] = (
    ("America/Los_Angeles", "US", "08:00-17:00", ("us_west", "smb")),
    ("America/Denver", "US", "08:00-17:00", ("us_west",)),
    ("America/New_York", "US", "09:00-17:30", ("us_east", "smb")),
    ("America/Chicago", "US", "08:00-18:00", ("us_east", "mid_market")),
    ("America/Toronto", "CA", "09:00-17:00", ("canada",)),
    ("America/Sao_Paulo", "BR", "09:00-18:00", ("latam",)),
    ("America/Mexico_City", "MX", "09:00-18:00", ("latam", "mid_market")),
    ("Europe/London", "GB", "08:30-17:30", ("emea", "mid_market")),
    ("Europe/Berlin", "DE", "08:00-17:00", ("emea", "enterprise")),
    ("Europe/Helsinki", "FI", "08:00-16:00", ("emea",)),
    ("Asia/Bangkok", "TH", "09:00-18:00", ("apac",)),
    ("Asia/Tokyo", "JP", None, ("apac",)),
    ("America/New_York", "US", None, ("partners", "enterprise")),
)
PAGES = ("/", "/pricing", "/pricing/enterprise", "/demo", "/book-a-demo", "/product/analytics", "/features",
         "/integrations", "/about", "/careers", "/blog/crm-tips", "/docs/api")
FORMS = ("demo-request", "contact-sales", "ebook-crm-guide", "whitepaper-roi", "webinar-q3", "newsletter")
CAMPAIGNS = ("product-launch", "newsletter", "nurture-3")
# (event name, kind, weight): Segment-style page/track/identify calls
EVENT_MIX: tuple[tuple[str, str, float], ...] = (
    ("Page Viewed", "page", 0.50), ("Email Opened", "track", 0.15), ("Email Clicked", "track", 0.08),
    ("Form Submitted", "track", 0.05), ("Signed Up", "track", 0.02), ("Task Created", "track", 0.04),
    ("Project Created", "track", 0.02), ("Webinar Attended", "track", 0.02), ("Meeting Booked", "track", 0.01),
    ("Meeting Cancelled", "track", 0.005), ("API Key Created", "track", 0.01), ("Test Payment Created", "track", 0.03),
    ("Unsubscribed", "track", 0.005), ("identify", "identify", 0.04),
)


@dataclass(frozen=True)
class Workload:
    """Everything one timed run needs, built once and outside the timings."""

    scoring: CompiledScoring
    routing: CompiledRouting
    reps: list[Rep]
    leads: list[Lead]
    events: list[list[Event]]  # raw events of the first SAMPLE leads
    event_count: int  # events of all leads
    aggregates: list[EventAggregates]
    accounts: list[Account | None]
    known_owner_ids: Mapping[str, frozenset[str]]
    free_mail: frozenset[str]
    diff_rules: Mapping[str, DiffRules]
    written: list[Mapping[str, Any]]
    scoring_rules: int
    routing_rules: int
    pools: int


def routing_table(base: Mapping[str, Any]) -> dict[str, Any]:
    """The example `[routing]` grown to 200 reps and 10 pools; its 20 rules stay, five re-pointed to the new pools."""
    table = {**base, "reps": [dict(r) for r in base["reps"]], "pools": {k: dict(v) for k, v in base["pools"].items()}}
    table["rules"] = [dict(r) for r in base["rules"]]
    for name, (strategy, _) in EXTRA_POOLS.items():
        table["pools"][name] = {"description": f"generated pool {name}", "reps": [], "strategy": strategy}
    rng = random.Random(11)
    for i in range(REPS - len(table["reps"])):
        zone, country, hours, pools = REP_PLACES[i % len(REP_PLACES)]
        email = f"rep{i:03d}@example-corp.test"
        rep: dict[str, Any] = {
            "email": email, "name": f"Rep {i:03d}", "timezone": zone, "country": country,
            "tier": "senior" if i % 5 == 0 else "standard", "weight": 1 + i % 3,
            "industries": rng.sample(INDUSTRIES, 3), "products": rng.sample(PRODUCTS, 2),
            "languages": ["en"], "regions": [pools[0]],
        }
        if hours is not None:
            rep["working_hours"] = hours
        if i % 2:
            rep["max_open_leads"] = 5_000
        if i % 4 == 1:
            rep["max_leads_per_day"] = 2_000
        table["reps"].append(rep)
        for pool in pools:
            table["pools"][pool]["reps"].append(email)
    for rule in table["rules"]:
        for pool, (_, rule_name) in EXTRA_POOLS.items():
            if rule["name"] == rule_name:
                rule["pool"] = pool
    return table


def owners_for(cfg: RoutingConfig) -> dict[str, list[Owner]]:
    """CRM users for every configured rep (ids derived from the email); the example's departed rep is inactive."""
    inactive = {r.email for r in SEED_REPS if not r.is_active}
    return {
        crm: [Owner(crm=crm, id=f"{crm[0]}-{r.email.split('@')[0]}", email=r.email, is_active=r.email not in inactive) for r in cfg.reps]  # type: ignore[arg-type]
        for crm in ("hubspot", "salesforce")
    }


def lead_from(person: SeedPerson, i: int, owner_ids: Sequence[str], rng: random.Random) -> Lead:
    crm = "salesforce" if i % 3 == 2 else "hubspot"
    owner = owner_ids[rng.randrange(len(owner_ids))] if rng.random() < 0.1 else None
    had_score = rng.random() < 0.4
    return Lead(
        crm=crm, object_type="Lead" if crm == "salesforce" else "contacts", id=f"{i:07d}", email=person.email,  # type: ignore[arg-type]
        first_name=person.first_name, last_name=person.last_name, title=person.title, seniority=person.seniority,
        phone=person.phone, company_name=person.company_name or None, company_domain=person.company_domain,
        company_id=person.company_key, industry=person.industry, employees=person.employees,
        annual_revenue=float(person.annual_revenue), country=person.country, state=person.state, city=person.city,
        postal_code=person.postal_code, lead_source=person.lead_source, product_interest=(person.product_interest,),
        deal_size=float(rng.choice([5_000, 20_000, 60_000, 150_000])),
        budget=person.budget, authority=person.authority, need=person.need, timeframe=person.timeframe,
        stage="Open - Not Contacted" if crm == "salesforce" else rng.choice(["subscriber", "lead"]),
        owner_id=(owner.replace("h-", "s-", 1) if crm == "salesforce" else owner) if owner else None,
        score=float(rng.randrange(0, 100)) if had_score else None,
        grade=rng.choice(["hot", "warm", "cold"]) if had_score else None,
        created_at=NOW - timedelta(days=person.created_days_ago),
        last_activity_at=NOW - timedelta(days=person.last_activity_days_ago) if person.last_activity_days_ago is not None else None,
        engagement={
            "page_views": person.page_views, "pricing_page_views": person.pricing_page_views,
            "form_submissions": person.form_submissions, "email_opens": person.email_opens, "email_clicks": person.email_clicks,
        },
    )


def events_for(lead: Lead, n: int, rng: random.Random, props: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[Event]:
    """About `n` events of one lead over the last 120 days, in the order a receiver would store them."""
    names = [m[0] for m in EVENT_MIX]
    weights = [m[2] for m in EVENT_MIX]
    kinds = {m[0]: m[1] for m in EVENT_MIX}
    count = max(1, n + rng.randrange(-n // 5, n // 5 + 1)) if n else 0
    out = []
    for name in rng.choices(names, weights, k=count):
        options = props.get(name)
        prop = options[rng.randrange(len(options))] if options else {}
        at = NOW - timedelta(seconds=rng.random() * EVENT_DAYS * 86_400)
        out.append(Event(lead.key, "" if name == "identify" else name, at, prop, kinds[name]))  # type: ignore[arg-type]
    return out


def build(n_leads: int, n_events: int) -> Workload:
    data = tomllib.loads(example_config_path().read_text(encoding="utf-8"))
    scoring_cfg = ScoringConfig.model_validate(data["scoring"])
    routing_cfg = RoutingConfig.model_validate(routing_table(data["routing"]))
    problems = check_scoring(scoring_cfg, "scoring") + check_routing(routing_cfg, scoring_cfg, "routing")
    if problems:
        raise SystemExit("bench config is invalid:\n" + "\n".join(f"  {p}" for p in problems))
    scoring = compile_scoring(scoring_cfg)
    routing = compile_routing(routing_cfg)
    owners = owners_for(routing_cfg)
    reps, _ = build_reps(routing, owners)
    active_ids = [o.id for o in owners["hubspot"] if o.is_active]
    rng = random.Random(20260303)
    companies = generate_companies()
    company_owner = {
        c.key: Account(crm="hubspot", id=c.key, domain=c.domain, name=c.name,
                       owner_id=f"h-{SEED_REPS[c.owner_index].email.split('@')[0]}" if c.owner_index is not None else None)
        for c in companies
    }
    leads = [lead_from(p, i, active_ids, rng) for i, p in enumerate(generate_people(n_leads, seed=42, companies=companies))]
    # Accounts are matched in HubSpot only here (Salesforce leads carry the same domains; one CRM is enough to exercise it).
    accounts = [company_owner.get(lead.company_id) if lead.company_id and lead.crm == "hubspot" else None for lead in leads]
    props: dict[str, list[dict[str, Any]]] = {
        "Page Viewed": [{"path": p, "url": f"https://www.example-corp.test{p}"} for p in PAGES],
        "Form Submitted": [{"form_id": f} for f in FORMS],
        "Email Opened": [{"campaign": c} for c in CAMPAIGNS],
        "Email Clicked": [{"campaign": c} for c in CAMPAIGNS],
        "Test Payment Created": [{"amount": a} for a in (100, 2_500)],
    }
    events: list[list[Event]] = []
    aggregates: list[EventAggregates] = []
    event_count = 0
    for i, lead in enumerate(leads):
        evs = events_for(lead, n_events, rng, props)
        aggregates.append(aggregate_events(evs, scoring))  # kept with the events, as the receiver does
        event_count += len(evs)
        if i < SAMPLE:
            events.append(evs)
    written: list[Mapping[str, Any]] = [
        {"score": lead.score, "grade": lead.grade} if lead.score is not None and rng.random() < 0.5 else {} for lead in leads
    ]
    return Workload(
        scoring=scoring, routing=routing, reps=reps, leads=leads, events=events, event_count=event_count, aggregates=aggregates,
        accounts=accounts,
        known_owner_ids={crm: frozenset(o.id for o in owners[crm] if o.is_active) for crm in owners},
        free_mail=scoring.free_mail,
        diff_rules={
            "hubspot": DiffRules(stage_order=data["hubspot"]["stage_order"]),
            "salesforce": DiffRules(stage_order=data["salesforce"]["status_order"]),
        },
        written=written,
        scoring_rules=sum(len(m.rules) for m in scoring_cfg.models.values()),
        routing_rules=len(routing_cfg.rules),
        pools=len(routing_cfg.pools),
    )


def fresh_state(w: Workload) -> RoutingState:
    return state_from_counters({scope: {} for scope in required_scopes(w.routing, NOW)})


def context(w: Workload, i: int, snap: Any, outcome: ScoreOutcome) -> RoutingContext:
    """What pipeline.route looks up per lead (account, free mail, active owners) plus the batch's snapshot."""
    lead = w.leads[i]
    domain = lead.email_domain
    return RoutingContext(
        reps=w.reps, account=w.accounts[i], is_free_mail=domain in w.free_mail if domain else False,
        known_owner_ids=w.known_owner_ids[lead.crm], availability=snap, is_competitor=outcome.is_competitor,
    )


def run_score(w: Workload) -> list[ScoreOutcome]:
    scoring, aggs = w.scoring, w.aggregates
    return [score_lead(lead, aggs[i], scoring, NOW) for i, lead in enumerate(w.leads)]


def run_route(w: Workload, outcomes: Sequence[ScoreOutcome]) -> list[RoutingDecision]:
    state = fresh_state(w)
    decisions: list[RoutingDecision] = []
    for start in range(0, len(w.leads), BATCH):
        snap = availability_snapshot(w.reps, w.routing, NOW)
        for i in range(start, min(start + BATCH, len(w.leads))):
            decision, change = route_lead(w.leads[i], outcomes[i].primary, context(w, i, snap, outcomes[i]), state, w.routing, NOW)
            state = apply_change(state, change)
            decisions.append(decision)
    return decisions


def run_diff(w: Workload, wants: Sequence[Desired]) -> list[Patch]:
    rules, written = w.diff_rules, w.written
    return [plan_write(lead, wants[i], written[i], rules[lead.crm]) for i, lead in enumerate(w.leads)]


def run_engine(w: Workload) -> list[Patch]:
    """score → route → diff per batch, stage after stage, as pipeline.run_batch composes them (without the store)."""
    state = fresh_state(w)
    patches: list[Patch] = []
    leads, aggs, scoring, routing, written, rules = w.leads, w.aggregates, w.scoring, w.routing, w.written, w.diff_rules
    for start in range(0, len(leads), BATCH):
        batch = range(start, min(start + BATCH, len(leads)))
        outcomes = [score_lead(leads[i], aggs[i], scoring, NOW) for i in batch]
        snap = availability_snapshot(w.reps, routing, NOW)
        decisions: list[RoutingDecision] = []
        for i, outcome in zip(batch, outcomes, strict=True):
            decision, change = route_lead(leads[i], outcome.primary, context(w, i, snap, outcome), state, routing, NOW)
            state = apply_change(state, change)
            decisions.append(decision)
        patches += [
            plan_write(leads[i], desired_for(leads[i], outcome, decision), written[i], rules[leads[i].crm])
            for i, outcome, decision in zip(batch, outcomes, decisions, strict=True)
        ]
    return patches


def run_aggregate(w: Workload, sample: int) -> int:
    scoring = w.scoring
    for evs in w.events[:sample]:
        aggregate_events(evs, scoring)
    return sum(len(evs) for evs in w.events[:sample])


def best_of(fn: Callable[[], object], repeat: int = 5) -> float:
    """Seconds of the fastest of `repeat` runs, after one warm-up run."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run(argv: list[str]) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="python -m bench engine", description=__doc__)
    parser.add_argument("--leads", type=int, default=20_000, help="leads per timed run (default 20,000)")
    parser.add_argument("--events", type=int, default=50, help="events per lead, on average (default 50)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per figure; the best counts, as timeit does (default 5: this kind of VM has noisy neighbours)")
    args = parser.parse_args(argv)
    console = Console()
    with console.status("building leads, events and config…"):
        w = build(args.leads, args.events)
    n = len(w.leads)
    n_events = w.event_count
    sample = len(w.events)
    sample_events = sum(len(evs) for evs in w.events)
    outcomes = run_score(w)
    decisions = run_route(w, outcomes)
    wants = [desired_for(lead, o, d) for lead, o, d in zip(w.leads, outcomes, decisions, strict=True)]
    # The workload (leads, aggregates, inputs) lives for the whole run; a pipeline batch holds 200 leads.
    # Freezing it keeps the garbage collector from rescanning it while the timed code allocates.
    gc.collect()
    gc.freeze()
    with console.status("timing…"):
        t_agg = best_of(lambda: run_aggregate(w, sample), args.repeat)
        t_score = best_of(lambda: run_score(w), args.repeat)
        t_route = best_of(lambda: run_route(w, outcomes), args.repeat)
        t_diff = best_of(lambda: run_diff(w, wants), args.repeat)
        t_engine = best_of(lambda: run_engine(w), args.repeat)
    patches = run_diff(w, wants)
    gc.unfreeze()
    kinds: dict[str, int] = {}
    for d in decisions:
        kinds[d.kind] = kinds.get(d.kind, 0) + 1
    figures = {
        "leads": float(n),
        "events": float(n_events),
        "scoring_rules": float(w.scoring_rules),
        "routing_rules": float(w.routing_rules),
        "reps": float(len(w.reps)),
        "pools": float(w.pools),
        "aggregate_events_per_s": round(sample_events / t_agg),
        "score_leads_per_s": round(n / t_score),
        "route_leads_per_s": round(n / t_route),
        "diff_leads_per_s": round(n / t_diff),
        "engine_leads_per_s": round(n / t_engine),
    }
    table = Table(title=f"engine on one core: {n:,} leads, {n_events:,} events (~{n_events / max(n, 1):.0f}/lead), best of {args.repeat}")
    table.add_column("stage")
    table.add_column("per second", justify="right")
    table.add_column("µs per lead", justify="right")
    table.add_row("aggregate events (kept with the events)", f"{figures['aggregate_events_per_s']:,.0f} events", f"{t_agg / sample * 1e6:.1f}")
    for label, key, t in (("score (from aggregates)", "score_leads_per_s", t_score), ("route (snapshot per 200)", "route_leads_per_s", t_route),
                          ("diff (plan_write)", "diff_leads_per_s", t_diff), ("score + route + diff", "engine_leads_per_s", t_engine)):
        table.add_row(label, f"{figures[key]:,.0f} leads", f"{t / n * 1e6:.1f}")
    console.print(table)
    console.print(
        f"config: {w.scoring_rules} scoring rules in {len(w.scoring.models)} models, {w.routing_rules} routing rules, "
        f"{len(w.reps)} reps, {w.pools} pools; decisions: "
        + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
        + f"; non-empty patches: {sum(1 for p in patches if p.changes)}"
    )
    return figures
