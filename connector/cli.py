"""The `connector` command: load config, run a job, map error classes to exit codes (0 done, 1 aborted, 2 config/usage)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from connector.errors import AuthError, ConfigError, ConnectorError, CrmApiError, UsageError

EXIT_OK, EXIT_ABORTED, EXIT_CONFIG = 0, 1, 2
F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("connector.cli")


def _fail(message: str, code: int) -> None:
    click.echo(message, err=True)
    sys.exit(code)


def handle_errors(fn: F) -> F:
    """Process boundary: turn connector errors into a clear message and an exit code."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            _fail(f"configuration error: {exc}", EXIT_CONFIG)
        except UsageError as exc:
            _fail(f"usage error: {exc}", EXIT_CONFIG)
        except AuthError as exc:
            _fail(f"authentication failed: {exc}", EXIT_ABORTED)
        except CrmApiError as exc:
            _fail(f"aborted: {exc}", EXIT_ABORTED)
        except ConnectorError as exc:
            _fail(f"aborted: {exc}", EXIT_ABORTED)
        return None

    return wrapper  # type: ignore[return-value]


config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), envvar="CONNECTOR_CONFIG", default=None,
    help="TOML config file (or CONNECTOR_CONFIG). Environment variables CONNECTOR_SECTION__KEY override it.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout instead of a table.")


def load(config_path: str | None) -> Any:
    from connector.config import load_settings
    from connector.observability import configure_logging

    settings = load_settings(config_path)
    configure_logging(settings.logging.level, log_emails=settings.logging.log_emails, as_json=settings.logging.as_json)
    return settings


@contextmanager
def opened(settings: Any) -> Iterator[tuple[Any, Any, Any]]:
    """The store, the adapters (each with its account's shared limiter) and the clock for one command."""
    from connector.clock import SystemClock
    from connector.jobs import make_adapters
    from connector.ratelimit import guard_factory
    from connector.store import Store

    clock = SystemClock()
    with Store.open(settings.store.url) as store:
        adapters = make_adapters(settings, guard_for=guard_factory(store, settings, clock), clock=clock)
        if not adapters:
            raise UsageError("no CRM is enabled: set [hubspot] enabled = true and/or [salesforce] enabled = true")
        yield store, adapters, clock


def print_summary(summary: Any, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(summary.as_json(), sort_keys=False))
        return
    from connector.report import render_summary

    render_summary(summary)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="crm-lead-connector")
def main() -> None:
    """Keep HubSpot and Salesforce leads scored, owned and staged."""


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


@main.command()
@click.option("--once", is_flag=True, help="Run one incremental pass and exit (cron / Kubernetes CronJob).")
@config_option
@json_option
@handle_errors
def sync(once: bool, config_path: str | None, as_json: bool) -> None:
    """Incremental sync since the last cursor; without --once, repeat every [sync] poll_interval_seconds."""
    from connector.jobs import sync_once

    settings = load(config_path)
    with opened(settings) as (store, adapters, clock):
        while True:
            summary = sync_once(settings, store, adapters, clock)
            print_summary(summary, as_json)
            if once:
                sys.exit(EXIT_ABORTED if summary.aborted else EXIT_OK)
            clock.sleep(settings.sync.poll_interval_seconds)


@main.command()
@click.option("--dry-run", is_flag=True, help="Compute every change but write nothing (CRM or state store).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Stop after about N leads.")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None, help="With --dry-run: write every planned change to this CSV.")
@config_option
@json_option
@handle_errors
def backfill(dry_run: bool, limit: int | None, out: str | None, config_path: str | None, as_json: bool) -> None:
    """Score, route and stage every lead; resumable from the last handled page."""
    from connector.jobs import backfill as run_backfill

    if out and not dry_run:
        raise UsageError("--out writes the planned changes of a --dry-run; add --dry-run")
    settings = load(config_path)
    with opened(settings) as (store, adapters, clock):
        summary = run_backfill(settings, store, adapters, clock, dry_run=dry_run, limit=limit)
    if out:
        from connector.report import write_diff_csv

        write_diff_csv(Path(out), summary.patches)
    print_summary(summary, as_json)
    sys.exit(EXIT_ABORTED if summary.aborted else EXIT_OK)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=0, help="0 picks a free port.")
@click.option("--contacts", type=click.IntRange(min=0), default=500, show_default=True, help="Seeded HubSpot contacts.")
@click.option("--leads", "sf_leads", type=click.IntRange(min=0), default=500, show_default=True, help="Seeded Salesforce leads.")
def sandbox(host: str, port: int, contacts: int, sf_leads: int) -> None:
    """Run the built-in HubSpot (and Salesforce) compatible sandbox until Ctrl-C."""
    from connector.sandbox.hubspot import HubSpotSandbox

    hs = HubSpotSandbox(contacts=contacts, host=host, port=port)
    hs.start()
    click.echo(f"HubSpot sandbox:    {hs.base_url}   token: {hs.token}")
    click.echo(f"  export CONNECTOR_HUBSPOT__ENABLED=true CONNECTOR_HUBSPOT__BASE_URL={hs.base_url} CONNECTOR_HUBSPOT__ACCESS_TOKEN={hs.token}")
    sf = None
    try:
        from connector.sandbox.salesforce import SalesforceSandbox
    except ImportError:
        SalesforceSandbox = None  # type: ignore[assignment,misc]
    if SalesforceSandbox is not None:
        sf = SalesforceSandbox(leads=sf_leads)
        sf.start()
        click.echo(f"Salesforce sandbox: {sf.instance_url}   CA file: {sf.ca_file}")
        click.echo(
            "  export CONNECTOR_SALESFORCE__ENABLED=true "
            f"CONNECTOR_SALESFORCE__LOGIN_URL={sf.instance_url} CONNECTOR_SALESFORCE__CLIENT_ID={sf.client_id} "
            f"CONNECTOR_SALESFORCE__CLIENT_SECRET={sf.client_secret} CONNECTOR_SALESFORCE__CA_BUNDLE={sf.ca_file}"
        )
    click.echo("Ctrl-C to stop.")
    try:
        import threading

        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        hs.stop()
        if sf is not None:
            sf.stop()


@main.command()
@click.option("--contacts", type=click.IntRange(min=10, max=100_000), default=400, show_default=True, help="Sandbox leads per CRM.")
@json_option
@handle_errors
def demo(contacts: int, as_json: bool) -> None:
    """Everything end to end against the built-in sandbox CRM: no credentials needed."""
    from connector.demo import run_demo

    result = run_demo(contacts=contacts, echo=None if as_json else click.echo)
    if as_json:
        click.echo(json.dumps(result, sort_keys=False))


@main.command()
@click.argument("lead_ref", metavar="CRM:ID")
@config_option
@json_option
@handle_errors
def explain(lead_ref: str, config_path: str | None, as_json: bool) -> None:
    """Why this score, why this owner, and what would be written — for one lead (reads only)."""
    from connector.explain import explain_lead, render_explanation

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
    from connector.events import parse_events_file
    from connector.store import Store

    settings = load(config_path)
    parsed, problems = parse_events_file(Path(file))
    with Store.open(settings.store.url) as store:
        inserted = store.add_events(parsed)
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
    from connector.service import run_server

    settings = load(config_path)
    run_server(settings, host=host, port=port)


if __name__ == "__main__":
    main()
