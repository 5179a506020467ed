"""The SOQL subset the Salesforce sandbox answers: tokens, literals, LIKE patterns, a parser to row predicates, ordering.

Malformed text raises ValueError (→ MALFORMED_QUERY); unknown names raise LookupError (→ INVALID_FIELD).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from connector.sandbox.salesforce.schema import NUMERIC as _NUMERIC
from connector.sandbox.salesforce.schema import STRINGISH as _STRINGISH
from connector.sandbox.salesforce.schema import FieldDef
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>'(?:[^'\\]|\\.)*')
     |(?P<dt>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
     |(?P<date>\d{4}-\d{2}-\d{2})(?![\dT])
     |(?P<num>-?\d+(?:\.\d+)?)
     |(?P<op><=|>=|!=|<>|=|<|>)
     |(?P<punct>[(),])
     |(?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE | re.DOTALL,
)
_UNESCAPE = {"'": "'", '"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}
_KEYWORDS = {"SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC", "DESC", "LIMIT",
             "NULL", "TRUE", "FALSE", "NULLS", "FIRST", "LAST"}
_RAW_ORDER = {"id", "reference"}  # Ids compare byte-wise; text compares case-insensitively


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"unexpected text at position {pos}: {text[pos:pos + 20]!r}")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    return tokens


def decode_string_literal(token: str) -> str:
    """The value of a quoted SOQL string literal (`'o\\'neil'` → `o'neil`); bad escapes are malformed."""
    if len(token) < 2 or token[0] != "'" or token[-1] != "'":
        raise ValueError(f"not a string literal: {token!r}")
    body, out, i = token[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1] if i + 1 < len(body) else ""
            if nxt not in _UNESCAPE:
                raise ValueError(f"invalid escape sequence \\{nxt} in {token!r}")
            out.append(_UNESCAPE[nxt])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def like_regex(token: str) -> re.Pattern[str]:
    """Compile a LIKE literal: `%` any run, `_` one char, `\\%` / `\\_` literal; case-insensitive like SOQL."""
    body, parts, i = token[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1] if i + 1 < len(body) else ""
            if nxt in ("%", "_"):
                parts.append(re.escape(nxt))
            elif nxt in _UNESCAPE:
                parts.append(re.escape(_UNESCAPE[nxt]))
            else:
                raise ValueError(f"invalid escape sequence \\{nxt} in {token!r}")
            i += 2
            continue
        parts.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def _parse_datetime_literal(text: str) -> datetime:
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text).astimezone(UTC)


Predicate = Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True)
class Soql:
    fields: tuple[str, ...]
    sobject: str
    where: Predicate | None
    order_by: tuple[tuple[str, bool], ...]  # (field, descending)
    limit: int | None


class _Parser:
    def __init__(self, text: str, schemas: Mapping[str, Mapping[str, FieldDef]]) -> None:
        self.tokens = tokenize(text)
        self.pos = 0
        self.schemas = schemas
        self.schema: Mapping[str, FieldDef] = {}
        self.sobject = ""

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def next(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise ValueError("unexpected end of query")
        self.pos += 1
        return tok

    def keyword(self, *words: str) -> str | None:
        tok = self.peek()
        if tok and tok[0] == "word" and tok[1].upper() in words:
            self.pos += 1
            return tok[1].upper()
        return None

    def expect_keyword(self, word: str) -> None:
        if self.keyword(word) is None:
            raise ValueError(f"expected {word} at token {self.pos}")

    def expect_punct(self, ch: str) -> None:
        tok = self.next()
        if tok != ("punct", ch):
            raise ValueError(f"expected {ch!r}, got {tok[1]!r}")

    def field(self, name: str) -> FieldDef:
        for key, fdef in self.schema.items():
            if key.lower() == name.lower():
                return fdef
        raise LookupError(f"No such column '{name}' on entity '{self.sobject}'.")

    def parse(self) -> Soql:
        self.expect_keyword("SELECT")
        raw_fields = []
        while True:
            kind, text = self.next()
            if kind != "word" or text.upper() in _KEYWORDS:
                raise ValueError(f"expected a field name, got {text!r}")
            raw_fields.append(text)
            if self.peek() == ("punct", ","):
                self.pos += 1
                continue
            break
        self.expect_keyword("FROM")
        kind, obj = self.next()
        match = next((name for name in self.schemas if name.lower() == obj.lower()), None)
        if kind != "word" or match is None:
            raise LookupError(f"sObject type '{obj}' is not supported.")
        self.sobject, self.schema = match, self.schemas[match]
        fields = tuple(self.field(f).name for f in raw_fields)
        where = self.expression() if self.keyword("WHERE") else None
        order: list[tuple[str, bool]] = []
        if self.keyword("ORDER"):
            self.expect_keyword("BY")
            while True:
                kind, text = self.next()
                if kind != "word":
                    raise ValueError(f"expected a field in ORDER BY, got {text!r}")
                name = self.field(text).name
                desc = self.keyword("ASC", "DESC") == "DESC"
                if self.keyword("NULLS"):
                    if self.keyword("FIRST", "LAST") is None:
                        raise ValueError("expected FIRST or LAST after NULLS")
                order.append((name, desc))
                if self.peek() == ("punct", ","):
                    self.pos += 1
                    continue
                break
        limit = None
        if self.keyword("LIMIT"):
            kind, text = self.next()
            if kind != "num" or not text.isdigit():
                raise ValueError("LIMIT needs a whole number")
            limit = int(text)
        if self.peek() is not None:
            raise ValueError(f"unexpected token {self.peek()[1]!r}")  # type: ignore[index]
        return Soql(fields, self.sobject, where, tuple(order), limit)

    def expression(self) -> Predicate:
        parts = [self.conjunction()]
        while self.keyword("OR"):
            parts.append(self.conjunction())
        if len(parts) == 1:
            return parts[0]
        return lambda row: any(p(row) for p in parts)

    def conjunction(self) -> Predicate:
        parts = [self.negation()]
        while self.keyword("AND"):
            parts.append(self.negation())
        if len(parts) == 1:
            return parts[0]
        return lambda row: all(p(row) for p in parts)

    def negation(self) -> Predicate:
        if self.keyword("NOT"):
            inner = self.negation()
            return lambda row: not inner(row)
        if self.peek() == ("punct", "("):
            self.pos += 1
            inner = self.expression()
            self.expect_punct(")")
            return inner
        return self.comparison()

    def value(self, fdef: FieldDef) -> object:
        kind, text = self.next()
        upper = text.upper() if kind == "word" else ""
        if upper == "NULL":
            return None
        ftype = fdef.type
        if ftype == "boolean":
            if upper not in ("TRUE", "FALSE"):
                raise ValueError(f"value for {fdef.name} must be true or false")
            return upper == "TRUE"
        if ftype == "datetime":
            if kind != "dt":
                raise ValueError(f"value of filter criterion for field '{fdef.name}' must be of type dateTime "
                                 "and should not be enclosed in quotes")
            return _parse_datetime_literal(text)
        if ftype == "date":
            if kind != "date":
                raise ValueError(f"value of filter criterion for field '{fdef.name}' must be of type date")
            return date.fromisoformat(text)
        if ftype in _NUMERIC:
            if kind != "num":
                raise ValueError(f"value of filter criterion for field '{fdef.name}' must be a number")
            return float(text) if "." in text else int(text)
        if kind != "str":
            raise ValueError(f"value of filter criterion for field '{fdef.name}' must be a quoted string")
        return decode_string_literal(text)

    def comparison(self) -> Predicate:
        kind, text = self.next()
        if kind != "word":
            raise ValueError(f"expected a field name, got {text!r}")
        fdef = self.field(text)
        name, raw = fdef.name, fdef.type in _RAW_ORDER or fdef.type not in _STRINGISH
        negated = self.keyword("NOT") is not None
        if self.keyword("IN"):
            self.expect_punct("(")
            values = [self.value(fdef)]
            while self.peek() == ("punct", ","):
                self.pos += 1
                values.append(self.value(fdef))
            self.expect_punct(")")
            keys = {_fold(v, raw) for v in values}
            return lambda row: (_fold(row.get(name), raw) in keys) != negated
        if self.keyword("LIKE"):
            kind, text = self.next()
            if kind != "str":
                raise ValueError("LIKE needs a quoted pattern")
            pattern = like_regex(text)
            return lambda row: (isinstance(row.get(name), str) and pattern.fullmatch(row[name]) is not None) != negated
        if negated:
            raise ValueError("NOT must be followed by IN or LIKE here")
        kind, op = self.next()
        if kind != "op":
            raise ValueError(f"expected an operator after {name}, got {op!r}")
        value = self.value(fdef)
        return _compare_predicate(name, op, value, raw)


def _fold(value: object, raw: bool) -> object:
    return value.casefold() if isinstance(value, str) and not raw else value


def _compare_predicate(name: str, op: str, value: object, raw: bool) -> Predicate:
    target = _fold(value, raw)

    def check(row: Mapping[str, Any]) -> bool:
        current = _fold(row.get(name), raw)
        if op == "=":
            return current == target
        if op in ("!=", "<>"):
            return current != target
        if current is None or target is None:
            return False
        try:
            if op == "<":
                return bool(current < target)  # type: ignore[operator]
            if op == "<=":
                return bool(current <= target)  # type: ignore[operator]
            if op == ">":
                return bool(current > target)  # type: ignore[operator]
            return bool(current >= target)  # type: ignore[operator]
        except TypeError:
            return False

    return check


def parse_soql(text: str, schemas: Mapping[str, Mapping[str, FieldDef]]) -> Soql:
    """Parse the supported SOQL subset against object schemas (ValueError: malformed, LookupError: unknown name)."""
    return _Parser(text, schemas).parse()


def sort_rows(rows: list[dict[str, Any]], order: Iterable[tuple[str, bool]], schema: Mapping[str, FieldDef]) -> None:
    # Stable sorts from the last key to the first give a multi-key order with mixed directions;
    # SOQL puts nulls first for ASC and last for DESC by default.
    for name, desc in reversed(list(order)):
        raw = schema[name].type in _RAW_ORDER or schema[name].type not in _STRINGISH

        def key(row: Mapping[str, Any], name: str = name, raw: bool = raw) -> tuple[int, Any]:
            value = row.get(name)
            return (1, _fold(value, raw)) if value is not None else (0, "")

        rows.sort(key=key, reverse=desc)


