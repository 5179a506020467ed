"""Logs: tokens never, emails only where configured, one JSON object per line."""

from __future__ import annotations

import json
import logging

import pytest
import sqlalchemy as sa

from connector.observability.logging import RedactingJsonFormatter, configure_logging, redact
from connector.state.db import create_engine


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


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ('token response {"access_token": "pat-na1-SECRET", "expires_in": 1800}', "pat-na1-SECRET"),
        ('{"refresh_token":"rt-SECRET","token_type":"bearer"}', "rt-SECRET"),
        ("body {'access_token': 'py-repr-SECRET'}", "py-repr-SECRET"),
        ('logged JSON in JSON: "{\\"access_token\\": \\"escaped-SECRET\\"}"', "escaped-SECRET"),
        ("POST /oauth/v1/token grant_type=refresh_token&refresh_token=rt-form-SECRET&client_id=abc", "rt-form-SECRET"),
        ("grant_type=client_credentials&client_assertion=eyJhbGciOi.SECRET.sig&client_assertion_type=jwt", "eyJhbGciOi.SECRET.sig"),
        ("grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=eyJ.JWT-SECRET.x", "eyJ.JWT-SECRET.x"),
        ("<result><serverUrl>https://x.my.salesforce.com</serverUrl><sessionId>00D!AQ.SECRET</sessionId></result>", "00D!AQ.SECRET"),
        ("<urn:login><urn:password>hunter2TOKEN-SECRET</urn:password></urn:login>", "hunter2TOKEN-SECRET"),
        ("Cookie: sid=00D5e000!AQcA.cookie-SECRET; path=/", "00D5e000!AQcA.cookie-SECRET"),
        ("GET /secur/frontdoor.jsp?sid=00D.frontdoor-SECRET&retURL=/", "00D.frontdoor-SECRET"),
        ("store postgresql+psycopg://connector:db-SECRET@10.1.2.3/crm unreachable", "db-SECRET"),
        ("store postgresql://connector:db-SECRET@[fd00::5]:5432/crm unreachable", "db-SECRET"),
        ("proxy http://user:p%40ss-SECRET@10.0.0.9:3128", "p%40ss-SECRET"),
    ],
)
def test_every_form_of_credential_is_redacted(text: str, secret: str) -> None:
    for log_emails in (True, False):
        cleaned = redact(text, log_emails=log_emails)
        assert "SECRET" not in cleaned and secret not in cleaned, cleaned
        assert "[REDACTED]" in cleaned


def test_what_is_not_a_credential_is_kept() -> None:
    text = "GET https://api.hubapi.com:443/crm/v3/objects/contacts?limit=100 ownersid=42 {\"access_token_expires_in\": 1800}"
    assert redact(text, log_emails=True) == text
    url = "postgresql+psycopg://connector:db-SECRET@10.1.2.3:5432/crm"
    assert redact(url, log_emails=True) == "postgresql+psycopg://connector:[REDACTED]@10.1.2.3:5432/crm"


def test_extras_named_like_a_credential_are_redacted() -> None:
    record = logging.makeLogRecord({"name": "connector.x", "levelname": "INFO", "levelno": 20, "msg": "token renewed",
                                    "refresh_token": "rt-SECRET", "body": {"access_token": "at-SECRET", "expires_in": 1800}})
    line = json.loads(RedactingJsonFormatter(log_emails=True, as_json=True).format(record))
    assert line["refresh_token"] == "[REDACTED]"
    assert line["body"] == {"access_token": "[REDACTED]", "expires_in": 1800}


@pytest.mark.parametrize("logger", ["urllib3.connectionpool", "sqlalchemy.engine.Engine", "uvicorn.error", "simple_salesforce.api"])
def test_third_party_loggers_are_redacted_too(
    logger: str, logging_restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", log_emails=False, as_json=True)
    logging.getLogger(logger).warning(
        "retrying %s", 'https://na1.example/services/oauth2/token?refresh_token=rt-SECRET {"access_token": "at-SECRET"} ann@acme.example'
    )
    [line] = [json.loads(raw) for raw in capsys.readouterr().err.splitlines()]
    assert line["logger"] == logger and line["level"] == "WARNING"
    assert "SECRET" not in line["msg"] and "ann@" not in line["msg"] and "[REDACTED]" in line["msg"]


def test_connector_records_are_written_once_and_other_handlers_stay(
    logging_restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    keep = logging.NullHandler()
    logging.getLogger().addHandler(keep)
    configure_logging("INFO", as_json=True)
    configure_logging("INFO", as_json=True)  # again, as every command does: still one handler of ours
    logging.getLogger("connector.jobs").info("synced access_token=at-SECRET")
    [line] = [json.loads(raw) for raw in capsys.readouterr().err.splitlines()]
    assert line["msg"] == "synced access_token=[REDACTED]"
    root = logging.getLogger().handlers
    assert keep in root and sum(isinstance(h.formatter, RedactingJsonFormatter) for h in root) == 1


def test_sql_errors_and_logs_carry_no_bound_values(caplog: pytest.LogCaptureFixture) -> None:
    engine = create_engine("sqlite://")
    try:
        with caplog.at_level(logging.INFO, logger="sqlalchemy.engine"), engine.connect() as conn:
            conn.exec_driver_sql("CREATE TABLE events (id INTEGER PRIMARY KEY, properties TEXT NOT NULL)")
            conn.execute(sa.text("INSERT INTO events (id, properties) VALUES (1, :p)"), {"p": "first"})
            with pytest.raises(sa.exc.IntegrityError) as failed:
                conn.execute(sa.text("INSERT INTO events (id, properties) VALUES (1, :p)"), {"p": "plan=enterprise ann@acme.example"})
    finally:
        engine.dispose()
    assert "ann@acme.example" not in str(failed.value) and "hidden due to hide_parameters" in str(failed.value)
    assert caplog.records and not any("ann@acme.example" in r.getMessage() or "first" in r.getMessage() for r in caplog.records)
