"""Every exception the connector raises, grouped by what the caller must do."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class ConnectorError(Exception):
    """Base of all connector errors."""


@dataclass(frozen=True)
class ConfigProblem:
    """One bad config key: where it is (TOML key path) and what is allowed there."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ConfigError(ConnectorError):
    """Stop before any work; lists every problem with its key path."""

    def __init__(self, problems: Sequence[ConfigProblem] | str, source: str | None = None) -> None:
        if isinstance(problems, str):
            problems = [ConfigProblem("(config)", problems)]
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} configuration problem(s){where}:\n{lines}")


class UsageError(ConnectorError):
    """A command was called with arguments that cannot work (exit code 2)."""


class TransientError(ConnectorError):
    """Worth retrying after a wait: 5xx, timeouts, connection resets, lock contention."""

    def __init__(self, message: str, *, crm: str | None = None, endpoint: str | None = None, status: int | None = None) -> None:
        self.crm = crm
        self.endpoint = endpoint
        self.status = status
        super().__init__(message)


class RateLimitedError(TransientError):
    """The CRM said slow down (HubSpot 429); retry_after in seconds when the CRM said so."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, crm: str | None = None, endpoint: str | None = None,
        status: int | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, crm=crm, endpoint=endpoint, status=status)


class RecordError(ConnectorError):
    """One bad record: dead-letter it with where and why; the batch goes on."""

    def __init__(
        self,
        message: str,
        *,
        crm: str,
        object_type: str,
        record_id: str,
        field: str | None = None,
        code: str | None = None,
    ) -> None:
        self.crm = crm
        self.object_type = object_type
        self.record_id = record_id
        self.field = field
        self.code = code
        super().__init__(f"{crm} {object_type} {record_id}{f' field {field}' if field else ''}: {message}")


class AuthError(ConnectorError):
    """The account is unusable until a credential is fixed; names the credential."""

    def __init__(self, message: str, *, crm: str, credential: str) -> None:
        self.crm = crm
        self.credential = credential
        super().__init__(f"{crm}: {message} (check {credential})")


class BudgetExhaustedError(ConnectorError):
    """The daily API budget guard (or the CRM's own daily limit) is reached: stop writing, keep the cursor."""

    def __init__(self, message: str, *, crm: str, resumes_at: str | None = None) -> None:
        self.crm = crm
        self.resumes_at = resumes_at
        super().__init__(message + (f"; resumes at {resumes_at}" if resumes_at else ""))


class CrmApiError(ConnectorError):
    """A CRM answered in a way that is neither transient nor about one record (e.g. a 400 on a search).

    This is a bug or an unsupported account set-up: it aborts the run and the cursor does not move.
    """

    def __init__(self, message: str, *, crm: str, endpoint: str, status: int | None = None, code: str | None = None) -> None:
        self.crm = crm
        self.endpoint = endpoint
        self.status = status
        self.code = code
        super().__init__(f"{crm} {endpoint}: {message}" + (f" (HTTP {status}{', ' + code if code else ''})" if status else ""))


class StoreLockedError(ConnectorError):
    """Another process holds the state store (e.g. a second process on SQLite)."""


class StoreUnwritableError(ConnectorError):
    """The state store cannot take writes (disk full, read-only volume or database): stop, the cursor stays."""


class RejectedDataError(ConnectorError):
    """The state store refused a value (too long, a NUL, not valid Unicode): the sender's data is bad, not the store."""
