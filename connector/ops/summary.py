"""Human output of runs: the summary table a person reads in ten seconds, and the dry-run diff CSV."""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from connector.core.models import Owner, Patch, wait_cause_words

DIFF_COLUMNS = ("crm", "object", "id", "field", "current", "new", "reason", "current_owner", "new_owner", "why")


def render_summary(summary: Any, console: Console | None = None) -> None:
    """A run summary as compact tables: totals, grades, leads per rep, API calls."""
    console = console or Console()
    data = summary.as_json()
    # The heading is a line of its own: as a table title it would wrap to the narrow totals table's width.
    console.print(f"[bold]{data['mode']}[/]{' (dry run: nothing written)' if data['dry_run'] else ''}", highlight=False)
    totals = Table(show_header=False, box=None, pad_edge=False)
    for key in ("fetched", "leads", "routed", "written", "unchanged", "dead_lettered", "skipped", "waiting", "seconds"):
        if key in data:
            totals.add_row(key.replace("_", " "), str(data[key]))
    console.print(totals)
    if data.get("decisions"):
        console.print(decision_line(data))
    line = waiting_line(data)
    if line:
        console.print(line)
    if data["grades"]:
        console.print("grades: " + ", ".join(f"{g} {n}" for g, n in sorted(data["grades"].items(), key=lambda kv: -kv[1])))
    if data["leads_per_rep"]:
        reps = Table("rep", "new leads", title="leads per rep", box=None)
        for rep, n in sorted(data["leads_per_rep"].items()):
            reps.add_row(rep, str(n))
        console.print(reps)
    if data["api_calls"]:
        console.print(f"API calls: {sum(data['api_calls'].values())} (" + ", ".join(f"{k} {v}" for k, v in data["api_calls"].items()) + ")")
    if data["aborted"]:
        console.print(f"[bold red]stopped:[/] {data['aborted']}")


def decision_line(data: Mapping[str, Any]) -> str:
    """`decided 60 leads: routed 48 (rule 39, account match 9), kept 4, waiting 8, unrouted 0`."""
    how = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in data["routed_by"].items() if n)
    kinds = [f"{kind} {n}" + (f" ({how})" if kind == "routed" and how else "") for kind, n in data["decisions"].items()]
    return f"decided {data['leads']} leads: " + ", ".join(kinds)


def waiting_line(data: Mapping[str, Any]) -> str | None:
    """`waiting 531: outside working hours 500, at capacity 31 — next available Mon 2026-12-07 14:00 UTC` (None: nothing waits)."""
    if not data.get("waiting"):
        return None
    reasons = data.get("waiting_reasons") or {}
    causes = ", ".join(f"{wait_cause_words(cause)} {n}" for cause, n in reasons.items())
    at = data.get("next_available_at")
    if at:
        when = datetime.fromisoformat(at).astimezone(UTC)
        until = f"next available {when:%a %Y-%m-%d %H:%M} UTC"
    else:
        until = "no known time when someone becomes available"
    return f"waiting {data['waiting']}: {causes or 'nobody available'} — {until}"


def diff_rows(patches: Sequence[Patch], owners: Mapping[str, Sequence[Owner]] | None = None) -> list[dict[str, Any]]:
    """One row per field a dry run would change, in a reviewer's words: values as the CRM will show them (grade
    `Cold`, score `40`), owners by name and email (queues by name) next to their ids, and why."""
    directory = {(crm, o.id): o for crm, found in (owners or {}).items() for o in found}
    rows = []
    for patch in patches:
        for field, new in patch.changes.items():
            current = patch.current.get(field)
            reason = human_reason(patch.reasons.get(field, ""))
            rows.append({
                "crm": patch.crm, "object": patch.object_type, "id": patch.record_id, "field": field,
                "current": shown(field, current), "new": shown(field, new), "reason": reason,
                "current_owner": owner_label(directory, patch.crm, current) if field == "owner_id" else "",
                "new_owner": owner_label(directory, patch.crm, new) if field == "owner_id" else "",
                "why": why(field, shown(field, current), shown(field, new), reason),
            })
    return rows


def shown(field: str, value: Any) -> str:
    """A value as the CRM shows it: nothing for no value, 40 for 40.0, the grade's picklist label (cold → Cold)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if field == "grade" and isinstance(value, str):
        # HubSpot's grade options are labelled g.title() (adapters/hubspot/bootstrap.py); Salesforce's
        # Rating picklist spells them Hot / Warm / Cold.
        return value.title()
    return str(value)


def owner_label(directory: Mapping[tuple[str, str], Owner], crm: str, owner_id: Any) -> str:
    """`Ana Lopez <ana@example.com>`, `EMEA inbound (queue)`, or nothing when the id is unknown or empty."""
    owner = directory.get((crm, str(owner_id))) if owner_id not in (None, "") else None
    if owner is None:
        return ""
    if owner.is_queue:
        return f"{owner.name or owner.id} (queue)"
    label = owner.name or owner.email or owner.id
    return f"{label} <{owner.email}>" if owner.email and owner.name else label


def human_reason(reason: str) -> str:
    """The engine's reason without Python reprs: `None -> 'cold'` → `from (empty) to cold`, `30.0` → `30`."""
    text = re.sub(r"\bNone\b", "(empty)", reason)
    text = re.sub(r"\b(\d+)\.0\b", r"\1", re.sub(r"'([^']*)'", r"\1", text))
    before, arrow, after = text.partition(" -> ")
    return f"from {before} to {after}" if arrow else text


def why(field: str, current: str, new: str, reason: str) -> str:
    """Why this field changes, as one sentence a reviewer reads."""
    if field == "owner_id":
        return f"new owner: {reason}" if reason else "new owner"
    if field == "score":
        return f"first score: {new}" if not current else f"score changes from {current} to {new}"
    if field == "grade":
        return f"grade of the new score: {new}" if not current else f"the score moves the grade from {current} to {new}"
    if field == "stage":
        return f"stage {reason}" if reason else f"stage moves to {new}"
    return reason or f"set to {new}"


def write_diff_csv(path: Path, patches: Sequence[Patch], owners: Mapping[str, Sequence[Owner]] | None = None) -> int:
    """Write the planned changes (with owner names when `owners`, crm → owners, is given); returns the number of rows."""
    rows = diff_rows(patches, owners)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=DIFF_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)
