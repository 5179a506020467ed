"""Logging with redaction (tokens never, emails only where configured) as one JSON object per line."""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

EMAIL_RE = re.compile(r"([A-Za-z0-9._%+'-]+)@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
BEARER_RE = re.compile(r"(?i)(bearer\s+|access_token=|session_id=|client_secret=|password=)[^\s&\"',]+")
_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def redact(text: str, *, log_emails: bool) -> str:
    """Remove credentials always and email local parts unless emails may be logged."""
    text = BEARER_RE.sub(lambda m: m.group(1) + "[REDACTED]", text)
    if not log_emails:
        text = EMAIL_RE.sub(lambda m: "***@" + m.group(2), text)
    return text


class RedactingJsonFormatter(logging.Formatter):
    """One JSON object per line with the record's extra fields; every string value is redacted."""

    def __init__(self, *, log_emails: bool, as_json: bool) -> None:
        super().__init__()
        self.log_emails = log_emails
        self.as_json = as_json

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return redact(value, log_emails=self.log_emails)
        if isinstance(value, dict):
            return {k: self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        return value

    def format(self, record: logging.LogRecord) -> str:
        message = self._clean(record.getMessage())
        extras = {k: self._clean(v) for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
        if record.exc_info:
            extras["exc"] = self._clean(self.formatException(record.exc_info))
        if not self.as_json:
            tail = " ".join(f"{k}={v}" for k, v in extras.items())
            return f"{record.levelname:<7} {record.name}: {message}" + (f"  {tail}" if tail else "")
        payload = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": message,
            **extras,
        }
        return json.dumps(payload, default=str, ensure_ascii=False)


def configure_logging(level: str = "INFO", *, log_emails: bool = False, as_json: bool = True) -> None:
    """Send connector logs to stderr (stdout is kept for command output such as --json summaries)."""
    import time

    handler = logging.StreamHandler(sys.stderr)
    formatter = RedactingJsonFormatter(log_emails=log_emails, as_json=as_json)
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger("connector")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
