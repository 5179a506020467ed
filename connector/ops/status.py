"""`connector status`: cursors, last runs, backlog, API budget used today and dead letters, from the state store only."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from connector.config import Settings
from connector.core.clock import Clock
from connector.core.models import wait_cause_words
from connector.ops.words import cursor_words, hanging, time_words
from connector.pipeline.waiting import waiting_leads
from connector.state.store import Store


def budget_accounts(settings: Settings) -> dict[str, tuple[str, int, float]]:
    """crm → (account key, configured daily limit, share) for every enabled CRM, keyed like the shared limiter rows."""
    accounts: dict[str, tuple[str, int, float]] = {}
    for crm in settings.enabled_crms:
        limits = settings.crm(crm).call_limits()
        accounts[crm] = (limits.account, limits.daily_limit, limits.daily_share)
    return accounts


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _span(seconds: float) -> str:
    minutes = int(abs(seconds) // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    return (f"{days}d " if days else "") + (f"{hours}h " if days or hours else "") + f"{minutes}m"


def waiting_figures(store: Store, now: datetime, counts: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Leads waiting for an available rep: how many, why, the oldest wait, and the next time someone becomes available.

    `counts`: waiting leads per CRM when already counted. `due`: waiting leads whose next-available
    time has passed at `now` (the next sync routes them).
    """
    rows = store.waiting_leads()
    counts = dict(counts or {})
    for crm in sorted({r.crm for r in rows} - set(counts)):
        counts[crm] = len(waiting_leads(store, crm))
    by_cause = Counter(r.cause or "unknown" for r in rows)
    oldest = rows[0] if rows else None  # longest waiting first
    timed = [r for r in rows if r.next_available_at is not None]
    first = min(timed, key=lambda r: (r.next_available_at or now, r.lead_key)) if timed else None
    return {
        "as_of": _iso(now),
        "leads": sum(counts.values()),
        "by_cause": dict(sorted(by_cause.items(), key=lambda kv: (-kv[1], kv[0]))),
        "oldest_since": _iso(oldest.since) if oldest else None,
        "oldest_lead": oldest.lead_key if oldest else None,
        "next_available_at": _iso(first.next_available_at) if first else None,
        "next_available_rep": first.next_available_rep if first else None,
        "due": sum(1 for r in timed if r.next_available_at is not None and r.next_available_at <= now),
    }


def render_waiting(waiting: Mapping[str, Any]) -> str:
    """One line: `waiting leads: 3 (outside working hours 2, at capacity 1); oldest since …; next available: …`."""
    if not waiting["leads"]:
        return "waiting leads: none"
    now = datetime.fromisoformat(waiting["as_of"])
    causes = ", ".join(f"{wait_cause_words(c)} {n}" for c, n in waiting["by_cause"].items())
    text = f"waiting leads: {waiting['leads']}" + (f" ({causes})" if causes else "")
    if waiting["oldest_since"]:
        since = datetime.fromisoformat(waiting["oldest_since"])
        text += f"; oldest waiting since {since:%Y-%m-%d %H:%M} UTC ({_span((now - since).total_seconds())})"
    if waiting["next_available_at"]:
        at = datetime.fromisoformat(waiting["next_available_at"])
        when = "due now: the next sync routes them" if at <= now else f"in {_span((at - now).total_seconds())}"
        text += f"; next available: {waiting['next_available_rep']} at {at:%a %Y-%m-%d %H:%M} UTC ({when})"
    else:
        text += "; next available: unknown"
    return text


# The figures of a run that status shows, as the run's summary has them (pipeline/outcomes.py defines them).
RUN_FIGURES = ("fetched", "written", "dead_lettered", "leads", "routed", "waiting", "unchanged", "decisions", "routed_by",
               "grades", "leads_per_rep")


def run_words(run: Mapping[str, Any]) -> str:
    """`fetched 1170, leads 795, routed 5 (account match 5), waiting 375, written 5, dead-lettered 1` (older runs: fewer)."""
    parts = [f"fetched {run['fetched']}"]
    if run.get("leads") is not None:
        how = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in (run.get("routed_by") or {}).items() if n)
        parts += [f"leads {run['leads']}", f"routed {run['routed']}" + (f" ({how})" if how else ""), f"waiting {run['waiting']}"]
    parts += [f"written {run['written']}", f"dead-lettered {run['dead_lettered']}"]
    return ", ".join(parts)


def collect_status(settings: Settings, store: Store, clock: Clock) -> dict[str, Any]:
    """Everything `connector status` shows, as JSON-ready data (reads the store only; no CRM call).

    The budget's day is read on the store's shared clock, the one the budget counts calls by (the database's
    time on PostgreSQL, state/ratelimit.py guard_factory), so a replica whose clock is off still shows today's count."""
    now = clock.now()
    budget_day = store.shared_clock(clock).now().astimezone(UTC).date().isoformat()
    runs = store.last_runs(50)
    last: dict[str, Any] = {}
    for run in runs:
        # "Successful": the run was not stopped (budget, crash) — the newest such run per kind.
        if run["kind"] not in last and not run["summary"].get("aborted"):
            last[run["kind"]] = {"at": _iso(run["created_at"]), **{k: run["summary"].get(k) for k in RUN_FIGURES}}
    stopped = next((r for r in runs if r["summary"].get("aborted")), None)
    pending = store.count_pending_outbox()
    states = store.budget_states()
    crms = sorted(set(settings.enabled_crms) | set(pending))
    waiting = {crm: len(waiting_leads(store, crm)) for crm in crms}
    budget: dict[str, Any] = {}
    for crm, (account, limit, share) in budget_accounts(settings).items():
        state = states.get(account)
        used = state.used if state is not None and state.day == budget_day else 0
        real_limit = state.observed_limit if state is not None and state.observed_limit is not None else limit
        allowance = math.floor(real_limit * share)
        budget[crm] = {
            "account": account, "day": budget_day, "used": used, "allowance": allowance,
            "remaining": max(0, allowance - used), "daily_limit": real_limit, "share": share,
        }
    return {
        "store": store.url,
        "cursors": [
            {"crm": c.crm, "object": c.object_type, "stream": c.stream, "value": c.value or "(complete)", "updated_at": _iso(c.updated_at),
             "words": cursor_words(c.crm, c.object_type, c.stream, c.value)}
            for c in store.list_cursors()
        ],
        "last_runs": last,
        "last_stopped_run": None if stopped is None else {"kind": stopped["kind"], "at": _iso(stopped["created_at"]), "reason": stopped["summary"]["aborted"]},
        "backlog": {
            crm: {"pending_writes": pending.get(crm, 0), "waiting_leads": waiting[crm]} for crm in crms
        },
        "waiting": waiting_figures(store, now, waiting),
        "pending_intake": store.count_pending_intake(),
        "intake_retrying": _intake_retrying(store, now),
        "budget": budget,
        "dead_letters": {"open": store.count_dead_letters("open"), "retrying": store.count_dead_letters("retrying")},
        "notifications": _notifications(store),
    }


def _notifications(store: Store) -> dict[str, int]:
    """Notifications still to send (pending, retrying included) and given up on (failed)."""
    counts = store.count_notifications()
    return {"pending": counts.get("pending", 0), "failed": counts.get("failed", 0)}


def _intake_retrying(store: Store, now: datetime) -> dict[str, Any]:
    """Intake items waiting to be retried because the CRM failed (5xx, timeout, 429), and the oldest one's age."""
    items, oldest = store.retrying_intake()
    return {
        "items": items, "oldest_accepted_at": _iso(oldest),
        "oldest_age_seconds": None if oldest is None else max(0, int((now - oldest).total_seconds())),
    }


def _say(console: Console, line: str) -> None:
    """One line of plain text, wrapped to the console's width with a hanging indent (never cut, no markup)."""
    console.print(Text(hanging(line, console.width)), soft_wrap=True)


def render_status(data: Mapping[str, Any], console: Console | None = None) -> None:
    """The status as short tables a person reads at a glance."""
    console = console or Console()
    _say(console, f"state store {data['store']}")
    if not data["cursors"]:
        console.print("cursors: none yet (no sync has run)")
    else:
        # In words first, then the stored cursor whole (what a reset or a support ticket needs), never cut.
        console.print("[bold]cursors[/]")
        for c in data["cursors"]:
            _say(console, f"  {c['words']}; saved {time_words(c['updated_at'])}")
            console.print(Text(f"    {c['value']}", style="dim"), soft_wrap=True)
    if data["last_runs"]:
        for kind, run in data["last_runs"].items():
            _say(console, f"last successful {kind}: {time_words(run['at'])} ({run_words(run)})")
    else:
        console.print("last successful run: never")
    if data["last_stopped_run"]:
        s = data["last_stopped_run"]
        console.print(f"[yellow]last stopped run[/]: {s['kind']} at {time_words(s['at'])}: {s['reason']}")
    backlog = Table("crm", "pending writes", "waiting leads", title="backlog", box=None)
    for crm, b in data["backlog"].items():
        backlog.add_row(crm, str(b["pending_writes"]), str(b["waiting_leads"]))
    console.print(backlog)
    if "waiting" in data:
        _say(console, render_waiting(data["waiting"]))
    console.print(f"webhook / event intake not yet processed: {data['pending_intake']}")
    retrying = data.get("intake_retrying") or {}
    if retrying.get("items"):
        console.print(f"[yellow]intake retrying because of CRM errors[/]: {retrying['items']}, oldest accepted "
                      f"{retrying['oldest_accepted_at']} ({_span(retrying['oldest_age_seconds'])} ago)")
    for crm, b in data["budget"].items():
        _say(console, f"API budget {crm} today ({b['day']} UTC): {b['used']:,} of {b['allowance']:,} calls used, "
                      f"{b['remaining']:,} left ({b['share']:.0%} of the daily limit {b['daily_limit']:,})")
    dl = data["dead_letters"]
    colour = "red" if dl["open"] else "green"
    console.print(f"dead letters: [{colour}]{dl['open']} open[/], {dl['retrying']} retrying" + (" — see `connector errors list`" if dl["open"] else ""))
    if "notifications" in data:
        n = data["notifications"]
        console.print(f"notifications: {n['pending']} pending, " + (f"[red]{n['failed']} failed[/]" if n["failed"] else "0 failed"))
