"""`connector doctor` in words: per CRM, each field the rules read, rules that can never fire, grades, routing, fixes."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from connector.core.models import wait_cause_words
from connector.ops.doctor import MIN_PARSED_SHARE, CrmCheck, FieldCheck
from connector.ops.words import CRM_TITLES, hanging

# What a parsed value of these fields became, in the share's words.
_MAPPED_TO = {"country": "mapped to ISO", "state": "mapped to ISO", "industry": "mapped to the industry taxonomy"}
_STATUS_WORDS = {
    "unmapped": "NOT MAPPED: no property is mapped to it",
    "missing": "MISSING: the mapped property is not in this account",
    "mismatch": "TYPE MISMATCH",
    "low": f"TOO FEW PARSE (under {MIN_PARSED_SHARE:.0%})",
    "empty": "empty on every sampled lead",
}


def doctor_lines(checks: Sequence[CrmCheck], width: int = 80) -> list[str]:
    """The whole report as lines of at most `width` columns (words never cut)."""
    lines: list[str] = []
    for check in checks:
        if lines:
            lines.append("")
        lines += crm_lines(check, width)
    return lines


def crm_lines(check: CrmCheck, width: int) -> list[str]:
    title = CRM_TITLES.get(check.crm, check.crm)
    out = [hanging(f"{title}: {check.leads} leads read (the first {check.pages} page(s) of a full read), run through "
                   "scoring and routing in dry-run; nothing written", width)]
    out.append("fields the rules, regions, territories and pools read")
    out += [hanging(field_line(f), width, hang=6) for f in check.fields]
    if check.never_firing:
        out.append("rules that can never fire on this data")
        out += [hanging(f"  {u.label}: {', '.join(u.fields)} empty on every sampled lead", width, hang=4)
                for u in check.never_firing]
    if check.not_applicable:
        out.append(hanging(f"rules that do not apply to {title} (its leads hold no engagement counters)", width))
        out += [hanging(f"  {u.label}", width, hang=4) for u in check.not_applicable]
    out.append(hanging("grades: " + (", ".join(f"{g} {n}" for g, n in _by_count(check.grades)) or "none"), width))
    out.append(hanging(routing_words(check.routing), width))
    if check.suggestions:
        out.append("suggested config (check the values before you paste it)")
        out += [wrapped for s in check.suggestions for line in s.splitlines() for wrapped in _toml_lines(line, width)]
    problems = check.problems
    if problems:
        out.append(f"{title}: {len(problems)} problem(s): a rule or routing input cannot work on this data")
        out += [hanging(f"  - {p}", width, hang=2) for p in problems]
    else:
        out.append(f"{title}: healthy: every rule and routing input can work on this data")
    return out


def field_line(f: FieldCheck) -> str:
    """`  country ← country (string, text): 97% mapped to ISO, 2% empty; unknown: 'Untied States' ×3, 'N/A' ×2`."""
    source = ""
    if f.mapped_property:
        kind = ", ".join(x for x in (f.crm_type or "not in the CRM", f.parse) if x)
        source = f" ← {f.mapped_property} ({kind})"
    head = f"  {f.field}{source}"
    if f.status in ("unmapped", "missing"):
        return f"{head}: {_STATUS_WORDS[f.status]}; read by {_users(f.used_by)}"
    parts = []
    share = f.parsed_share
    if share is not None:
        parts.append(f"{_percent(share)} {_MAPPED_TO.get(f.field, 'parsed')}")
    parts.append(f"{_percent(f.empty_share)} empty" + (f" ({f.inferred} inferred)" if f.inferred else ""))
    text = f"{head}: {', '.join(parts)}"
    if f.unparsed:
        text += "; unknown: " + ", ".join(f"{v!r} ×{n}" for v, n in f.unparsed)
    if f.status == "mismatch":
        text += f"; {_STATUS_WORDS['mismatch']}: {f.problem}"
    elif f.status in ("low", "empty"):
        text += f"; {_STATUS_WORDS[f.status]}"
    return text


def _toml_lines(line: str, width: int) -> list[str]:
    """A suggested TOML line, indented; a long comment wraps into more comment lines (a key line stays whole)."""
    if not line.startswith("#") or len(line) + 2 <= width:
        return ["  " + line]
    return textwrap.wrap(line[1:].strip(), width=width, initial_indent="  # ", subsequent_indent="  # ",
                         break_long_words=False, break_on_hyphens=False)


def routing_words(routing: Mapping[str, Any]) -> str:
    """`routing: routed 420 (rule 380, fallback queue 40), waiting 30 (outside working hours 30), kept 50 (10 in a queue)`."""
    how = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in (routing.get("routed_by") or {}).items())
    waits = ", ".join(f"{wait_cause_words(c)} {n}" for c, n in (routing.get("waiting_reasons") or {}).items())
    queued = routing.get("kept_in_queue", 0)
    parts = [
        f"routed {routing.get('routed', 0)}" + (f" ({how})" if how else ""),
        f"waiting {routing.get('waiting', 0)}" + (f" ({waits})" if waits else ""),
        f"kept {routing.get('kept', 0)}" + (f" ({queued} in a queue)" if queued else ""),
        f"unrouted {routing.get('unrouted', 0)}",
    ]
    return "routing: " + ", ".join(parts)


def _users(used_by: Sequence[str]) -> str:
    shown = ", ".join(used_by[:3])
    return shown + (f" and {len(used_by) - 3} more" if len(used_by) > 3 else "")


def _percent(share: float) -> str:
    """Whole percents, never rounded up to 100% or down to 0% when not exact."""
    value = round(share * 100)
    if value == 100 and share < 1:
        value = 99
    if value == 0 and share > 0:
        value = 1
    return f"{value}%"


def _by_count(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
