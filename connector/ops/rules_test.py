"""`connector rules test`: score and route sample leads from a CSV / JSONL file with the configured engine, no CRM."""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from connector.canonical.domains import shipped_free_mail_domains
from connector.canonical.parsers import parse_band, parse_boolean
from connector.canonical.reader import PLACE_AND_INDUSTRY, Canonical
from connector.config import Settings
from connector.engine.routing import (
    RoutingContext,
    RoutingState,
    apply_change,
    availability_snapshot,
    build_reps,
    compile_routing,
    route_lead,
)
from connector.engine.scoring import compile_scoring, score_lead
from connector.core.errors import UsageError
from connector.core.models import CRMS, Crm, Lead, Owner, as_crm, lead_field_types

_TRUE = frozenset({"true", "yes", "y", "1", "t"})
_FALSE = frozenset({"false", "no", "n", "0", "f"})
_DEFAULT_OBJECT = {"hubspot": "contacts", "salesforce": "Lead"}


@dataclass(frozen=True)
class RowProblem:
    """A sample row that could not become a lead: its row number (header = row 1 in CSV; line in JSONL) and field."""

    row: int
    field: str
    message: str
    value: str = ""  # the offending value as written in the file ("" when the whole row / line is at fault)

    def __str__(self) -> str:
        value = f', value "{self.value}"' if self.value else ""
        return f"row {self.row}, field {self.field}{value}: {self.message}"


@dataclass(frozen=True)
class Outcome:
    """One sample lead's score and routing."""

    row: int
    lead: str
    score: float
    grade: str
    model: str
    kind: str
    rule: str | None
    pool: str | None
    rep: str | None
    owner_id: str | None
    reasons: tuple[str, ...]
    # A waiting lead: why (a models.WaitCause) and who becomes available first, when.
    wait_cause: str | None = None
    next_available_at: datetime | None = None
    next_available_rep: str | None = None

    @property
    def waiting(self) -> str | None:
        """The "waiting: ..." sentence of a lead that waits."""
        return next((r for r in reversed(self.reasons) if r.startswith("waiting:")), None) if self.kind == "wait" else None

    def as_json(self) -> dict[str, Any]:
        at = self.next_available_at.astimezone(UTC).isoformat() if self.next_available_at else None
        return dataclasses.asdict(self) | {"reasons": list(self.reasons), "next_available_at": at, "waiting": self.waiting}


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]] | RowProblem]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                yield RowProblem(number, "(line)", f"not JSON: {exc.msg} at column {exc.colno}")
                continue
            if not isinstance(value, dict):
                yield RowProblem(number, "(line)", "each line must be a JSON object of lead attributes")
                continue
            yield number, value
        return
    reader = csv.DictReader(text.splitlines())
    for number, row in enumerate(reader, start=2):
        yield number, {k.strip(): v for k, v in row.items() if k is not None and v not in (None, "")}


def _convert(name: str, kind: str, raw: Any) -> Any:
    if kind == "number":
        if isinstance(raw, bool):
            raise ValueError("expected a number, got a boolean")
        try:
            number = float(raw)
        except (TypeError, ValueError):
            raise ValueError("expected a number (e.g. 250 or 1200.5)") from None
        return int(number) if name == "employees" and number.is_integer() else number
    if kind == "bool":
        try:
            return parse_boolean(raw, _TRUE, _FALSE)  # the CRM fields' boolean parser, with the sample files' words
        except ValueError:
            raise ValueError("expected true or false (yes/no, 1/0 also work)") from None
    if kind == "list":
        items = raw if isinstance(raw, list) else str(raw).split(";")
        return tuple(str(i).strip() for i in items if str(i).strip())
    if kind == "datetime":
        try:
            value = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("expected an ISO time such as 2026-12-07T15:00:00Z") from None
        if value.tzinfo is None:
            raise ValueError(f"needs a time zone (e.g. {raw}Z or {raw}+00:00)")
        return value.astimezone(UTC)
    return str(raw).strip()


def parse_lead(number: int, record: Mapping[str, Any], canonical: Canonical | None = None) -> Lead | list[RowProblem]:
    """Turn one sample record (keys = Lead attribute names, engagement.X, extra.X) into a Lead.

    Values are read as the adapters read a CRM's: with `canonical`, country, state and industry become ISO codes and
    taxonomy slugs ("United States" → "US"; an unknown spelling leaves the field empty, as in a sync) and an
    employee band ("100-500") becomes its lower bound with `employees_band`; the sample's own text stays in `raw`.
    """
    kinds = lead_field_types()
    values: dict[str, Any] = {}
    engagement: dict[str, float] = {}
    extra: dict[str, Any] = {}
    problems: list[RowProblem] = []
    crm_name = str(record.get("crm") or "hubspot").strip().lower()
    crm = as_crm(crm_name)
    if crm is None:
        problems.append(RowProblem(number, "crm", f"must be one of {', '.join(CRMS)}", crm_name))
    for key, raw in record.items():
        if raw is None or key in ("crm", "object_type", "id"):
            continue
        if key.startswith("engagement."):
            try:
                engagement[key.removeprefix("engagement.")] = float(raw)
            except (TypeError, ValueError):
                problems.append(RowProblem(number, key, "expected a number", str(raw)))
            continue
        if key.startswith("extra."):
            extra[key.removeprefix("extra.")] = raw
            continue
        kind = kinds.get(key)
        if kind is None or key in ("email_domain", "full_name", "key"):
            problems.append(RowProblem(number, key, "not a lead attribute (see the Lead model: email, country, employees, …; engagement.X, extra.X)",
                                       str(raw)))
            continue
        try:
            values[key] = _band(raw, values) if key == "employees" and _is_band(raw) else _convert(key, kind, raw)
        except (TypeError, ValueError) as exc:
            problems.append(RowProblem(number, key, str(exc), str(raw)))
    if problems or crm is None:
        return problems
    if canonical is not None and canonical.enabled:
        values["raw"] = {name: str(record[name]) for name in (*PLACE_AND_INDUSTRY, "employees") if record.get(name) is not None}
        _make_canonical(values, canonical)
    object_type = str(record.get("object_type") or _DEFAULT_OBJECT[crm])
    record_id = str(record.get("id") or f"row{number}")
    return Lead(crm=crm, object_type=object_type, id=record_id, engagement=engagement, extra=extra, **values)


def _is_band(raw: Any) -> bool:
    text = str(raw).strip()
    return text.endswith("+") or ("-" in text.lstrip("-"))


def _band(raw: Any, values: dict[str, Any]) -> int:
    """An employee band as HubSpot holds it ("100-500", "1000+"): its lower bound, the band kept in employees_band."""
    number, band = parse_band(raw)
    if band is not None:
        values["employees_band"] = band
    return number


def _make_canonical(values: dict[str, Any], canonical: Canonical) -> None:
    """Country, state (within that country) and industry as the canonical values a synced lead holds."""
    if isinstance(values.get("country"), str):
        values["country"] = canonical.country(values["country"])
    if isinstance(values.get("state"), str):
        values["state"] = canonical.state(values["state"], values.get("country"))
    if isinstance(values.get("industry"), str):
        values["industry"] = canonical.industry(values["industry"])


def synthetic_owners(settings: Settings, crms: set[Crm]) -> dict[str, list[Owner]]:
    """Each configured rep as an owner of each CRM: their configured owner id, or a stand-in `sample-<n>`."""
    owners: dict[str, list[Owner]] = {}
    for crm in sorted(crms):
        owners[crm] = [
            Owner(crm=crm, id={str(k): v for k, v in rep.owner_ids.items()}.get(crm) or f"sample-{i + 1}",
                  email=rep.email, name=rep.name, is_active=rep.active)
            for i, rep in enumerate(settings.routing.reps)
        ]
    return owners


def run_samples(settings: Settings, path: Path, now: datetime) -> tuple[list[Outcome], list[RowProblem]]:
    """Score and route every sample lead as a sync at `now` would (counters evolve in memory only; nothing is stored)."""
    if not path.exists():
        raise UsageError(f"sample file {path} does not exist")
    scoring = compile_scoring(settings.scoring, shipped_free_mail_domains())
    routing = compile_routing(settings.routing)
    leads: list[tuple[int, Lead]] = []
    problems: list[RowProblem] = []
    canonical = Canonical(settings.canonical)
    for item in _records(path):
        if isinstance(item, RowProblem):
            problems.append(item)
            continue
        parsed = parse_lead(*item, canonical=canonical)
        if isinstance(parsed, list):
            problems.extend(parsed)
        else:
            leads.append((item[0], parsed))
    owners = synthetic_owners(settings, {lead.crm for _, lead in leads} or {"hubspot"})
    reps, _ = build_reps(settings.routing, owners)
    known = {crm: frozenset(o.id for o in found if o.is_active) for crm, found in owners.items()}
    snapshot = availability_snapshot(reps, routing, now)
    state = RoutingState()
    outcomes: list[Outcome] = []
    for number, lead in leads:
        if lead.created_at is None:
            # A sample without created_at is a new lead: otherwise inactivity decay treats it as dormant.
            lead = lead.replace(created_at=now)
        result = score_lead(lead, (), scoring, now)
        domain = lead.email_domain
        ctx = RoutingContext(
            reps=reps, is_free_mail=bool(domain and domain in scoring.free_mail), known_owner_ids=known[lead.crm], availability=snapshot,
        )
        decision, change = route_lead(lead, result.primary, ctx, state, routing, now)
        state = apply_change(state, change)
        outcomes.append(Outcome(
            row=number, lead=lead.email or lead.id, score=result.primary.score, grade=result.primary.grade, model=result.primary.model,
            kind=decision.kind, rule=decision.rule, pool=decision.pool, rep=decision.rep, owner_id=decision.owner_id,
            reasons=decision.reasons, wait_cause=decision.wait_cause, next_available_at=decision.next_available_at,
            next_available_rep=decision.next_available_rep,
        ))
    return outcomes, problems


def render_outcomes(outcomes: list[Outcome], problems: list[RowProblem], console: Console | None = None) -> None:
    # Piped output gets room for the whole table instead of Rich's 80-column default.
    console = console or Console(width=None if sys.stdout.isatty() else 160)
    table = Table("row", "lead", "score", "grade", "model", "rule", "pool", "rep", "decision", title="sample leads")
    for o in outcomes:
        table.add_row(str(o.row), o.lead, f"{o.score:g}", o.grade, o.model, o.rule or "", o.pool or "", o.rep or o.owner_id or "", o.kind)
    console.print(table)
    for o in outcomes:
        if o.waiting:
            console.print(f"row {o.row} {o.lead}: {o.waiting}", soft_wrap=True)
    for p in problems:
        console.print(f"[red]bad[/] {p}", soft_wrap=True, highlight=False)
