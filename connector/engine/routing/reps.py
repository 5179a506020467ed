"""Reps: resolving configured reps to CRM owners, and the rules a rep must meet for a lead (capacity, skills)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from connector.core.errors import ConfigProblem
from connector.core.models import Lead, Owner, Rep
from connector.engine.routing.compile import CompiledRouting, Place
from connector.engine.routing.config import SKILLS, RepConfig, RoutingConfig, normalize_email


class _Resolved(NamedTuple):
    """One configured rep across the CRMs: owner id per CRM, whether any CRM knows them, where inactive, names seen."""

    ids: dict[str, str]
    found_any: bool
    inactive_in: list[str]
    names: list[str]


def _owner_indexes(owners_by_crm: Mapping[str, Sequence[Owner]]) -> tuple[dict[str, dict[str, Owner]], dict[str, dict[str, Owner]]]:
    """Per CRM: users by email (not queues; an active user wins over an archived one with the same email), owners by id."""
    by_email: dict[str, dict[str, Owner]] = {}
    by_id: dict[str, dict[str, Owner]] = {}
    for crm, owners in owners_by_crm.items():
        by_email[crm] = {}
        by_id[crm] = {o.id: o for o in owners}
        for user in owners:
            if user.email and not user.is_queue:
                key = normalize_email(user.email)
                if key not in by_email[crm] or (user.is_active and not by_email[crm][key].is_active):
                    by_email[crm][key] = user
    return by_email, by_id


def _resolve(
    rc: RepConfig, owners_by_crm: Mapping[str, Sequence[Owner]], by_email: dict[str, dict[str, Owner]], by_id: dict[str, dict[str, Owner]],
) -> _Resolved:
    email = normalize_email(rc.email)
    found = _Resolved({}, False, [], [])
    ids = found.ids
    found_any = False
    explicit_ids = {str(k): v for k, v in rc.owner_ids.items()}
    for crm in owners_by_crm:
        explicit = explicit_ids.get(crm)
        owner: Owner | None = by_id[crm].get(explicit) if explicit else by_email[crm].get(email)
        if explicit and owner is None:
            # Explicit ids are trusted even when the owner list does not show them (e.g. a queue).
            ids[crm] = explicit
            found_any = True
            continue
        if owner is None:
            continue
        found_any = True
        found.names.append(owner.name)
        if owner.is_active:
            ids[crm] = owner.id
        else:
            found.inactive_in.append(crm)
    for crm, explicit in rc.owner_ids.items():
        if crm not in owners_by_crm:
            ids[crm] = explicit
            found_any = True
    return found._replace(found_any=found_any)


def build_reps(cfg: RoutingConfig | CompiledRouting, owners_by_crm: Mapping[str, Sequence[Owner]]) -> tuple[list[Rep], list[ConfigProblem]]:
    """Resolve each configured rep to owner ids per CRM (email, case-insensitive; explicit ids win).

    A rep whose CRM user is inactive or archived gets no id in that CRM; a rep with no active
    owner anywhere is inactive; a rep found in no CRM is a warning (it receives no leads).
    """
    config = cfg.config if isinstance(cfg, CompiledRouting) else cfg
    by_email, by_id = _owner_indexes(owners_by_crm)
    reps: list[Rep] = []
    warnings: list[ConfigProblem] = []
    for i, rc in enumerate(config.reps):
        email = normalize_email(rc.email)
        path = f"routing.reps[{i}]"
        found = _resolve(rc, owners_by_crm, by_email, by_id)
        if not found.found_any:
            crms = ", ".join(owners_by_crm) or "no CRM"
            warnings.append(ConfigProblem(f"{path}.email", f"rep {email} is not an owner in {crms}; this rep receives no leads"))
        for crm in found.inactive_in:
            warnings.append(ConfigProblem(f"{path}.email", f"rep {email} is inactive in {crm}; this rep receives no {crm} leads"))
        reps.append(Rep(
            email=email,
            name=rc.name or next((n for n in found.names if n), ""),
            owner_ids=found.ids,
            is_active=rc.active and bool(found.ids),
            timezone=rc.timezone,
            country=rc.country,
            weight=rc.weight,
            tier=rc.tier,
            skills={k: tuple(getattr(rc, k)) for k in SKILLS if getattr(rc, k)},
            max_open_leads=rc.max_open_leads,
            max_leads_per_day=rc.max_leads_per_day,
        ))
    return reps, warnings


def kept_queues(cfg: RoutingConfig, owners: Sequence[Owner]) -> tuple[frozenset[str], list[ConfigProblem]]:
    """The ids of the queues `keep_queue_owners` names (by id, name or email, case-insensitive) among one CRM's owners.

    An entry that names no queue here is a warning, unless it names no owner at all in a CRM (an id from the
    other CRM); ids of queues the owners read did not list (Salesforce `00G…`) are trusted.
    """
    queues = [o for o in owners if o.is_queue]
    ids: set[str] = set()
    unknown: list[ConfigProblem] = []
    for i, entry in enumerate(cfg.keep_queue_owners):
        key = entry.strip().casefold()
        found = [q.id for q in queues if key in (q.id.casefold(), q.name.strip().casefold(), (q.email or "").strip().casefold())]
        if found:
            ids.update(found)
        elif entry.startswith("00G"):
            ids.add(entry.strip())
        elif any(o.id == entry.strip() for o in owners):
            unknown.append(ConfigProblem(f"routing.keep_queue_owners[{i}]", f"{entry!r} is a user, not a queue; ignored"))
    return frozenset(ids), unknown


def is_full(count: int, cap: int | None) -> bool:
    """A capped count at or over its cap: the rep takes no more (plan.capacity_entry applies the same test to a row of caps)."""
    return cap is not None and count >= cap


def open_cap_reason(count: int, cap: int) -> str:
    return f"at capacity: {count}/{cap} open leads"


def day_cap_reason(count: int, cap: int) -> str:
    return f"at capacity: {count}/{cap} leads today"


def capacity_reason(rep: Rep, open_count: int, day_count: int) -> str | None:
    """Why the rep is at capacity (open leads first, then leads today), or None."""
    if rep.max_open_leads is not None and open_count >= rep.max_open_leads:
        return open_cap_reason(open_count, rep.max_open_leads)
    if rep.max_leads_per_day is not None and day_count >= rep.max_leads_per_day:
        return day_cap_reason(day_count, rep.max_leads_per_day)
    return None


def rep_skills(rep: Rep) -> dict[str, frozenset[str]]:
    """The rep's skills per kind, lower-case (what leads' needs are compared with)."""
    return {k: frozenset(v.strip().lower() for v in values) for k, values in rep.skills.items()}


def _language(lead: Lead, compiled: CompiledRouting) -> Any:
    name = compiled.language_field
    if not name:
        return None
    return lead.extra.get(name[len("extra."):]) if name.startswith("extra.") else getattr(lead, name, None)


def lead_skills(lead: Lead, place: Place, compiled: CompiledRouting) -> dict[str, frozenset[str]]:
    """What the lead asks of a rep, per skill (lower-case); empty sets are not asked for."""
    language = _language(lead, compiled)
    places = {p.strip().lower() for p in (place.region, place.territory, lead.country) if p}
    return {
        "industries": frozenset({lead.industry.strip().lower()}) if lead.industry else frozenset(),
        "products": frozenset(p.strip().lower() for p in lead.product_interest if p),
        "languages": frozenset({str(language).strip().lower()}) if language else frozenset(),
        "regions": frozenset(places),
    }


def needs_key(lead: Lead, place: Place, compiled: CompiledRouting) -> tuple[Any, ...]:
    """Exactly what lead_skills reads (the language only as text): leads with equal keys have equal needs."""
    language = _language(lead, compiled)
    return (lead.industry, tuple(lead.product_interest), str(language) if language else None, place.region, place.territory, lead.country)


def lacking_skill(wanted: Mapping[str, frozenset[str]], have: Mapping[str, frozenset[str]], required: Sequence[str]) -> str | None:
    """The first required skill the lead asks for and the rep does not have, as a verdict; None: the rep has them all."""
    for skill in required:
        if wanted[skill] and not wanted[skill] & have.get(skill, frozenset()):
            return f"lacks skill {skill}: {', '.join(sorted(wanted[skill]))}"
    return None

