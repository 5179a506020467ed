"""Logging with redaction (tokens never, emails only where configured) as one JSON object per line."""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any, TextIO

EMAIL_RE = re.compile(r"([A-Za-z0-9._%+'-]+)@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# Names that carry a credential, however it is spelled out: OAuth token responses and grants (HubSpot and
# Salesforce), Salesforce's SOAP login (<sessionId>, and the password + security token it is sent), its `sid`
# cookie, JWT bearer assertions.
SECRET_NAMES = (
    "access_token|refresh_token|id_token|client_secret|client_assertion|assertion|session_id|sessionid|sid|password"
)
# Authorization headers, and name=value in query strings, form bodies and cookies.
BEARER_RE = re.compile(rf"(?i)(bearer\s+|(?<![A-Za-z0-9])(?:{SECRET_NAMES})=)[^\s&\"',;]+")
# "name": "value" in JSON and 'name': 'value' in a repr, also inside an escaped JSON string (\"name\": \"value\").
JSON_SECRET_RE = re.compile(rf"""(?i)(\\?["'](?:{SECRET_NAMES})\\?["']\s*:\s*\\?["'])[^"'\\]*""")
# <sessionId>value</sessionId>, with or without a namespace prefix (SOAP login responses and requests).
XML_SECRET_RE = re.compile(r"(?i)(<(?:[\w.-]+:)?(sessionId|password|client_secret)\b[^>/]*>)[^<]*(</(?:[\w.-]+:)?\2\s*>)")
# The password of any URL with user info (postgresql+psycopg://user:pass@10.1.2.3/db): the email rule below only
# happened to hide it when the host looked like a domain, never for an IP address.
URL_PASSWORD_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@?#]*:)[^\s@]+(@)")
REDACTED = "[REDACTED]"
_SECRET_KEY_RE = re.compile(rf"(?i)(?:{SECRET_NAMES})")
_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def redact(text: str, *, log_emails: bool) -> str:
    """Remove credentials always and email local parts unless emails may be logged."""
    text = URL_PASSWORD_RE.sub(lambda m: m.group(1) + REDACTED + m.group(2), text)
    text = BEARER_RE.sub(lambda m: m.group(1) + REDACTED, text)
    text = JSON_SECRET_RE.sub(lambda m: m.group(1) + REDACTED, text)
    text = XML_SECRET_RE.sub(lambda m: m.group(1) + REDACTED + m.group(3), text)
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
            return {k: REDACTED if _is_secret_key(k) and v is not None else self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        return value

    def format(self, record: logging.LogRecord) -> str:
        message = self._clean(record.getMessage())
        extras = {
            k: REDACTED if _is_secret_key(k) else self._clean(v)
            for k, v in vars(record).items()
            if k not in _STANDARD and not k.startswith("_")
        }
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


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever sys.stderr is when a record arrives, not the one in place at configure time.

    It sits on the root logger, which outlives a command: a test runner or a CLI runner that swapped
    sys.stderr for one command must not leave every later library warning going to its closed buffer.
    """

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr  # Handler.handle holds the handler's lock around emit
        super().emit(record)


def configure_logging(level: str = "INFO", *, log_emails: bool = False, as_json: bool | None = True) -> None:
    """Send every log record, the connector's and its libraries', redacted to stderr (stdout is kept for output).

    The one handler sits on the root logger, so urllib3, sqlalchemy, uvicorn, simple_salesforce and every
    other library logger pass through the same redaction; the root's level is left alone (WARNING by default,
    so SQLAlchemy does not start logging each statement). The `connector` logger has the same handler at the
    configured level and does not propagate, so its records are written once.
    """
    import time

    handler = _StderrHandler(sys.stderr)
    if as_json is None:  # not configured: a person at a terminal reads text, a log collector gets JSON
        as_json = not sys.stderr.isatty()
    formatter = RedactingJsonFormatter(log_emails=log_emails, as_json=as_json)
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    # Replace only a handler of ours from an earlier call: others (pytest's capture, an embedding app) stay.
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _StderrHandler)] + [handler]
    connector = logging.getLogger("connector")
    connector.handlers[:] = [handler]
    connector.setLevel(level)
    connector.propagate = False


def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and _SECRET_KEY_RE.fullmatch(key) is not None
