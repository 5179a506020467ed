"""What `connector doctor` checks the data against: every lead field the configured rules, regions, territories and
pools read, and which rules could never fire on a sample of leads."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connector.config import Settings
from connector.core.models import Lead
from connector.engine.conditions import Condition, compile_condition, condition_fields

# Context fields the engine derives from lead fields: a condition on one reads these lead fields.
DERIVED_FROM: dict[str, tuple[str, ...]] = {
    "bant": ("budget", "authority", "need", "timeframe"),
    "region": ("country", "state"),
    "territory": ("country", "state", "postal_code"),
    "is_free_mail": ("email",),
    "is_competitor": ("email",),
    "email_domain": ("email",),
    "full_name": ("first_name", "last_name"),
}
# Context fields that come from other rules' results, not from the CRM: a rule reading one is not judged by its data.
FROM_RESULTS = frozenset({"score", "grade", "model", "is_mql"})
# What each best-match skill reads of a lead (languages: [routing] language_field).
SKILL_FIELDS: dict[str, tuple[str, ...]] = {
    "industries": ("industry",), "products": ("product_interest",), "regions": ("country", "state"),
}


@dataclass(frozen=True, slots=True)
class RuleUse:
    """One rule (or routing input) and the lead fields it reads."""

    kind: str  # "scoring" | "routing" | "audience" | "regions" | "territories" | "skills"
    model: str | None  # the scoring model (None for routing inputs)
    name: str  # the rule's name, or the input's (e.g. "regions")
    fields: tuple[str, ...]  # lead fields read, context fields expanded (country, engagement.page_views, extra.x, raw.x)
    condition: Condition | None = None  # None: an input that is not a condition (regions, skills, engagement counter)
    judged: bool = True  # False: it also reads another rule's result (score, grade), so its data alone can't tell

    @property
    def label(self) -> str:
        if self.kind == "scoring":
            return f"scoring rule {self.name!r} ({self.model})"
        if self.kind == "audience":
            return f"model {self.model!r} audience"
        if self.kind == "routing":
            return f"routing rule {self.name!r}"
        return f"routing {self.name}"


def expand(fields: Iterable[str], *, scoring: bool = False) -> tuple[str, ...]:
    """Condition field names as the lead fields behind them (`bant` → budget, authority, need, timeframe).

    `scoring`: a scoring rule's `region` is `[scoring] regions`, by country only (routing regions also read states).
    """
    out: dict[str, None] = {}
    for name in fields:
        if name in FROM_RESULTS:
            continue
        reads = ("country",) if scoring and name == "region" else DERIVED_FROM.get(name, (name,))
        for f in reads:
            out[f] = None
    return tuple(out)


def _condition_use(kind: str, model: str | None, name: str, cond: Condition | None, extra: Sequence[str] = ()) -> RuleUse:
    names = condition_fields(cond)
    fields = expand([*extra, *names], scoring=kind in ("scoring", "audience"))
    return RuleUse(kind, model, name, fields, cond, judged=not (set(names) & FROM_RESULTS))


def rule_uses(settings: Settings) -> list[RuleUse]:
    """Every scoring rule, model audience, routing rule and routing input with the lead fields it reads."""
    uses: list[RuleUse] = []
    for model, mcfg in settings.scoring.models.items():
        if mcfg.audience is not None:
            uses.append(_condition_use("audience", model, "audience", mcfg.audience))
        for rule in mcfg.rules:
            counter = [f"engagement.{rule.engagement}"] if rule.engagement else []
            use = _condition_use("scoring", model, rule.name, rule.when, counter)
            if rule.form == "behaviour" and not use.fields:
                continue  # it reads events, not CRM fields
            uses.append(use)
    routing = settings.routing
    for r in routing.rules:
        uses.append(_condition_use("routing", None, r.name, r.when))
    if routing.regions or settings.scoring.regions:
        states = any(region.states for region in routing.regions.values())
        uses.append(RuleUse("regions", None, "regions", ("country", "state") if states else ("country",)))
    if routing.territories:
        fields = ["country"]
        fields += ["state"] if any(t.states for t in routing.territories.values()) else []
        fields += ["postal_code"] if any(t.postal_ranges for t in routing.territories.values()) else []
        uses.append(RuleUse("territories", None, "territories", tuple(fields)))
    skills = _skill_fields(settings)
    if skills:
        uses.append(RuleUse("skills", None, "pool skills (best match)", skills))
    return uses


def _skill_fields(settings: Settings) -> tuple[str, ...]:
    """The lead fields best-match routing compares with reps' skills (only when some pool or rule matches by skill)."""
    routing = settings.routing
    by_skill = any(p.strategy == "best_match" for p in routing.pools.values()) or any(
        r.strategy == "best_match" or r.require_skills for r in routing.rules)
    if not by_skill:
        return ()
    fields: list[str] = []
    for skill, reads in SKILL_FIELDS.items():
        if any(getattr(rep, skill) for rep in routing.reps):
            fields += reads
    if routing.language_field and any(rep.languages for rep in routing.reps):
        fields.append(routing.language_field)
    return tuple(dict.fromkeys(fields))


def field_value(lead: Lead, name: str) -> Any:
    """A lead field's value by its condition name (`engagement.X`, `extra.X`, `raw.X` or an attribute)."""
    prefix, _, key = name.partition(".")
    if key and prefix in ("engagement", "extra", "raw"):
        return (getattr(lead, prefix, None) or {}).get(key)
    return getattr(lead, name, None)


def is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value in ((), [], {})


def empty_counts(leads: Sequence[Lead], fields: Iterable[str]) -> dict[str, int]:
    """Per field, how many of the leads hold no value."""
    return {f: sum(1 for lead in leads if is_empty(field_value(lead, f))) for f in fields}


def _fires_on_empty(cond: Condition | None, probe: Lead) -> bool:
    """Whether the condition holds when every field it reads is empty (`company_name missing` does)."""
    if cond is None:
        return False
    return compile_condition(cond, lambda name: lambda lead, ctx: None)(probe, {})


def never_firing(uses: Sequence[RuleUse], leads: Sequence[Lead], empty: Mapping[str, int]) -> tuple[list[RuleUse], list[RuleUse]]:
    """(rules that can never fire, rules that do not apply to this CRM) on the sample.

    A rule can never fire when every field it reads is empty on the whole sample and it does not fire on empty
    fields. When no sampled lead holds any engagement counter, the CRM offers none (Salesforce has no standard
    counters): a rule that reads only counters does not apply to it, rather than being broken.
    """
    if not leads:
        return [], []
    probe = leads[0]
    no_counters = not any(lead.engagement for lead in leads)
    broken: list[RuleUse] = []
    inapplicable: list[RuleUse] = []
    for use in uses:
        if use.kind not in ("scoring", "audience", "routing") or not use.judged or not use.fields:
            continue
        if all(empty.get(f, 0) == len(leads) for f in use.fields) and not _fires_on_empty(use.condition, probe):
            counters_only = all(f.startswith("engagement.") for f in use.fields)
            (inapplicable if counters_only and no_counters else broken).append(use)
    return broken, inapplicable
