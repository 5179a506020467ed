"""Near misses of a name: the "did you mean" of an unknown config key, field, pool or other reference."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# How alike (difflib ratio) a name must be to a known one to be suggested: `contry` and `country` are 0.92,
# `enterprize` and `enterprise` 0.9, `acess_token` and `access_token` 0.96; `owner` and `employees` are not.
CLOSE_ENOUGH = 0.75
# At most this many known names are listed after an unknown one; a longer list is noise, not help.
LIST_AT_MOST = 8


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name `name` is most likely a misspelling of (case-insensitive), or None when none is close."""
    by_lower: dict[str, str] = {}
    for candidate in known:
        by_lower.setdefault(candidate.lower(), candidate)
    matches = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=CLOSE_ENOUGH)
    return by_lower[matches[0]] if matches else None


def unknown_name(what: str, name: str, known: Iterable[str], *, otherwise: str | None = None) -> str:
    """`unknown pool 'enterprize'; did you mean 'enterprise'?`, else the known names when there are few.

    `otherwise` replaces the list when nothing is close (e.g. where a long list of fields is documented).
    """
    names = list(dict.fromkeys(known))
    text = f"unknown {what} {name!r}"
    match = closest(name, names)
    if match is not None:
        return f"{text}; did you mean {match!r}?"
    if otherwise is not None:
        return f"{text}; {otherwise}"
    if not names:
        return f"{text}; none are defined"
    if len(names) > LIST_AT_MOST:
        return f"{text}; known: {', '.join(names[:LIST_AT_MOST])} and {len(names) - LIST_AT_MOST} more"
    return f"{text}; known: {', '.join(names)}"
