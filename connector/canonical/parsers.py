"""Typed parsers of CRM values: each returns the parsed value or raises ValueError (the caller counts it)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from connector.canonical.settings import FieldSpec

_BAND = re.compile(r"^\s*([\d.,\s]+)\s*(?:-|–|—|to)\s*([\d.,\s]+)\s*$", re.IGNORECASE)
_PLUS = re.compile(r"^\s*([\d.,\s]+)\s*\+\s*$")
_SCALE = {"k": 1e3, "thousand": 1e3, "m": 1e6, "mm": 1e6, "mn": 1e6, "mio": 1e6, "million": 1e6, "millions": 1e6,
          "b": 1e9, "bn": 1e9, "billion": 1e9, "billions": 1e9}
_MONEY = re.compile(r"^(?P<num>[\d.,'\s_]+?)\s*(?P<scale>[a-z]+)?\.?$", re.IGNORECASE)
_CURRENCY = re.compile(r"^\s*(?:[$€£¥]|usd|eur|gbp|chf|cad|aud|sek|nok|dkk|jpy)\s*|\s*(?:[$€£¥]|usd|eur|gbp|chf|cad|aud|sek|nok|dkk|jpy)\s*$",
                       re.IGNORECASE)
_GROUPED = re.compile(r"^\d{1,3}([,.' ])\d{3}(\1\d{3})*$")
_EPOCH_MS = re.compile(r"^-?\d{9,}$")


def parse_number(raw: Any) -> float:
    """A number as CRMs hold it: 10000000, "1,200", "10 000 000", "$10M", "€5.5m", "250k", "1.2 bn"."""
    if raw.__class__ is str and raw.isdigit() and raw.isascii():
        return float(raw)  # plain digits (counters, most amounts): what the patterns below would read, without them
    if isinstance(raw, bool):
        raise ValueError(raw)
    if isinstance(raw, int | float):
        return float(raw)
    text = _CURRENCY.sub("", str(raw).strip()).strip()
    match = _MONEY.match(text)
    if match is None:
        raise ValueError(raw)
    scale_word = (match["scale"] or "").lower()
    if scale_word and scale_word not in _SCALE:
        raise ValueError(raw)
    return _plain_number(match["num"]) * _SCALE.get(scale_word, 1.0)


def _plain_number(text: str) -> float:
    digits = text.strip().replace("\u00a0", " ").replace("\u202f", " ").replace("_", "")
    if _GROUPED.match(digits):
        return float(re.sub(r"[,.' ]", "", digits))
    digits = digits.replace(" ", "").replace("'", "")
    if digits.count(",") == 1 and "." not in digits and len(digits.split(",")[1]) <= 2:
        digits = digits.replace(",", ".")  # a decimal comma: "2,5"
    digits = digits.replace(",", "")
    return float(digits)


def parse_band(raw: Any) -> tuple[int, str | None]:
    """An employee band → (lower bound, band): "100-500" → (100, "100-500"), "1000+" → (1000, "1000+"), "250" → (250, None)."""
    text = str(raw).strip()
    for pattern in (_BAND, _PLUS):
        match = pattern.match(text)
        if match:
            low = _whole(_plain_number(match[1]))
            if pattern is _BAND and _whole(_plain_number(match[2])) < low:
                raise ValueError(raw)
            return low, text
    return _whole(parse_number(raw)), None


def _whole(number: float) -> int:
    if not number.is_integer() or number < 0:
        raise ValueError(number)
    return int(number)


def parse_boolean(raw: Any, true_values: frozenset[str], false_values: frozenset[str]) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().casefold()
    if text in true_values:
        return True
    if text in false_values:
        return False
    raise ValueError(raw)


def parse_multi(raw: Any) -> tuple[str, ...]:
    """A multi-select / multi-checkbox value: ';'-separated → stripped, case-folded, de-duplicated items."""
    items = raw if isinstance(raw, list | tuple) else str(raw).split(";")
    return tuple(dict.fromkeys(item.strip().casefold() for item in map(str, items) if item.strip()))


def parse_datetime(raw: Any) -> datetime:
    """Epoch milliseconds ("1717000000000", HubSpot dates) or ISO 8601 (with Z, +00:00 or +0000) → aware UTC."""
    text = str(raw).strip()
    if _EPOCH_MS.match(text):
        return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
    value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_date(raw: Any) -> datetime:
    """A date (ISO "2024-05-01", or HubSpot's midnight-UTC epoch ms) → midnight UTC of that day."""
    value = parse_datetime(raw)
    return datetime.combine(value.date(), datetime.min.time(), tzinfo=UTC)


def value_parser(spec: FieldSpec) -> Callable[[Any], Any]:
    """The function that reads one non-empty CRM value for `spec` (raises ValueError when it does not parse).

    number_band returns (number, band); every other parse returns the lead's value.
    """
    if spec.parse == "number":
        return parse_number
    if spec.parse == "number_band":
        return parse_band
    if spec.parse == "boolean":
        trues = frozenset(v.strip().casefold() for v in spec.true_values)
        falses = frozenset(v.strip().casefold() for v in spec.false_values)
        return lambda raw: parse_boolean(raw, trues, falses)
    if spec.parse == "value_map":
        mapping = {str(k).strip().casefold(): v for k, v in spec.values.items()}
        return lambda raw: _mapped(mapping, raw)
    if spec.parse == "multi":
        return parse_multi
    if spec.parse == "date":
        return parse_date
    if spec.parse == "datetime":
        return parse_datetime
    return lambda raw: str(raw).strip()


def _mapped(mapping: dict[str, Any], raw: Any) -> Any:
    key = str(raw).strip().casefold()
    if isinstance(raw, bool):
        key = "true" if raw else "false"
    if key not in mapping:
        raise ValueError(raw)
    return mapping[key]
