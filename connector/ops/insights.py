"""The figures of `connector report`: scores, fairness, speed-to-lead and SLA, dead letters, experiments — from the store."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.adapters.base import CrmAdapter
from connector.config import Settings
from connector.core.keys import OPEN_SCOPE
from connector.engine.routing.experiments import experiment_report
from connector.engine.routing import build_reps, compile_routing
from connector.ops.status import waiting_figures
from connector.state.store import DecisionRecord, Store
from connector.ops.notified import notification_figures

# Routing a lead created long before is a backfill, not a response to a new lead: leave it out of speed-to-lead.
SPEED_TO_LEAD_HORIZON = timedelta(days=30)


def _latest_per_lead(decisions: Sequence[DecisionRecord]) -> dict[str, DecisionRecord]:
    latest: dict[str, DecisionRecord] = {}
    for d in decisions:
        latest[d.lead_key] = d
    return latest


def is_new_owner(d: DecisionRecord) -> bool:
    """A routing that set a new owner (the summaries' `routed`); the log also has first decisions that kept the owner."""
    return d.kind == "route" and bool(d.owner_id) and (d.explanation.get("routing") or {}).get("kind") != "kept"


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def score_figures(settings: Settings, decisions: Sequence[DecisionRecord]) -> dict[str, Any]:
    """Histogram of each lead's latest score (10-point bins) and the lead count per grade band."""
    scored = [d for d in _latest_per_lead([d for d in decisions if d.score is not None]).values()]
    bins: Counter[int] = Counter()
    for d in scored:
        assert d.score is not None
        bins[int(d.score // 10) * 10] += 1
    bands = []
    upper: float | None = None
    for band in settings.scoring.grades:
        low = band.min
        bands.append({"grade": band.name, "min": low, "max": band.max if band.max is not None else upper})
        upper = low
    grades = Counter(d.grade for d in scored if d.grade)
    names: list[str] = [str(b["grade"]) for b in bands]
    return {
        "leads": len(scored),
        "histogram": [{"from": b, "to": b + 10, "leads": bins[b]} for b in range(min(bins, default=0), max(bins, default=90) + 10, 10)],
        "bands": bands,
        "grades": {name: grades.get(name, 0) for name in names},
    }


def rep_activity(settings: Settings, adapters: Mapping[str, CrmAdapter] | None) -> dict[str, bool]:
    """rep email -> active, as every command resolves it: active in config and an active owner in some CRM.

    Without the CRMs (--offline) only the config's `active` is known.
    """
    if adapters is None:
        return {r.email.lower(): r.active for r in settings.routing.reps}
    reps, _ = build_reps(settings.routing, {crm: a.fetch_owners() for crm, a in adapters.items()})
    return {r.email.lower(): r.is_active for r in reps}


def fairness_figures(
    settings: Settings, store: Store, decisions: Sequence[DecisionRecord], active: Mapping[str, bool] | None = None,
) -> list[dict[str, Any]]:
    """Per rep: new leads routed to them (as the runs' `leads_per_rep` count them) vs their weight's share, open leads and caps.

    `active`: rep email -> active as resolved against the CRMs (rep_activity); SLA reassignments are counted apart.
    """
    assigned = Counter(d.rep for d in decisions if is_new_owner(d) and d.rep)
    reassigned = Counter(d.rep for d in decisions if d.kind == "reassign" and d.rep)
    open_now = store.counters(OPEN_SCOPE)
    reps = settings.routing.reps
    is_active = {r.email.lower(): (active or {}).get(r.email.lower(), r.active) for r in reps}
    total_weight = sum(r.weight for r in reps if is_active[r.email.lower()]) or 1
    total = sum(assigned.get(r.email.lower(), 0) for r in reps)
    rows = []
    for rep in reps:
        email = rep.email.lower()
        rows.append({
            "rep": email, "name": rep.name, "active": is_active[email], "weight": rep.weight,
            "leads": assigned.get(email, 0), "reassigned_to": reassigned.get(email, 0),
            "expected": round(total * rep.weight / total_weight, 1) if is_active[email] else 0.0,
            "open_now": open_now.get(email, 0), "max_open_leads": rep.max_open_leads, "max_leads_per_day": rep.max_leads_per_day,
        })
    return rows


def backfill_windows(store: Store) -> list[tuple[datetime, datetime]]:
    """When backfill runs were going (start, end), from the run log: what they routed is a backfill, not a response."""
    windows = []
    for run in store.last_runs(10_000):
        if run["kind"] == "backfill":
            end = run["created_at"] if run["created_at"].tzinfo else run["created_at"].replace(tzinfo=UTC)
            windows.append((end - timedelta(seconds=float(run["summary"].get("seconds") or 0) + 1), end))
    return windows


def sla_figures(settings: Settings, store: Store, decisions: Sequence[DecisionRecord], now: datetime) -> dict[str, Any]:
    """Per day: leads routed, SLA breaches (reassignments) and median minutes from lead creation to routing.

    Speed-to-lead leaves out backfills: leads routed while a backfill ran, and leads created over 30 days before.
    """
    days: dict[str, dict[str, Any]] = defaultdict(lambda: {"routed": 0, "sla_breaches": 0, "minutes": []})
    backfills = backfill_windows(store)
    for d in decisions:
        day = d.created_at.astimezone(UTC).date().isoformat()
        if is_new_owner(d):
            days[day]["routed"] += 1
            created = _parse_time(d.explanation.get("lead_created_at"))
            at = d.created_at if d.created_at.tzinfo else d.created_at.replace(tzinfo=UTC)
            if any(start <= at <= end for start, end in backfills):
                continue
            if created is not None and timedelta(0) <= d.created_at - created <= SPEED_TO_LEAD_HORIZON:
                days[day]["minutes"].append((d.created_at - created).total_seconds() / 60)
        elif d.kind == "reassign":
            days[day]["sla_breaches"] += 1
    series = [
        {
            "day": day, "routed": v["routed"], "sla_breaches": v["sla_breaches"],
            "median_minutes_to_route": round(statistics.median(v["minutes"]), 1) if v["minutes"] else None,
        }
        for day, v in sorted(days.items())
    ]
    return {"sla_minutes": settings.routing.sla.minutes, "past_due_now": len(store.leads_past_sla(now)), "days": series}


def dead_letter_figures(store: Store) -> dict[str, Any]:
    """Dead letters by reason (CRM error code) and status."""
    letters = store.list_dead_letters(None, limit=1_000_000)
    by_reason: dict[str, Counter[str]] = defaultdict(Counter)
    for d in letters:
        by_reason[d.code or "(no code)"][d.status] += 1
    return {
        "total": len(letters),
        "open": sum(1 for d in letters if d.status == "open"),
        "by_reason": [
            {"reason": code, "total": sum(c.values()), **{s: c.get(s, 0) for s in ("open", "retrying", "resolved", "discarded")}}
            for code, c in sorted(by_reason.items(), key=lambda kv: -sum(kv[1].values()))
        ],
    }


def experiment_leads(decisions: Sequence[DecisionRecord]) -> dict[str, str]:
    """lead key → arm ("<experiment>:control" / ":treatment") of each lead's first routing in an experiment."""
    arms: dict[str, str] = {}
    for d in decisions:
        if d.kind == "route" and d.arm and d.lead_key not in arms:
            arms[d.lead_key] = d.arm
    return arms


def converted_leads(settings: Settings, adapters: Mapping[str, CrmAdapter], lead_keys: Sequence[str]) -> dict[str, bool]:
    """Read the leads back from their CRMs: converted = IsConverted, or a stage / status in [reports] converted_stages.

    A lead that no longer exists (deleted, merged away) counts as not converted.
    """
    by_crm: dict[str, list[str]] = defaultdict(list)
    for key in lead_keys:
        crm, _, rest = key.partition(":")
        by_crm[crm].append(rest.partition(":")[2])
    out = {key: False for key in lead_keys}
    for crm, ids in by_crm.items():
        adapter = adapters.get(crm)
        if adapter is None:
            continue
        stages = set(settings.reports.converted_stages.get(crm, ()))
        for start in range(0, len(ids), 100):
            for lead in adapter.fetch_by_ids(ids[start : start + 100]):
                out[lead.key] = lead.is_converted or lead.stage in stages or lead.lead_status in stages
    return out


def experiment_figures(settings: Settings, decisions: Sequence[DecisionRecord], converted: Mapping[str, bool] | None) -> list[dict[str, Any]]:
    """Per configured experiment: leads, conversions and rate per arm, the p-value and a verdict (None conversions: unknown)."""
    arms = experiment_leads(decisions)
    compiled = compile_routing(settings.routing)
    results = []
    for rule in compiled.rules:
        exp = rule.experiment
        if exp is None:
            continue
        mine = {key: arm for key, arm in arms.items() if arm.split(":", 1)[0] == exp.name}
        report = experiment_report(
            exp.name, [(arm, bool(converted and converted.get(key))) for key, arm in mine.items()],
            strategies=(exp.control, exp.treatment), alpha=settings.reports.alpha,
        )
        results.append({
            "experiment": exp.name, "rule": rule.name,
            "arms": [
                {"arm": a.arm, "strategy": a.strategy, "leads": a.leads,
                 "conversions": a.conversions if converted is not None else None, "rate": round(a.rate, 4) if converted is not None else None}
                for a in report.arms
            ],
            "p_value": round(report.p_value, 4) if converted is not None else None,
            "significant": report.significant if converted is not None else False,
            "verdict": report.verdict if converted is not None else "conversions unknown: run with the CRM enabled (not --offline)",
        })
    return results


def last_run_figures(store: Store) -> dict[str, Any] | None:
    """The newest run's shared figures as its summary printed them (None: no run yet)."""
    runs = store.last_runs(1)
    if not runs:
        return None
    summary = runs[0]["summary"]
    return {"kind": runs[0]["kind"], **{k: summary.get(k) for k in (
        "fetched", "leads", "routed", "waiting", "written", "unchanged", "decisions", "routed_by", "grades", "leads_per_rep")}}


def collect_report(settings: Settings, store: Store, now: datetime, adapters: Mapping[str, CrmAdapter] | None = None) -> dict[str, Any]:
    """Every figure of the report; with adapters, experiment leads are read back from the CRM for conversions."""
    decisions = store.list_decisions()
    arms = experiment_leads(decisions)
    converted = converted_leads(settings, adapters, list(arms)) if adapters is not None else None
    return {
        "generated_at": now.astimezone(UTC).isoformat(),
        "decisions": len(decisions),
        "scores": score_figures(settings, decisions),
        "fairness": fairness_figures(settings, store, decisions, rep_activity(settings, adapters)),
        "last_run": last_run_figures(store),
        "sla": sla_figures(settings, store, decisions, now),
        "dead_letters": dead_letter_figures(store),
        "experiments": experiment_figures(settings, decisions, converted),
        "waiting": waiting_figures(store, now),
        "notifications": notification_figures(store),
    }
