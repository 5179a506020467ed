"""The `connector` command: load config, run a job, map error classes to exit codes (0 done, 1 aborted, 2 config/usage)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

import click

from connector.core.errors import ConfigError, UsageError
from connector.ops.exits import EXIT_ABORTED, EXIT_CONFIG, EXIT_OK, JsonAwareGroup, fail, handle_errors, run_summary

log = logging.getLogger("connector.cli")

if TYPE_CHECKING:
    from connector.adapters.base import CrmAdapter
    from connector.config import Settings
    from connector.core.clock import Clock
    from connector.runners.jobs import RunSummary
    from connector.state.store import Store


def _fail(message: str, code: int) -> NoReturn:
    fail(message, code)


config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), envvar="CONNECTOR_CONFIG", default=None,
    help="TOML config file (or CONNECTOR_CONFIG). Environment variables CONNECTOR_SECTION__KEY override it.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout instead of a table.")


def load(config_path: str | None) -> Settings:
    from connector.config import load_settings
    from connector.observability.logging import configure_logging

    settings = load_settings(config_path)
    configure_logging(settings.logging.level, log_emails=settings.logging.log_emails, as_json=settings.logging.as_json)
    return settings


def pinned_at() -> datetime | None:
    """The instant `connector --at` / CONNECTOR_AT pins this command to, or None (real time)."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    return obj.get("at") if isinstance(obj, dict) else None


def command_clock() -> Clock:
    """The clock of this command: real time, or real time flowing from the `--at` pin."""
    from connector.core.clock import PinnedClock, SystemClock

    at = pinned_at()
    return PinnedClock(at) if at is not None else SystemClock()


def refuse_pinned_time(command: str) -> None:
    """Commands that change a CRM or the state store never run at a pretend time: production leads route now."""
    at = pinned_at()
    if at is not None:
        raise UsageError(
            f"`{command}` changes a CRM or the state store, so it always runs at the real time; "
            f"--at / CONNECTOR_AT ({at:%Y-%m-%dT%H:%M:%SZ}) is for what-if commands only "
            f"(explain, rules test, backfill --dry-run, report, status, demo): unset it"
        )


@contextmanager
def opened(settings: Settings) -> Iterator[tuple[Store, dict[str, CrmAdapter], Clock]]:
    """The store, the adapters (each with its account's shared limiter) and the clock for one command."""
    from connector.runners.jobs import make_adapters
    from connector.state.fresh import open_for_run
    from connector.state.ratelimit import guard_factory

    clock = command_clock()
    # A command that fails before it has work to keep leaves no state file it created behind.
    with open_for_run(settings.store.url) as store:
        adapters = make_adapters(settings, guard_for=guard_factory(store, settings, clock), clock=clock)
        if not adapters:
            raise UsageError("no CRM is enabled: set [hubspot] enabled = true and/or [salesforce] enabled = true")
        yield store, adapters, clock


def print_summary(summary: RunSummary, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(summary.as_json(), sort_keys=False))
        return
    from connector.ops.summary import render_summary

    render_summary(summary)


@click.group(cls=JsonAwareGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="crm-lead-connector")
@click.option(
    "--at", "at", envvar="CONNECTOR_AT", default=None, metavar="ISO-TIME",
    help="Evaluate as at this instant (ISO-8601 with a zone, e.g. 2026-12-07T15:00:00Z; or CONNECTOR_AT): working hours, "
    "holidays, caps, SLA and decay. For explain, rules test, backfill --dry-run, report, status and demo; refused by "
    "commands that change a CRM or the state store.",
)
@click.pass_context
def main(ctx: click.Context, at: str | None) -> None:
    """Keep HubSpot and Salesforce leads scored, owned and staged."""
    from connector.core.clock import parse_instant

    try:
        ctx.obj = {"at": parse_instant(at, what="--at / CONNECTOR_AT") if at else None}
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


@main.command("check-config")
@click.argument("file", type=click.Path(dir_okay=False))
def check_config(file: str) -> None:
    """Validate a config file (and CONNECTOR_* env): exit 0, or list every problem and exit 2."""
    from connector.config import load_settings

    try:
        settings = load_settings(file)
    except ConfigError as exc:
        _fail(str(exc), EXIT_CONFIG)
    crms = ", ".join(settings.enabled_crms) or "none"
    click.echo(f"{file}: OK (CRMs enabled: {crms}; store: {settings.store.url.split('://')[0]})")
    from connector.runners.service.intake_config import unconfigured_intakes

    routes = {"events": "POST /events", "webhooks": "POST /webhooks/hubspot"}
    for group, why in unconfigured_intakes(settings).items():
        click.echo(f"warning: for `connector serve`, {routes[group]} answers 404: {why}")


@main.command()
@click.option("--once", is_flag=True, help="Run one incremental pass and exit (cron / Kubernetes CronJob).")
@config_option
@json_option
@handle_errors
def sync(once: bool, config_path: str | None, as_json: bool) -> None:
    """Incremental sync since the last cursor; without --once, repeat every [sync] poll_interval_seconds."""
    from connector.runners.jobs import start_up_kept_out_of_gc, sync_once

    refuse_pinned_time("sync")
    settings = load(config_path)
    with opened(settings) as (store, adapters, clock), start_up_kept_out_of_gc():
        while True:
            summary = sync_once(settings, store, adapters, clock, summary=run_summary("sync"))
            print_summary(summary, as_json)
            if once:
                sys.exit(EXIT_ABORTED if summary.aborted else EXIT_OK)
            clock.sleep(settings.sync.poll_interval_seconds)


@main.command()
@click.option("--dry-run", is_flag=True, help="Compute every change but write nothing (CRM or state store).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Stop after about N leads.")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None, help="With --dry-run: write every planned change to this CSV.")
@click.option("--notify", is_flag=True, help="Send [notifications] for the leads it routes (a backfill notifies nothing by default).")
@click.option("--join", is_flag=True, help="When another replica runs this backfill, send its writes until it is complete "
              "(and take it over if that replica stops) instead of exiting.")
@config_option
@json_option
@handle_errors
def backfill(dry_run: bool, limit: int | None, out: str | None, notify: bool, join: bool, config_path: str | None, as_json: bool) -> None:
    """Score, route and stage every lead; resumable from the last handled page."""
    from connector.ops.progress import backfill_progress
    from connector.runners.jobs import backfill as run_backfill
    from connector.runners.jobs import start_up_kept_out_of_gc

    if out and not dry_run:
        raise UsageError("--out writes the planned changes of a --dry-run; add --dry-run")
    if not dry_run:
        refuse_pinned_time("backfill")
    settings = load(config_path)
    with opened(settings) as (store, adapters, clock), start_up_kept_out_of_gc():
        progress = backfill_progress(settings, store, adapters, clock, limit=limit, as_json=as_json)
        with progress:
            summary = run_backfill(settings, store, adapters, clock, dry_run=dry_run, limit=limit, on_batch=progress,
                                   summary=run_summary("backfill", dry_run=dry_run), notify=notify, join=join)
        if out:
            from connector.ops.summary import write_diff_csv

            # Owner names and emails next to their ids: one more owners call per CRM, for the reviewer.
            write_diff_csv(Path(out), summary.patches, {crm: a.fetch_owners() for crm, a in adapters.items()})
    print_summary(summary, as_json)
    sys.exit(EXIT_ABORTED if summary.aborted else EXIT_OK)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=0, help="0 picks a free port.")
@click.option("--contacts", type=click.IntRange(min=0), default=500, show_default=True, help="Seeded HubSpot contacts.")
@click.option("--leads", "sf_leads", type=click.IntRange(min=0), default=500, show_default=True, help="Seeded Salesforce leads.")
@click.option("--latency-ms", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Simulated network latency of every request (both sandboxes).")
@click.option("--jitter-ms", type=click.FloatRange(min=0), default=0.0, show_default=True, help="± uniform jitter on --latency-ms.")
def sandbox(host: str, port: int, contacts: int, sf_leads: int, latency_ms: float, jitter_ms: float) -> None:
    """Run the built-in HubSpot (and Salesforce) compatible sandbox until Ctrl-C or SIGTERM."""
    from connector.ops.sandbox_run import run_sandbox

    run_sandbox(host=host, port=port, contacts=contacts, sf_leads=sf_leads, echo=lambda line: click.echo(line),
                latency_ms=latency_ms, jitter_ms=jitter_ms)


@main.command()
@click.option("--contacts", type=click.IntRange(min=10, max=100_000), default=400, show_default=True, help="Sandbox leads per CRM.")
@json_option
@handle_errors
def demo(contacts: int, as_json: bool) -> None:
    """Everything end to end against the built-in sandbox CRM: no credentials needed."""
    import shutil

    from connector.ops.demo import run_demo

    width = shutil.get_terminal_size().columns  # COLUMNS, else the terminal's, else 80
    result = run_demo(contacts=contacts, echo=None if as_json else click.echo, at=pinned_at(), width=width)
    if as_json:
        click.echo(json.dumps(result, sort_keys=False))


@main.command()
@click.argument("lead_ref", metavar="CRM:ID")
@config_option
@json_option
@handle_errors
def explain(lead_ref: str, config_path: str | None, as_json: bool) -> None:
    """Why this score, why this owner, and what would be written — for one lead (reads only)."""
    from connector.ops.explain import explain_lead, render_explanation

    crm, _, record_id = lead_ref.partition(":")
    if crm not in ("hubspot", "salesforce") or not record_id:
        raise UsageError(f"lead reference must be hubspot:ID or salesforce:ID, got {lead_ref!r}")
    settings = load(config_path)
    with opened(settings) as (store, adapters, clock):
        if crm not in adapters:
            raise UsageError(f"{crm} is not enabled in this configuration")
        report = explain_lead(settings, store, adapters, crm, record_id, clock.now())
    if as_json:
        click.echo(json.dumps(report, default=str))
    else:
        render_explanation(report)


@main.command()
@click.option("--crm", type=click.Choice(["hubspot", "salesforce"]), default=None, help="Check this CRM only (default: every enabled one).")
@click.option("--sample", type=click.IntRange(min=1), default=500, show_default=True, help="Read at least N leads (whole pages of a full read).")
@config_option
@json_option
@handle_errors
def doctor(crm: str | None, sample: int, config_path: str | None, as_json: bool) -> None:
    """Check the CRM's fields and a sample of leads against the rules (reads only): exit 0 healthy, 1 a rule can't work."""
    import shutil

    from connector.ops.doctor import doctor_json, open_adapters, run_doctor, throwaway_store
    from connector.ops.doctor_view import doctor_lines

    settings = load(config_path)
    clock = command_clock()
    with throwaway_store() as store, open_adapters(settings, store, clock, crm) as adapters:  # a temporary store, removed after
        checks = run_doctor(settings, store, adapters, clock, sample=sample)
    data = doctor_json(checks)
    if as_json:
        click.echo(json.dumps(data))
    else:
        for line in doctor_lines(checks, width=min(shutil.get_terminal_size().columns, 100)):
            click.echo(line)
    sys.exit(EXIT_OK if data["healthy"] else EXIT_ABORTED)


@main.group()
def events() -> None:
    """Behaviour events (Segment-style track / page / identify)."""


@events.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@config_option
@json_option
@handle_errors
def events_import(file: str, config_path: str | None, as_json: bool) -> None:
    """Load events from a JSONL file into the event store; bad lines are reported with their line number."""
    from connector.engine.scoring import compile_scoring
    from connector.runners.service.events import parse_events_file
    from connector.pipeline.stages import aggregate_fold
    from connector.state.store import Store

    refuse_pinned_time("events import")
    settings = load(config_path)
    parsed, problems = parse_events_file(Path(file))
    with Store.open(settings.store.url) as store:
        inserted = store.add_events(parsed, fold=aggregate_fold(compile_scoring(settings.scoring)))
    result = {"read": len(parsed) + len(problems), "imported": inserted, "duplicates": len(parsed) - inserted, "rejected": problems}
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(f"{inserted} event(s) imported, {len(parsed) - inserted} duplicate(s), {len(problems)} rejected")
        for p in problems:
            click.echo(f"  {p}", err=True)
    # Good lines are kept even when others are rejected; only a file with nothing usable fails.
    sys.exit(EXIT_ABORTED if problems and not parsed else EXIT_OK)


@main.command()
@click.option("--host", default=None, help="Listen address (default: [service] host).")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=None, help="Listen port (default: [service] port; 0 picks a free one).")
@config_option
@handle_errors
def serve(host: str | None, port: int | None, config_path: str | None) -> None:
    """Run the sidecar: HubSpot webhooks, behaviour events, poll loop, /healthz, /readyz, /metrics; SIGTERM drains."""
    from connector.runners.service.app import run_server

    refuse_pinned_time("serve")
    settings = load(config_path)
    run_server(settings, host=host, port=port)


@main.command()
@config_option
@json_option
@handle_errors
def status(config_path: str | None, as_json: bool) -> None:
    """Cursors, last successful sync, backlog, API budget used today and dead letters (reads the state store only)."""
    from connector.ops.status import collect_status, render_status
    from connector.state.store import Store

    settings = load(config_path)
    with Store.open(settings.store.url) as store:
        data = collect_status(settings, store, command_clock())
    if as_json:
        click.echo(json.dumps(data))
    else:
        render_status(data)


@main.group()
def notify() -> None:
    """Notifications: check a channel."""


@notify.command("test")
@click.argument("channel")
@config_option
@handle_errors
def notify_test(channel: str, config_path: str | None) -> None:
    """Send a sample message to CHANNEL (a [[notifications.channels]] name, or rep:EMAIL / manager:EMAIL for a rep's
    notify / manager); exit 1 with the error if it fails."""
    from connector.engine.notifications import rep_channels, rep_targets
    from connector.runners.notify import send_test

    settings = load(config_path)
    attempt = send_test(settings.notifications, channel, command_clock().now(), rep_channels(rep_targets(settings.routing)))
    if attempt.outcome != "sent":
        click.echo(f"notify test {channel}: {attempt.error}", err=True)
        sys.exit(1)
    click.echo(f"notify test {channel}: sent")


@main.group()
def errors() -> None:
    """Dead letters: records the connector gave up on — what, where, why, how often; retry or discard them."""


@errors.command("list")
@click.option("--status", "status_", type=click.Choice(["open", "retrying", "resolved", "discarded", "all"]), default="open", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True)
@config_option
@json_option
@handle_errors
def errors_list(status_: str, limit: int, config_path: str | None, as_json: bool) -> None:
    """List dead letters: id, crm / object / record id / field, code, message, attempts, first and last seen."""
    from connector.ops.errors import dead_letter_json, render_list
    from connector.state.store import Store

    settings = load(config_path)
    with Store.open(settings.store.url) as store:
        letters = store.list_dead_letters(None if status_ == "all" else status_, limit=limit)
    if as_json:
        click.echo(json.dumps({"dead_letters": [dead_letter_json(d) for d in letters]}))
    else:
        render_list(letters)


@errors.command("show")
@click.argument("letter_id", metavar="ID", type=int)
@config_option
@json_option
@handle_errors
def errors_show(letter_id: int, config_path: str | None, as_json: bool) -> None:
    """One dead letter in full, with the write that failed."""
    from connector.ops.errors import dead_letter_json, pick, render_one
    from connector.state.store import Store

    settings = load(config_path)
    with Store.open(settings.store.url) as store:
        letter = pick(store, [letter_id], every_open=False)[0]
    if as_json:
        click.echo(json.dumps(dead_letter_json(letter, with_payload=True)))
    else:
        render_one(letter)


@errors.command("retry")
@click.argument("letter_ids", metavar="ID...", nargs=-1, type=int)
@click.option("--all", "every_open", is_flag=True, help="Retry every open dead letter.")
@click.option("--force", is_flag=True, help="Retry even past [sync] max_dead_letter_attempts.")
@config_option
@json_option
@handle_errors
def errors_retry(letter_ids: tuple[int, ...], every_open: bool, force: bool, config_path: str | None, as_json: bool) -> None:
    """Re-read each record from its CRM and run it through the pipeline again; resolved when the write succeeds."""
    from connector.ops.errors import pick, retry

    refuse_pinned_time("errors retry")
    settings = load(config_path)
    with opened(settings) as (store, adapters, clock):
        results = retry(settings, store, adapters, clock, pick(store, list(letter_ids), every_open=every_open), force=force)
    if as_json:
        click.echo(json.dumps({"results": [r.as_json() for r in results]}))
    else:
        for r in results:
            click.echo(f"dead letter {r.id}: {r.outcome} — {r.detail}")
        if not results:
            click.echo("no open dead letters")
    sys.exit(EXIT_ABORTED if any(r.outcome in ("failed", "not_found") for r in results) else EXIT_OK)


@errors.command("discard")
@click.argument("letter_ids", metavar="ID...", nargs=-1, type=int)
@click.option("--all", "every_open", is_flag=True, help="Discard every open dead letter.")
@config_option
@json_option
@handle_errors
def errors_discard(letter_ids: tuple[int, ...], every_open: bool, config_path: str | None, as_json: bool) -> None:
    """Mark dead letters discarded: kept for the record, never retried."""
    from connector.core.clock import SystemClock
    from connector.ops.errors import discard, pick
    from connector.state.store import Store

    refuse_pinned_time("errors discard")
    settings = load(config_path)
    with Store.open(settings.store.url) as store:
        ids = discard(store, pick(store, list(letter_ids), every_open=every_open), SystemClock().now())
    if as_json:
        click.echo(json.dumps({"discarded": ids}))
    else:
        click.echo(f"discarded {len(ids)} dead letter(s)" + (f": {', '.join(map(str, ids))}" if ids else ""))


def _report_inputs(config_path: str | None, offline: bool) -> dict[str, Any]:
    from connector.ops.insights import collect_report
    from connector.runners.jobs import make_adapters
    from connector.state.ratelimit import guard_factory
    from connector.state.store import Store

    settings = load(config_path)
    clock = command_clock()
    with Store.open(settings.store.url) as store:
        adapters = None if offline else make_adapters(settings, guard_for=guard_factory(store, settings, clock), clock=clock) or None
        return collect_report(settings, store, clock.now(), adapters)


@main.group(invoke_without_command=True)
@click.option("--out", "out", type=click.Path(dir_okay=False), default="report.html", show_default=True, help="Where to write the HTML page.")
@click.option("--offline", is_flag=True, help="Do not read experiment leads back from the CRM (conversions unknown).")
@config_option
@json_option
@click.pass_context
@handle_errors
def report(ctx: click.Context, out: str, offline: bool, config_path: str | None, as_json: bool) -> None:
    """A self-contained HTML report: scores and grades, leads per rep, speed-to-lead and SLA, dead letters, experiments."""
    if ctx.invoked_subcommand is not None:
        return
    from connector.ops.report_html import render_html

    data = _report_inputs(config_path, offline)
    Path(out).write_text(render_html(data), encoding="utf-8")
    if as_json:
        click.echo(json.dumps(data))
    else:
        click.echo(f"report written to {out} ({data['decisions']} decisions, {data['dead_letters']['total']} dead letters)")


@report.command("experiments")
@click.option("--offline", is_flag=True, help="Do not read experiment leads back from the CRM (conversions unknown).")
@config_option
@json_option
@handle_errors
def report_experiments(offline: bool, config_path: str | None, as_json: bool) -> None:
    """Per experiment arm: leads, conversions, conversion rate, the two-proportion p-value and a verdict."""
    data = _report_inputs(config_path, offline)["experiments"]
    if as_json:
        click.echo(json.dumps({"experiments": data}))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not data:
        console.print("no routing experiments configured ([[routing.experiments]])")
    for e in data:
        # A heading line, not a table title: a title wraps to the table's width, narrower than the names can be.
        console.print(f"[bold]experiment {e['experiment']}[/] (rule {e['rule']})", highlight=False)
        table = Table("arm", "strategy", "leads", "conversions", "rate")
        for a in e["arms"]:
            rate = "unknown" if a["rate"] is None else f"{a['rate']:.1%}"
            table.add_row(a["arm"], a["strategy"], str(a["leads"]), "?" if a["conversions"] is None else str(a["conversions"]), rate)
        console.print(table)
        console.print(("p-value unknown" if e["p_value"] is None else f"p-value {e['p_value']:.3g}") + f" — {e['verdict']}")


@main.group()
def rules() -> None:
    """Try the scoring and routing rules without a CRM."""


@rules.command("test")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--at", "at", default=None, help="Alias of the global `connector --at` (ISO time; without a zone, UTC).")
@config_option
@json_option
@handle_errors
def rules_test(file: str, at: str | None, config_path: str | None, as_json: bool) -> None:
    """Score and route sample leads from a CSV or JSONL file (keys = lead attribute names); bad rows name row and field."""
    from connector.core.clock import parse_instant
    from connector.ops.rules_test import render_outcomes, run_samples

    settings = load(config_path)
    if at is not None:
        try:
            now = parse_instant(at, what="--at", naive_is_utc=True)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    else:
        now = command_clock().now()
    outcomes, problems = run_samples(settings, Path(file), now)
    if as_json:
        click.echo(json.dumps({
            "leads": [o.as_json() for o in outcomes],
            "problems": [{"row": p.row, "field": p.field, "message": p.message, "value": p.value} for p in problems],
        }))
    else:
        render_outcomes(outcomes, problems)
    sys.exit(EXIT_ABORTED if problems else EXIT_OK)


@main.command()
@click.argument("person", metavar="EMAIL|CRM:ID")
@click.option("--offline", is_flag=True, help="Do not look the email up in the CRMs (erase only what is keyed by it).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation at a terminal (without a terminal nobody is asked).")
@config_option
@json_option
@handle_errors
def forget(person: str, offline: bool, yes: bool, config_path: str | None, as_json: bool) -> None:
    """Erase what the connector holds about a person (events, scores, explanations, payloads); say what was erased."""
    from connector.core.clock import SystemClock
    from connector.runners.jobs import make_adapters
    from connector.ops.forget import forget as erase
    from connector.ops.forget import is_interactive, lead_key_for, parse_person
    from connector.state.ratelimit import guard_factory
    from connector.state.store import Store

    refuse_pinned_time("forget")
    settings = load(config_path)
    email, ref = parse_person(person)
    if not yes and is_interactive():
        click.confirm(f"Erase everything the connector holds about {person}? It cannot be undone", abort=True)
    object_types = {"hubspot": settings.hubspot.object_type, "salesforce": "Lead"}
    keys: list[str] = [lead_key_for(ref, object_types)] if ref else []
    clock = SystemClock()
    with Store.open(settings.store.url) as store:
        if email and not offline:
            # The person's leads in each enabled CRM, so their decisions and dead letters are found too.
            for adapter in make_adapters(settings, guard_for=guard_factory(store, settings, clock), clock=clock).values():
                find = getattr(adapter, "find_leads_by_email", None)
                if find is not None:
                    keys += [lead.key for lead in find([email], every_lead=True)]  # converted leads too
        result = erase(store, email=email, lead_keys=keys, now=clock.now())
    if as_json:
        click.echo(json.dumps(result.as_json()))
    else:
        for line in result.lines():
            click.echo(line)


if __name__ == "__main__":
    main()
