"""`connector doctor`: read a CRM's schema and a sample of leads, and say whether the configured rules can work on them.

Read-only: the sample goes through the real pipeline in dry-run against a throwaway state store (a temporary
SQLite file, removed at the end), so nothing is written to the CRM and nothing is kept in the state store.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connector.adapters.base import Closeable, CrmAdapter
from connector.adapters.crms import descriptor_for
from connector.canonical.settings import MAPPABLE_FIELDS
from connector.config import Settings
from connector.core.clock import Clock
from connector.core.errors import UsageError
from connector.core.models import Lead
from connector.ops.doctor_fields import RuleUse, empty_counts, never_firing, rule_uses
from connector.ops.doctor_suggest import suggestions
from connector.pipeline.batch import run_batch
from connector.pipeline.runtime import CrmRuntime, EngineConfig
from connector.runners.jobs import RunSummary, compile_engine, make_adapters, prepare
from connector.state.ratelimit import guard_factory
from connector.state.store import Store

# A field a rule or routing input reads is unusable when fewer of its non-empty values parse than this share:
# below it, a rule silently misses one lead in ten or more (the realistic sandbox parses ≥ 95%).
MIN_PARSED_SHARE = 0.90
TOP_UNPARSED = 5
DEFAULT_SAMPLE = 500


@dataclass
class FieldCheck:
    """One lead field the configuration reads, as the sample holds it."""

    field: str
    used_by: list[str]
    mapped_property: str | None = None  # the CRM property it is read from (None: unmapped, or not known)
    parse: str | None = None
    crm_type: str | None = None
    problem: str | None = None  # the mapped property's type disagrees with the parser
    mapped: bool | None = None  # None: the adapter does not say (no field_sources)
    seen: int = 0
    empty: int = 0
    parsed: int = 0
    inferred: int = 0
    unparsed_count: int = 0
    unparsed: list[tuple[str, int]] = dataclasses.field(default_factory=list)  # the most frequent unparsed values

    @property
    def parsed_share(self) -> float | None:
        """The share of the values held that parsed / mapped to a canonical value (None: no lead held one)."""
        held = self.parsed + self.unparsed_count
        return self.parsed / held if held > 0 else None

    @property
    def empty_share(self) -> float:
        return self.empty / self.seen if self.seen else 0.0

    @property
    def status(self) -> str:
        """ok | unmapped | missing (the property is not in the CRM) | mismatch | low (parses under MIN_PARSED_SHARE)
        | empty (no lead holds a value)."""
        if self.mapped is False:
            return "unmapped"
        if self.mapped and self.crm_type is None:
            return "missing"
        if self.problem:
            return "mismatch"
        share = self.parsed_share
        if share is not None and share < MIN_PARSED_SHARE:
            return "low"
        return "empty" if self.seen and self.empty == self.seen else "ok"

    def as_json(self) -> dict[str, Any]:
        share = self.parsed_share
        return {
            "field": self.field, "status": self.status, "used_by": self.used_by, "property": self.mapped_property,
            "parse": self.parse, "crm_type": self.crm_type, "problem": self.problem, "mapped": self.mapped,
            "seen": self.seen, "empty": self.empty, "parsed": self.parsed, "unparsed_count": self.unparsed_count,
            "inferred": self.inferred,
            "parsed_share": None if share is None else round(share, 4), "empty_share": round(self.empty_share, 4),
            "unparsed": [{"value": v, "count": n} for v, n in self.unparsed],
        }


@dataclass
class CrmCheck:
    """What doctor found for one CRM."""

    crm: str
    leads: int = 0
    pages: int = 0
    fields: list[FieldCheck] = field(default_factory=list)
    never_firing: list[RuleUse] = field(default_factory=list)
    not_applicable: list[RuleUse] = field(default_factory=list)  # engagement rules on a CRM that holds no counters
    grades: dict[str, int] = field(default_factory=dict)
    routing: dict[str, Any] = field(default_factory=dict)
    suggestions: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        """Why this CRM's data leaves a rule or routing input unusable (empty: healthy)."""
        out = []
        for f in self.fields:
            if f.status == "unmapped":
                out.append(f"{f.field} is not mapped to a {self.crm} property")
            elif f.status == "missing":
                out.append(f"{f.field}: property {f.mapped_property!r} does not exist in this {self.crm} account")
            elif f.status == "mismatch":
                out.append(f"{f.field}: {f.problem}")
            elif f.status == "low":
                out.append(f"{f.field}: only {f.parsed_share:.0%} of its values parse (at least {MIN_PARSED_SHARE:.0%} needed)")
        # A rule that reads only unmapped fields is named with its field above: not again.
        unmapped = {f.field for f in self.fields if f.status in ("unmapped", "missing")}
        out += [f"{u.label} can never fire: {', '.join(u.fields)} empty on every sampled lead"
                for u in self.never_firing if not set(u.fields) <= unmapped]
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "crm": self.crm, "healthy": not self.problems, "sample": {"leads": self.leads, "pages": self.pages, "read": "fetch_all"},
            "fields": [f.as_json() for f in self.fields],
            "never_firing": [_rule_json(u) for u in self.never_firing],
            "not_applicable": [_rule_json(u) for u in self.not_applicable],
            "grades": self.grades, "routing": self.routing, "problems": self.problems, "suggestions": self.suggestions,
        }


def _rule_json(use: RuleUse) -> dict[str, Any]:
    return {"rule": use.name, "model": use.model, "kind": use.kind, "fields": list(use.fields)}


def doctor_json(checks: Sequence[CrmCheck]) -> dict[str, Any]:
    """The one JSON object `doctor --json` prints."""
    healthy = all(not c.problems for c in checks)
    return {"healthy": healthy, "min_parsed_share": MIN_PARSED_SHARE, "crms": {c.crm: c.as_json() for c in checks}}


@contextmanager
def throwaway_store() -> Iterator[Store]:
    """A state store of doctor's own, in a temporary directory removed afterwards: nothing is kept."""
    with tempfile.TemporaryDirectory(prefix="connector-doctor-") as tmp, Store.open(f"sqlite:///{Path(tmp) / 'doctor.db'}") as store:
        yield store


@contextmanager
def open_adapters(settings: Settings, store: Store, clock: Clock, crm: str | None) -> Iterator[dict[str, CrmAdapter]]:
    """The enabled CRMs' adapters (only `crm` when named), rate-limited through the throwaway store; closed after."""
    if crm is not None and not descriptor_for(crm).is_enabled(settings):
        raise UsageError(f"{crm} is not enabled in this configuration (set [{crm}] enabled = true)")
    adapters = make_adapters(settings, guard_for=guard_factory(store, settings, clock), clock=clock)
    if not adapters:
        raise UsageError("no CRM is enabled: set [hubspot] enabled = true and/or [salesforce] enabled = true")
    try:
        yield {crm: adapters[crm]} if crm is not None else adapters
    finally:
        for adapter in adapters.values():
            if isinstance(adapter, Closeable):
                adapter.close()


def run_doctor(settings: Settings, store: Store, adapters: Mapping[str, CrmAdapter], clock: Clock, *,
               sample: int = DEFAULT_SAMPLE) -> list[CrmCheck]:
    """Check each adapter's CRM: its schema, and a sample of leads read and run through the pipeline in dry-run."""
    uses = rule_uses(settings)
    engine = compile_engine(settings)
    runtimes = prepare(settings, adapters, bootstrap=False)  # owners only: bootstrap may create CRM properties
    return [_check_crm(store, runtimes[crm], engine, clock, uses, sample, settings) for crm in adapters]


def _check_crm(store: Store, runtime: CrmRuntime, engine: EngineConfig, clock: Clock, uses: Sequence[RuleUse], sample: int,
               settings: Settings) -> CrmCheck:
    check = CrmCheck(runtime.crm)
    adapter = runtime.adapter
    leads: list[Lead] = []
    summary = RunSummary(mode="doctor", dry_run=True)
    kept_in_queue = 0
    stats = getattr(adapter, "parse_stats", None)
    if stats is not None:
        stats.reset()  # count the sample only
    for page in adapter.fetch_all(None):
        batch = run_batch(store, runtime, engine, page, clock.now(), dry_run=True, clock=clock)
        summary.absorb(batch, keep_patches=False)
        leads += page.leads
        for lead in page.leads:
            decision = batch.decisions.get(lead.key)
            if decision is not None and decision.kind == "kept" and lead.owner_id in runtime.queue_owner_ids:
                kept_in_queue += 1
        check.pages += 1
        if len(leads) >= sample:
            break
    check.leads = len(leads)
    check.grades = dict(sorted(summary.tally.grades.items()))
    check.routing = _routing_json(summary, kept_in_queue)
    check.fields = field_checks(adapter, uses, leads)
    # Emptiness of the leads as normalized (a country inferred from the phone number is a value), not of the CRM value.
    check.never_firing, check.not_applicable = never_firing(uses, leads, empty_counts(leads, {f.field for f in check.fields}))
    check.suggestions = suggestions(settings, adapter, check.fields)
    return check


def _routing_json(summary: RunSummary, kept_in_queue: int) -> dict[str, Any]:
    t = summary.tally
    return {
        "routed": t.decisions["routed"], "routed_by": {k: t.routed_by[k] for k in sorted(t.routed_by) if t.routed_by[k]},
        "waiting": t.decisions["waiting"], "waiting_reasons": dict(summary.waiting_reasons),
        "kept": t.decisions["kept"], "kept_in_queue": kept_in_queue, "unrouted": t.decisions["unrouted"],
    }


def field_checks(adapter: CrmAdapter, uses: Sequence[RuleUse], leads: Sequence[Lead]) -> list[FieldCheck]:
    """One FieldCheck per field the configuration reads: its mapping (field_sources) and its sample (parse_stats)."""
    used: dict[str, list[str]] = {}
    for use in uses:
        for name in use.fields:
            used.setdefault(name, []).append(use.label)
    empty = empty_counts(leads, used)
    sources = _sources(adapter)
    tallies = _tallies(adapter)
    checks = []
    for name, by in used.items():
        check = FieldCheck(name, by, seen=len(leads), empty=empty[name], parsed=len(leads) - empty[name])
        base = source_field(name)
        if sources is not None:
            _apply_source(check, base, sources.get(base), listed_prefixes={k.split(".", 1)[0] for k in sources if "." in k})
        tally = tallies.get(name)  # a field read as-is (raw.X and employees_band: counted on the leads above)
        if tally is not None:
            _apply_tally(check, tally)
        checks.append(check)
    return checks


def source_field(name: str) -> str:
    """The mapped field a condition field is read from: `raw.country` and `country_inferred` → country,
    `employees_band` → employees."""
    if name.startswith("raw."):
        return name[len("raw."):]
    return {"employees_band": "employees", "country_inferred": "country"}.get(name, name)


def _sources(adapter: CrmAdapter) -> dict[str, Any] | None:
    read = getattr(adapter, "field_sources", None)
    if not callable(read):
        return None
    return {str(s.field): s for s in read()}


def _tallies(adapter: CrmAdapter) -> Mapping[str, Any]:
    stats = getattr(adapter, "parse_stats", None)
    return getattr(stats, "tallies", None) or {}


def _apply_source(check: FieldCheck, base: str, source: Any, *, listed_prefixes: set[str]) -> None:
    prefix = base.split(".", 1)[0] if "." in base else None
    if source is None or not getattr(source, "property", None):
        # Only fields a [crm.fields] table can map are judged unmapped (not stage or owner, which the connector
        # writes; engagement.* / extra.* only when the adapter lists fields of that kind at all).
        mappable = base in MAPPABLE_FIELDS if prefix is None else prefix in listed_prefixes
        check.mapped = False if mappable else None
        return
    check.mapped = True
    check.mapped_property, check.parse = source.property, getattr(source, "parse", None)
    check.crm_type, check.problem = getattr(source, "crm_type", None), getattr(source, "problem", None)


def _apply_tally(check: FieldCheck, tally: Any) -> None:
    check.seen, check.empty, check.parsed = int(tally.seen), int(tally.empty), int(tally.parsed)
    check.inferred = int(getattr(tally, "inferred", 0) or 0)
    unparsed: Counter[str] = getattr(tally, "unparsed", None) or Counter()
    check.unparsed_count = sum(unparsed.values())
    check.unparsed = sorted(unparsed.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_UNPARSED]
