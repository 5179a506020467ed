"""Logs: tokens never, emails only where configured, one JSON object per line."""

from __future__ import annotations

import json
import logging

from connector.observability.logging import RedactingJsonFormatter, redact


def test_tokens_are_always_redacted() -> None:
    text = redact("Authorization: Bearer pat-na1-SECRET and access_token=abc123&x=1", log_emails=True)
    assert "SECRET" not in text and "abc123" not in text
    assert text.count("[REDACTED]") == 2


def test_emails_redacted_unless_configured() -> None:
    assert redact("lead ann.lee@acme.example routed", log_emails=False) == "lead ***@acme.example routed"
    assert "ann.lee@acme.example" in redact("lead ann.lee@acme.example routed", log_emails=True)


def test_json_lines_carry_extras_redacted() -> None:
    record = logging.makeLogRecord({"name": "connector.x", "levelname": "INFO", "levelno": 20, "msg": "routed %s",
                                    "args": ("ann@acme.example",), "lead": "hubspot:contacts:1", "email": "ann@acme.example"})
    line = json.loads(RedactingJsonFormatter(log_emails=False, as_json=True).format(record))
    assert line["msg"] == "routed ***@acme.example"
    assert line["email"] == "***@acme.example"
    assert line["lead"] == "hubspot:contacts:1"
