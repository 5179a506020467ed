"""`connector explain`: the lead as normalized, every score contribution, the routing path and the planned patch."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from connector.adapters.base import CrmAdapter
from connector.config import Settings
from connector.core.errors import UsageError
from connector.runners.jobs import compile_engine, prepare
from connector.core.models import FetchPage, RoutingDecision, wait_cause_words
from connector.ops.summary import human_reason, shown
from connector.ops.words import time_words, value_words
from connector.pipeline.batch import run_batch
from connector.state.store import DecisionRecord, Store, WaitingLead


def explain_lead(settings: Settings, store: Store, adapters: Mapping[str, CrmAdapter], crm: str, record_id: str, now: datetime) -> dict[str, Any]:
    """Everything about one lead's treatment, computed exactly as a sync would — but nothing is written."""
    runtimes = prepare(settings, {crm: adapters[crm]}, bootstrap=False)
    runtime = runtimes[crm]
    found = runtime.adapter.fetch_by_ids([record_id])
    if not found:
        raise UsageError(f"{crm} {runtime.adapter.object_type} {record_id} was not found (deleted, merged away or a typo?)")
    lead = found[0]
    result = run_batch(store, runtime, compile_engine(settings), FetchPage(leads=(lead,), cursor=None), now, dry_run=True)
    outcome = result.scores.get(lead.key)
    decision = result.decisions.get(lead.key)
    patch = result.planned.get(lead.key)
    history = store.decisions_for(lead.key)
    waiting = next(iter(store.waiting_leads(lead_key=lead.key)), None)
    lead_view = {k: v for k, v in dataclasses.asdict(lead).items() if v not in (None, (), {}, "")}
    return {
        "lead": lead_view,
        "skipped": None if outcome else "converted, archived or merged: the connector leaves it alone",
        "score": None if outcome is None else {
            "model": outcome.primary.model,
            "score": outcome.primary.score,
            "grade": outcome.primary.grade,
            "is_mql": outcome.primary.is_mql,
            "stage": outcome.primary.stage,
            "models": {
                name: {
                    "score": r.score, "grade": r.grade,
                    "contributions": [dataclasses.asdict(c) for c in r.contributions],
                }
                for name, r in outcome.by_model.items()
            },
        },
        "routing": routing_view(decision, history, waiting),
        "history": [
            {"at": h.created_at, "kind": h.kind, "owner_id": h.owner_id, "rep": h.rep, "rule": h.rule, "pool": h.pool}
            for h in history
        ],
        "patch": None if patch is None else {
            field: {
                "decision": patch.decisions[field].value,
                "current": patch.current.get(field),
                "new": patch.changes.get(field),
                "reason": patch.reasons.get(field, ""),
            }
            for field in patch.decisions
        },
    }


def routing_view(
    decision: RoutingDecision | None, history: Sequence[DecisionRecord], waiting: WaitingLead | None = None,
) -> dict[str, Any] | None:
    """The routing path to show: today's decision, or — for a lead routed earlier — the recorded one that set its owner.

    A lead that waits says why (`wait_cause`, the `waiting` sentence), until when (`next_available_at`,
    `next_available_rep`) and, when an earlier run already left it waiting, since when (`waiting_since`).
    """
    if decision is None:
        return None
    waits = decision.kind == "wait"
    view: dict[str, Any] = {
        "kind": decision.kind, "owner_id": decision.owner_id, "rep": decision.rep, "rule": decision.rule,
        "pool": decision.pool, "strategy": decision.strategy, "arm": decision.arm, "reasons": list(decision.reasons),
        "candidates": unique_candidates([dataclasses.asdict(c) for c in decision.candidates]),
        "waiting": next((r for r in reversed(decision.reasons) if r.startswith("waiting:")), None) if waits else None,
        "wait_cause": decision.wait_cause,
        "next_available_at": decision.next_available_at.astimezone(UTC).isoformat() if decision.next_available_at else None,
        "next_available_rep": decision.next_available_rep,
        "waiting_since": waiting.since.astimezone(UTC).isoformat() if waits and waiting is not None else None,
    }
    recorded = [h for h in history if h.kind in ("route", "reassign")]
    if decision.kind == "kept" and recorded:
        last = recorded[-1]
        path = (last.explanation or {}).get("routing", {})
        view.update({
            "recorded": f"{last.kind}d earlier ({path.get('kind', last.kind)}) at {last.created_at:%Y-%m-%d %H:%M} UTC",
            "owner_id": last.owner_id, "rep": last.rep, "rule": last.rule, "pool": last.pool,
            "strategy": last.strategy, "arm": last.arm,
            "reasons": [*path.get("reasons", []), "a lead is routed once: this recorded decision stands"],
            "candidates": unique_candidates(path.get("candidates", [])),
        })
    return view


def unique_candidates(candidates: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per rep: a rep in several pools tried (a rule's pool, then the fallback pool) is listed once,
    with its best verdict (chosen, else eligible, else the first reason it was skipped)."""
    best: dict[str, dict[str, Any]] = {}
    for c in candidates:
        seen = best.get(c["rep"])
        if seen is None or (c["eligible"] and not seen["eligible"]) or c.get("reason") == "chosen":
            best[c["rep"]] = dict(c)
    return list(best.values())


def render_explanation(report: Mapping[str, Any], console: Console | None = None) -> None:
    """The explanation as tables: lead, score contributions per model, routing path, patch."""
    console = console or Console()
    lead = report["lead"]
    console.print(f"[bold]{lead.get('crm')}:{lead.get('id')}[/] {lead.get('first_name', '')} {lead.get('last_name', '')} <{lead.get('email', '')}>")
    facts = Table(show_header=False, box=None)
    for key, value in lead.items():
        if key not in ("crm", "id"):
            facts.add_row(key.replace("_", " "), value_words(value, empty="none"))
    console.print(facts)
    if report["skipped"]:
        console.print(f"[yellow]{report['skipped']}[/]")
        return
    score = report["score"]
    for name, model in score["models"].items():
        table = Table("rule", "source", "points", "decay", title=f"model {name}: score {model['score']:g} ({model['grade']})")
        for c in model["contributions"]:
            table.add_row(c["rule"], c["source"], f"{c['points']:+g}", f"{c['decay']:g}" if c["decay"] else "")
        table.add_row("[bold]total[/]", "", f"[bold]{model['score']:g}[/]", "")
        console.print(table)
    console.print(f"written back: model {score['model']} → score {score['score']:g}, grade {shown('grade', score['grade'])}, "
                  f"stage {value_words(score['stage'], empty='none')}")
    routing = report["routing"]
    if routing:
        _render_routing(routing, console)
    console.print(_patch_table(report["patch"] or {}, routing))


def _render_routing(routing: Mapping[str, Any], console: Console) -> None:
    kind = "waiting" if routing["kind"] == "wait" else routing["kind"].replace("_", " ")
    who = routing["rep"] or routing["owner_id"] or ("nobody yet" if routing["kind"] == "wait" else "nobody")
    console.print(f"[bold]routing[/]: {routing.get('recorded') or kind} → {who}"
                  + (f" (rule {routing['rule']}, pool {routing['pool']}, {routing['strategy']})" if routing["rule"] else ""))
    if routing.get("wait_cause"):
        until = (f"{routing['next_available_rep']} at {time_words(routing['next_available_at'])}" if routing.get("next_available_at")
                 else "unknown")
        since = f"; waiting since {time_words(routing['waiting_since'])}" if routing.get("waiting_since") else ""
        cause = wait_cause_words(routing["wait_cause"])
        console.print(f"[yellow]waits[/]: {cause}; next available: {until}{since}", soft_wrap=True)
    steps = Table.grid(padding=(0, 1))  # a hanging indent: a long reason wraps under itself, not at column 0
    for reason in routing["reasons"]:
        steps.add_row("  -", reason)
    console.print(steps)
    if routing["candidates"]:
        cands = Table("rep", "eligible", "why", box=None)
        for c in routing["candidates"]:
            cands.add_row(c["rep"], "yes" if c["eligible"] else "no", c["reason"])
        console.print(cands)


def _patch_table(patch: Mapping[str, Any], routing: Mapping[str, Any] | None) -> Table:
    """The planned write in a reviewer's words: values as the CRM shows them, no `None` or quotes."""
    table = Table("field", "decision", "current", "new", "why", title="planned write")
    for field, p in patch.items():
        decision, why = p["decision"].replace("_", " "), human_reason(p["reason"])
        if field == "owner_id" and routing and routing["kind"] == "wait" and p["decision"] == "not_configured":
            # Not a configuration gap: nobody can take the lead now, so no owner is written yet.
            cause = wait_cause_words(routing["wait_cause"]) if routing.get("wait_cause") else "nobody is available"
            decision, why = "waiting", f"no owner until someone can take it ({cause}); see routing above"
        table.add_row(field.removesuffix("_id").replace("_", " "), decision, shown(field, p["current"]), shown(field, p["new"]), why)
    return table
