"""`connector demo`: the sandbox CRMs in-process, a backfill, live arrivals and a person's edit, then a summary."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connector.adapters.base import CrmAdapter
from connector.core.clock import Clock, PinnedClock
from connector.config import Settings, example_config_path, load_settings
from connector.runners.jobs import RunSummary, backfill, make_adapters, sync_once
from connector.pipeline.outcomes import DECISION_KINDS, ROUTED_BY, LeadOutcome, OutcomeTally, merged, positive, tally
from connector.state.ratelimit import guard_factory
from connector.ops.notified import delivery_figures, story_lines, with_demo_channels
from connector.ops.summary import waiting_line
from connector.ops.words import hanging
from connector.state.store import Store

if TYPE_CHECKING:
    from connector.sandbox.hubspot import HubSpotSandbox
    from connector.sandbox.receivers import HttpReceiver, SmtpReceiver
    from connector.sandbox.salesforce import SalesforceSandbox

Echo = Callable[[str], None]

# A Tuesday, 15:00 UTC: within working hours for the example's reps in New York, London and Berlin, so a
# newcomer sees leads land on reps whatever the hour they try the demo (`connector --at … demo` picks another).
DEMO_AT = datetime(2026, 12, 8, 15, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class _Stage:
    """What the story runs on: the sandbox CRMs and the connector wired to them, all on one pinned clock."""

    hubspot: HubSpotSandbox
    salesforce: SalesforceSandbox | None
    settings: Settings
    store: Store
    adapters: dict[str, CrmAdapter]
    clock: PinnedClock
    smtp: SmtpReceiver  # the reps' e-mail arrives here (loopback SMTP)
    http: HttpReceiver  # the team webhook's POSTs arrive here


def demo_settings(state_dir: Path, hubspot: HubSpotSandbox, salesforce: SalesforceSandbox | None) -> Settings:
    """The example config pointed at the sandbox CRMs and a throwaway state store."""
    overrides: dict[str, Any] = {
        "store": {"url": f"sqlite:///{state_dir / 'demo-state.db'}"},
        "logging": {"level": "WARNING"},
        "hubspot": {"enabled": True, "base_url": hubspot.base_url, "access_token": hubspot.token, "safety_lag_seconds": 0},
        "salesforce": {"enabled": False},
    }
    if salesforce is not None:
        overrides["salesforce"] = {
            "enabled": True, "login_url": salesforce.instance_url, "client_id": salesforce.client_id,
            "client_secret": salesforce.client_secret, "ca_bundle": salesforce.ca_file, "lookback_seconds": 1,
        }
    return load_settings(example_config_path(), overrides)


def _salesforce_sandbox(contacts: int, clock: Clock) -> SalesforceSandbox | None:
    try:
        from connector.sandbox.salesforce import SalesforceSandbox
    except ImportError:
        return None
    return SalesforceSandbox(leads=contacts, clock=clock)


def wrapped(echo: Echo, width: int) -> Echo:
    """`echo`, each line wrapped at word boundaries to `width` columns with a hanging indent (nothing cut)."""
    return lambda text: echo("\n".join(hanging(line, width) if len(line) > width else line for line in text.split("\n")))


def run_demo(contacts: int = 400, echo: Echo | None = None, at: datetime | None = None, width: int | None = None) -> dict[str, Any]:
    """Run the whole product against the sandbox, CRMs and connector on one clock pinned to `at` (default DEMO_AT).

    Returns the figures it printed. `width`: wrap the printed lines to that many columns (a terminal's width).
    """
    from connector.observability.logging import configure_logging

    say: Echo = echo or (lambda line: None)
    if width is not None:
        say = wrapped(say, width)
    configure_logging("WARNING", as_json=False)
    with ExitStack() as stack:
        stage = _set_stage(stack, contacts, PinnedClock(at or DEMO_AT))
        _announce(say, stage, contacts, pinned=at is not None)
        hs, settings, store, adapters, clock = stage.hubspot, stage.settings, stage.store, stage.adapters, stage.clock

        # One record the CRM will refuse (an invalid value), to show a dead letter that does not block its batch.
        first_id = next(iter(sorted(hs.records_ids("contacts"), key=int)))
        hs.fail_write_ids[first_id] = ("VALIDATION_ERROR", "Property values were not valid: demo rejection")

        say("1/3 backfill: every lead scored, routed and written back …")
        # The demo's own summary remembers each lead, so that the story counts a lead once across its three steps.
        full = backfill(settings, store, adapters, clock, summary=RunSummary(mode="backfill", tally=OutcomeTally(remember=True)))
        say(_line(full))

        say("2/3 live arrivals: 5 new leads, and a person reassigns one lead in the CRM …")
        reassigned, person_owner = _live_arrivals(hs)
        live = sync_once(settings, store, adapters, clock)
        say(_line(live))
        received = {"e-mails": len(stage.smtp.mails), "webhook POSTs": len(stage.http.posts)}
        for line in story_lines(store.list_notifications(), received):
            say(line)

        say("3/3 re-sync with nothing new: it must write nothing …")
        again = sync_once(settings, store, adapters, clock)
        say(_line(again))

        kept = reassigned is None or (hs.get_record("contacts", reassigned) or {}).get("hubspot_owner_id") == person_owner
        result = _figures(full, live, again, kept=kept, dead=store.count_dead_letters())
        result["notifications"] = delivery_figures(store.list_notifications())
        _tell_figures(say, result)
        return result


def _set_stage(stack: ExitStack, contacts: int, clock: PinnedClock) -> _Stage:
    """Start the sandbox CRMs and open a throwaway store; `stack` closes them all."""
    from connector.sandbox.hubspot import HubSpotSandbox
    from connector.sandbox.receivers import HttpReceiver, SmtpReceiver

    state_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="connector-demo-")))
    hs = stack.enter_context(HubSpotSandbox(contacts=contacts, clock=clock))
    sf = _salesforce_sandbox(contacts, clock)
    if sf is not None:
        stack.enter_context(sf)
    smtp, http = stack.enter_context(SmtpReceiver()), stack.enter_context(HttpReceiver())
    settings = with_demo_channels(demo_settings(state_dir, hs, sf), smtp.mailto_url, f"{http.url}/hooks/hot-leads")
    store = stack.enter_context(Store.open(settings.store.url))
    adapters = make_adapters(settings, guard_for=guard_factory(store, settings, clock), clock=clock)
    return _Stage(hs, sf, settings, store, adapters, clock, smtp, http)


def _announce(say: Echo, stage: _Stage, contacts: int, *, pinned: bool) -> None:
    sf = stage.salesforce
    say(f"Sandbox CRMs up: HubSpot {stage.hubspot.base_url}" + (f", Salesforce {sf.instance_url}" if sf else "") + f"; {contacts} leads each.")
    say(
        f"Clock: the story runs as at {stage.clock.start:%a %Y-%m-%d %H:%M} UTC"
        + (" (--at)." if pinned else " (a working hour for the example reps).")
    )
    say("Real runs use the real time; `connector --at ISO-TIME demo` picks another instant.")


def _live_arrivals(hs: HubSpotSandbox) -> tuple[str | None, str]:
    """Five new leads arrive and a person hands the last owned lead to the first owner: (that lead's id, the owner)."""
    # Hot leads in the portal's own shapes, from a customer account whose owner the relationship routes them to.
    for n in range(5):
        hs.create_contact({
            "email": f"new.lead{n}@globex.example", "firstname": "New", "lastname": f"Lead{n}", "jobtitle": "VP of Sales",
            "country": "United States", "numemployees": "1000-5000", "industry": "Computer Software",
            "budget_range": "over_250k", "decision_role": "decision_maker", "need_confirmed": "true",
            "purchase_timeline": "this_quarter", "seniority": "vp", "product_interest": "analytics;crm",
        })
    owned = [rid for rid in sorted(hs.records_ids("contacts"), key=int) if (hs.get_record("contacts", rid) or {}).get("hubspot_owner_id")]
    person_owner: str = hs.owners()[0]["id"]
    if not owned:
        return None, person_owner
    hs.person_update("contacts", owned[-1], {"hubspot_owner_id": person_owner})
    return owned[-1], person_owner


def story_outcomes(*runs: RunSummary) -> dict[str, LeadOutcome]:
    """Each lead's outcome over several runs in order: its latest grade, and routed if any run routed it."""
    out: dict[str, LeadOutcome] = {}
    for run in runs:
        for key, outcome in run.tally.outcomes.items():
            out[key] = merged(out.get(key), outcome)
    return out


def _figures(full: RunSummary, live: RunSummary, again: RunSummary, *, kept: bool, dead: int) -> dict[str, Any]:
    """The demo's JSON: the whole story, each lead counted once (its latest grade and decision), and each step's cost.

    Adapters count calls from their start, so a run's `api_calls` is the story so far: the last run's is the whole demo.
    """
    story = tally(story_outcomes(full, live, again))
    steps = [full, live, again]
    totals = [sum(run.api_calls.values()) for run in steps]
    return {
        "leads": story.leads,
        "grades": positive(story.grades),
        "leads_per_rep": positive(story.leads_per_rep),
        "api_calls": dict(again.api_calls),
        "api_calls_total": totals[-1],
        "written": full.written + live.written,
        "resync_written": again.written,
        "person_choice_kept": kept,
        "dead_letters": dead,
        "decisions": {kind: story.decisions[kind] for kind in DECISION_KINDS},
        "routed": story.decisions["routed"],
        "routed_by": {how: story.routed_by[how] for how in ROUTED_BY},
        "waiting": again.waiting,
        "api_calls_by_step": {"backfill": totals[0], "live": totals[1] - totals[0], "resync": totals[2] - totals[1]},
        "resync_fetched": again.fetched,
        "resync_rechecked_waiting": again.rechecked_waiting,
    }


def routed_words(routed_by: dict[str, int]) -> str:
    """`rule 120, fallback queue 52` (the non-zero ways a lead got a new owner)."""
    return ", ".join(f"{how.replace('_', ' ')} {n}" for how, n in routed_by.items() if n) or "none"


def _tell_figures(say: Echo, result: dict[str, Any]) -> None:
    decisions: dict[str, int] = result["decisions"]
    per_rep: dict[str, int] = result["leads_per_rep"]
    dead: int = result["dead_letters"]
    steps = result["api_calls_by_step"]
    to_reps = sum(per_rep.values())
    queue = result["routed_by"]["fallback_queue"]
    say("")
    say(f"Leads: {result['leads']} (each counted once over the whole story)   written: {result['written']}   "
        f"re-sync writes: {result['resync_written']}")
    say(f"Decisions: routed {decisions['routed']} ({routed_words(result['routed_by'])}), kept {decisions['kept']}, "
        f"waiting {decisions['waiting']}, unrouted {decisions['unrouted']}")
    say("Grades: " + ", ".join(f"{g} {n}" for g, n in sorted(result["grades"].items(), key=lambda kv: -kv[1])))
    say(f"New leads per rep ({to_reps} to reps, {queue} to the fallback queue"
        + (f", {decisions['routed'] - to_reps - queue} to CRM owners who are not configured reps" if decisions["routed"] - to_reps - queue else "")
        + "): " + ", ".join(f"{rep.split('@')[0]} {n}" for rep, n in sorted(per_rep.items())))
    say(f"API calls used (whole demo): {result['api_calls_total']} "
        f"(backfill {steps['backfill']}, live arrivals {steps['live']}, re-sync {steps['resync']})")
    say(f"A person's owner change kept: {'yes' if result['person_choice_kept'] else 'NO'}")
    say(f"Dead-lettered: {dead}" + (
        " (the CRM refused a value; the demo's store is deleted when it ends: "
        "in a real run `connector errors list` shows each one)" if dead else ""))


def _line(summary: RunSummary) -> str:
    data = summary.as_json()
    rechecked = f" ({summary.rechecked_waiting} of them waiting leads re-checked)" if summary.rechecked_waiting else ""
    line = (
        f"   fetched {summary.fetched}{rechecked}: {data['leads']} leads, routed {summary.routed} "
        f"({routed_words(data['routed_by'])}), written {summary.written}, unchanged {summary.unchanged}, "
        f"dead-lettered {summary.dead_lettered} in {summary.seconds:.1f}s"
    )
    waiting = waiting_line(summary.as_json())
    return f"{line}\n   {waiting}" if waiting else line
