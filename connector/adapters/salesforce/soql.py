"""SOQL text for the Salesforce adapter: every value placed in a query is rendered (and escaped) here."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from urllib.parse import quote_plus

# SOQL string literals are single-quoted; these characters must be backslash-escaped inside them
# (Salesforce "Quoted String Escape Sequences"). An unescaped quote ends the literal early: the
# rest of the value becomes query text — an injection, or at best MALFORMED_QUERY.
_STRING_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}
# Inside LIKE patterns `%` and `_` are wildcards; a literal one is written `\%` / `\_`.
_LIKE_ESCAPES = {**_STRING_ESCAPES, "%": "\\%", "_": "\\_"}

_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$")


def quote(value: str) -> str:
    """A SOQL string literal whose meaning is exactly `value` (quotes, backslashes, newlines escaped)."""
    return "'" + "".join(_STRING_ESCAPES.get(ch, ch) for ch in value) + "'"


def like_literal(value: str, *, prefix: str = "", suffix: str = "") -> str:
    """A LIKE pattern literal matching `value` literally, with raw wildcards `prefix`/`suffix` around it.

    Only `%` and `_` are allowed as prefix/suffix characters: anything else would be unescaped text.
    """
    for wildcard in (prefix, suffix):
        if wildcard.strip("%_"):
            raise ValueError(f"LIKE prefix/suffix may hold only % and _, got {wildcard!r}")
    return "'" + prefix + "".join(_LIKE_ESCAPES.get(ch, ch) for ch in value) + suffix + "'"


def datetime_literal(value: datetime) -> str:
    """A SOQL datetime literal (unquoted, UTC, `Z`); milliseconds only when present [crm-behaviour: Salesforce datetime format]."""
    if value.tzinfo is None:
        raise ValueError("SOQL datetimes must be timezone-aware")
    utc = value.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond // 1000:03d}"
    return text + "Z"


def literal(value: object) -> str:
    """Render one Python value as a SOQL literal: str, bool, int, float, Decimal, datetime, date or None."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        if isinstance(value, float) and value != value:  # NaN has no SOQL form
            raise ValueError("NaN cannot be a SOQL literal")
        return format(Decimal(str(value)), "f")
    if isinstance(value, datetime):
        return datetime_literal(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return quote(value)
    raise TypeError(f"no SOQL literal for {type(value).__name__}")


def in_list(values: Iterable[object]) -> str:
    """`(v1, v2, …)` for IN / NOT IN; an empty list is an error (SOQL rejects `IN ()`)."""
    rendered = [literal(v) for v in values]
    if not rendered:
        raise ValueError("IN needs at least one value")
    return "(" + ", ".join(rendered) + ")"


def url_length(query: str) -> int:
    """Bytes `query` takes in a REST GET URL: `?q=` percent-encoded, as requests sends it."""
    return len(quote_plus(query))


def split_in(values: Sequence[object], render: Callable[[str], str], *, max_values: int, max_url_length: int) -> Iterator[str]:
    """Queries `render(<IN list>)` that together cover `values`, each with ≤max_values values and ≤max_url_length URL bytes.

    A query goes in the URL of a GET, and Salesforce answers 414 URI Too Long when the URI alone
    passes 16,384 bytes (431 with the headers) [crm-behaviour: Salesforce request URI: 16,384 bytes]. Percent-encoding is per character, so the
    length of a rendered query is the fixed part plus the sum of its values' lengths.
    """
    if max_values < 1:
        raise ValueError("max_values must be at least 1")
    fixed = url_length(render("()"))
    separator = url_length(", ")
    chunk: list[object] = []
    length = fixed
    for value in values:
        cost = url_length(literal(value))
        if fixed + cost > max_url_length:
            raise ValueError(f"one IN value alone makes the query {fixed + cost} URL bytes, over {max_url_length}")
        added = cost + (separator if chunk else 0)
        if chunk and (len(chunk) == max_values or length + added > max_url_length):
            yield render(in_list(chunk))
            chunk, length, added = [], fixed, cost
        chunk.append(value)
        length += added
    if chunk:
        yield render(in_list(chunk))


def identifier(name: str) -> str:
    """A field or object API name, checked: identifiers cannot be escaped, only validated."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a Salesforce API name: {name!r}")
    return name


def select(fields: Iterable[str], sobject: str, where: str | None = None, order_by: Iterable[str] = (), limit: int | None = None) -> str:
    """Assemble a SELECT from checked identifiers and an already-rendered WHERE clause."""
    text = f"SELECT {', '.join(identifier(f) for f in fields)} FROM {identifier(sobject)}"
    if where:
        text += f" WHERE {where}"
    order = []
    for term in order_by:
        name, *direction = term.split()
        if direction not in ([], ["ASC"], ["DESC"]):
            raise ValueError(f"ORDER BY direction must be ASC or DESC, got {term!r}")
        order.append(" ".join([identifier(name), *direction]))
    if order:
        text += " ORDER BY " + ", ".join(order)
    if limit is not None:
        text += f" LIMIT {int(limit)}"
    return text
