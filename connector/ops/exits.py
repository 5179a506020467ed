"""How a command ends: its exit code (0 done, 1 aborted, 2 config/usage), the message on stderr and, with --json, one JSON object on stdout."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from functools import wraps
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

import click

from connector.core.errors import AuthError, ConfigError, ConnectorError, UsageError

if TYPE_CHECKING:
    from connector.runners.jobs import RunSummary

EXIT_OK, EXIT_ABORTED, EXIT_CONFIG = 0, 1, 2
SUMMARY_KEY = "connector.summary"
P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str, code: int, *, as_json: bool = False, payload: dict[str, Any] | None = None) -> NoReturn:
    """The message on stderr; with --json also one JSON object on stdout (a CronJob parsing stdout never reads nothing)."""
    click.echo(message, err=True)
    if as_json:
        click.echo(json.dumps(payload if payload is not None else {"error": message}))
    sys.exit(code)


def run_summary(mode: str, *, dry_run: bool = False) -> RunSummary:
    """A run's summary, registered with the command so an error that stops the run still prints what it did."""
    from connector.runners.jobs import RunSummary

    summary = RunSummary(mode=mode, dry_run=dry_run)
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta[SUMMARY_KEY] = summary
    return summary


def aborted_payload(exc: ConnectorError, message: str) -> dict[str, Any]:
    """The JSON of a command stopped by `exc`: its run's summary when it ran one, else the error alone."""
    from connector.runners.jobs import RunSummary, abort_reason  # the job modules load only when a command fails

    ctx = click.get_current_context(silent=True)
    summary = ctx.meta.get(SUMMARY_KEY) if ctx is not None else None
    if isinstance(summary, RunSummary):
        if summary.aborted is None:
            summary.abort(exc)
        return summary.as_json()
    crm = getattr(exc, "crm", None)
    return {"error": message, "aborted": str(exc), "aborted_reason": abort_reason(exc), "aborted_crm": crm if isinstance(crm, str) else None}


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Process boundary: turn connector errors into a clear message and an exit code (and JSON with --json)."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        as_json = bool(kwargs.get("as_json"))
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            fail(f"configuration error: {exc}", EXIT_CONFIG, as_json=as_json)
        except UsageError as exc:
            fail(f"usage error: {exc}", EXIT_CONFIG, as_json=as_json)
        except AuthError as exc:
            message = f"authentication failed: {exc}"
            fail(message, EXIT_ABORTED, as_json=as_json, payload=aborted_payload(exc, message) if as_json else None)
        except ConnectorError as exc:
            message = f"aborted: {exc}"
            fail(message, EXIT_ABORTED, as_json=as_json, payload=aborted_payload(exc, message) if as_json else None)

    return wrapper


class JsonAwareGroup(click.Group):
    """The root group: with --json anywhere on the line, click's own usage errors also print {"error": …} on stdout."""

    def main(self, args: Sequence[str] | None = None, *pos: Any, **kw: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if "--json" not in argv or kw.get("standalone_mode") is False:
            return super().main(args, *pos, **kw)
        try:
            return super().main(argv, *pos, **{**kw, "standalone_mode": False})
        except click.ClickException as exc:
            exc.show()
            click.echo(json.dumps({"error": exc.format_message()}))
            sys.exit(exc.exit_code)
        except click.Abort:
            fail("aborted", EXIT_ABORTED, as_json=True)
