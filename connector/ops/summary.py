"""Human output of runs: the summary table a person reads in ten seconds, and the dry-run diff CSV."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from connector.core.models import Patch, wait_cause_words

DIFF_COLUMNS = ("crm", "object", "id", "field", "current", "new", "reason")


def render_summary(summary: Any, console: Console | None = None) -> None:
    """A run summary as compact tables: totals, grades, leads per rep, API calls."""
    console = console or Console()
    data = summary.as_json()
    title = f"{data['mode']}{' (dry run: nothing written)' if data['dry_run'] else ''}"
    totals = Table(title=title, show_header=False, box=None, pad_edge=False)
    for key in ("fetched", "scored", "routed", "written", "unchanged", "dead_lettered", "skipped", "waiting", "seconds"):
        totals.add_row(key.replace("_", " "), str(data[key]))
    console.print(totals)
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


def diff_rows(patches: Sequence[Patch]) -> list[dict[str, Any]]:
    """One row per field a dry run would change: crm, object, id, field, current, new, reason."""
    rows = []
    for patch in patches:
        for field, new in patch.changes.items():
            rows.append({
                "crm": patch.crm, "object": patch.object_type, "id": patch.record_id, "field": field,
                "current": "" if patch.current.get(field) is None else patch.current.get(field),
                "new": new, "reason": patch.reasons.get(field, ""),
            })
    return rows


def write_diff_csv(path: Path, patches: Sequence[Patch]) -> int:
    """Write the planned changes; returns the number of rows."""
    rows = diff_rows(patches)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=DIFF_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)
