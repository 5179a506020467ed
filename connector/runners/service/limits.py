"""What an intake body may hold: JSON nesting depth, text the state store can keep (length, no NUL, valid Unicode).

Checked at the edge so bad data is answered 400 naming the field, on SQLite and PostgreSQL alike,
instead of a database error that reads as "store unavailable" (issue 19).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

# Deeper JSON than this is refused before parsing: json.loads and every later walk recurse per level.
MAX_JSON_DEPTH = 64
# Column sizes of the state store (state/schema.py): names and ids 255, emails and lead keys 320.
MAX_NAME_CHARS = 255
MAX_EMAIL_CHARS = 320
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


class BodyFormatError(ValueError):
    """A body or a value the service cannot take: the message names the field."""


def loads_bounded(body: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`json.loads(body)`, refusing nesting deeper than `max_depth` (BodyFormatError) before it can recurse."""
    depth = deepest = 0
    for bracket in _BRACKET.finditer(_STRING.sub(b"", body)):
        depth += 1 if bracket.group() in (b"[", b"{") else -1
        deepest = max(deepest, depth)
    if deepest > max_depth:
        raise BodyFormatError(f"(body): JSON nested {deepest} levels deep; at most {max_depth} are accepted")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BodyFormatError(f"(body): not valid JSON ({exc})") from None
    except RecursionError:  # a platform with a smaller stack than the depth check assumes
        raise BodyFormatError(f"(body): JSON nested too deep; at most {max_depth} levels are accepted") from None


def check_text(value: str, field: str, *, max_chars: int | None = None) -> str:
    """`value` if the store can keep it: no NUL, no lone surrogate, at most `max_chars`; else BodyFormatError naming `field`."""
    if "\x00" in value:
        raise BodyFormatError(f"{field}: contains a NUL character (\\u0000)")
    if max_chars is not None and len(value) > max_chars:
        raise BodyFormatError(f"{field}: {len(value)} characters; at most {max_chars} are accepted")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BodyFormatError(f"{field}: not valid Unicode (a lone surrogate escape such as \\ud800)") from None
    return value


def check_tree(value: Any, field: str) -> None:
    """Every string (keys too) of a parsed JSON value passes `check_text`; the error names the path."""
    if isinstance(value, str):
        check_text(value, field)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_text(str(key), f"{field} (a key)")
            check_tree(item, f"{field}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_tree(item, f"{field}[{index}]")
