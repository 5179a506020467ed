"""`connector demo`: the sandbox CRMs in-process, a backfill, live arrivals and a person's edit, then a summary."""

from __future__ import annotations

import tempfile
from collections import Counter
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
from connector.state.ratelimit import guard_factory
from connector.ops.summary import waiting_line
from connector.state.store import Store

if TYPE_CHECKING:
    from connector.sandbox.hubspot import HubSpotSandbox
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


def run_demo(contacts: int = 400, echo: Echo | None = None, at: datetime | None = None) -> dict[str, Any]:
    """Run the whole product against the sandbox, CRMs and connector on one clock pinned to `at` (default DEMO_AT).

    Returns the figures it printed.
    """
    from connector.observability.logging import configure_logging

    say: Echo = echo or (lambda line: None)
    configure_logging("WARNING", as_json=False)
    with ExitStack() as stack:
        stage = _set_stage(stack, contacts, PinnedClock(at or DEMO_AT))
        _announce(say, stage, contacts, pinned=at is not None)
        hs, settings, store, adapters, clock = stage.hubspot, stage.settings, stage.store, stage.adapters, stage.clock

        # One record the CRM will refuse (an invalid value), to show a dead letter that does not block its batch.
        first_id = next(iter(sorted(hs.records_ids("contacts"), key=int)))
        hs.fail_write_ids[first_id] = ("VALIDATION_ERROR", "Property values were not valid: demo rejection")

        say("1/3 backfill: every lead scored, routed and written back …")
        full = backfill(settings, store, adapters, clock)
        say(_line(full))

        say("2/3 live arrivals: 5 new leads, and a person reassigns one lead in the CRM …")
        reassigned, person_owner = _live_arrivals(hs)
        live = sync_once(settings, store, adapters, clock)
        say(_line(live))

        say("3/3 re-sync with nothing new: it must write nothing …")
        again = sync_once(settings, store, adapters, clock)
        say(_line(again))

        kept = reassigned is None or (hs.get_record("contacts", reassigned) or {}).get("hubspot_owner_id") == person_owner
        result = _figures(full, live, again, kept=kept, dead=store.count_dead_letters())
        _tell_figures(say, result, processed=full.fetched + live.fetched)
        return result


def _set_stage(stack: ExitStack, contacts: int, clock: PinnedClock) -> _Stage:
    """Start the sandbox CRMs and open a throwaway store; `stack` closes them all."""
    from connector.sandbox.hubspot import HubSpotSandbox

    state_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="connector-demo-")))
    hs = stack.enter_context(HubSpotSandbox(contacts=contacts, clock=clock))
    sf = _salesforce_sandbox(contacts, clock)
    if sf is not None:
        stack.enter_context(sf)
    settings = demo_settings(state_dir, hs, sf)
    store = stack.enter_context(Store.open(settings.store.url))
    adapters = make_adapters(settings, guard_for=guard_factory(store, settings, clock), clock=clock)
    return _Stage(hs, sf, settings, store, adapters, clock)


def _announce(say: Echo, stage: _Stage, contacts: int, *, pinned: bool) -> None:
    sf = stage.salesforce
    say(f"Sandbox CRMs up: HubSpot {stage.hubspot.base_url}" + (f", Salesforce {sf.instance_url}" if sf else "") + f"; {contacts} leads each.")
    say(
        f"Clock: the story runs as at {stage.clock.start:%a %Y-%m-%d %H:%M} UTC"
        + (" (--at)" if pinned else " (a working hour for the example reps)")
        + "; real runs use the real time, and `connector --at ISO-TIME demo` picks another instant."
    )


def _live_arrivals(hs: HubSpotSandbox) -> tuple[str | None, str]:
    """Five new leads arrive and a person hands the last owned lead to the first owner: (that lead's id, the owner)."""
    for n in range(5):
        hs.create_contact({
            "email": f"new.lead{n}@hooli.example", "firstname": "New", "lastname": f"Lead{n}", "jobtitle": "VP of Sales",
            "country": "US", "numemployees": "1200", "industry": "SOFTWARE",
        })
    owned = [rid for rid in sorted(hs.records_ids("contacts"), key=int) if (hs.get_record("contacts", rid) or {}).get("hubspot_owner_id")]
    person_owner: str = hs.owners()[0]["id"]
    if not owned:
        return None, person_owner
    hs.person_update("contacts", owned[-1], {"hubspot_owner_id": person_owner})
    return owned[-1], person_owner


def _figures(full: RunSummary, live: RunSummary, again: RunSummary, *, kept: bool, dead: int) -> dict[str, Any]:
    """The demo's JSON: what the backfill and the live sync did, and what the idle re-sync cost."""
    return {
        "leads": full.fetched,
        "grades": dict(Counter(full.grades) + Counter(live.grades)),
        "leads_per_rep": dict(Counter(full.leads_per_rep) + Counter(live.leads_per_rep)),
        "api_calls": dict(again.api_calls),
        "api_calls_total": sum(again.api_calls.values()),
        "written": full.written + live.written,
        "resync_written": again.written,
        "person_choice_kept": kept,
        "dead_letters": dead,
    }


def _tell_figures(say: Echo, result: dict[str, Any], *, processed: int) -> None:
    grades: dict[str, int] = result["grades"]
    per_rep: dict[str, int] = result["leads_per_rep"]
    dead: int = result["dead_letters"]
    say("")
    say(f"Leads processed: {processed}   written: {result['written']}   re-sync writes: {result['resync_written']}")
    say("Grades: " + ", ".join(f"{g} {n}" for g, n in sorted(grades.items(), key=lambda kv: -kv[1])))
    say("Leads per rep: " + ", ".join(f"{rep.split('@')[0]} {n}" for rep, n in sorted(per_rep.items())))
    say(f"API calls used (whole demo): {result['api_calls_total']}")
    say(f"A person's owner change kept: {'yes' if result['person_choice_kept'] else 'NO'}")
    say(f"Dead-lettered: {dead}" + (" (the CRM refused a value; see `connector errors list`)" if dead else ""))


def _line(summary: RunSummary) -> str:
    line = (
        f"   fetched {summary.fetched}, routed {summary.routed}, written {summary.written}, unchanged {summary.unchanged}, "
        f"dead-lettered {summary.dead_lettered} in {summary.seconds:.1f}s"
    )
    waiting = waiting_line(summary.as_json())
    return f"{line}\n   {waiting}" if waiting else line
