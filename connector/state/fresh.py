"""A state store the failing command itself created is removed: a failed run leaves no state file behind."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import sqlalchemy as sa

from connector.core.errors import ConnectorError
from connector.state.store import Store

# What SQLite and the connector's own locks put next to the database file.
SIDE_FILES = ("-wal", "-shm", "-journal", ".lock", ".open-lock")
# Rows any run writes, worth nothing without leads: the schema version, the run's own record, the API calls
# it counted against the shared quota, its poll leases. Any other row (a cursor, a lead, an outbox write,
# a dead letter) is work to keep, even from a run that failed later.
BOOKKEEPING = frozenset({"connector_alembic_version", "runs", "rate_limits", "daily_budgets", "leases", "routing_locks"})


def new_sqlite_file(url: str) -> Path | None:
    """The file a `sqlite:///PATH` URL names when it does not exist yet; None for anything else."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        return None
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database).resolve()
    return None if path.exists() else path


@contextmanager
def open_for_run(url: str) -> Iterator[Store]:
    """Store.open for a command that runs; when the command fails and the file is its own and empty, remove it.

    A run that stops at a bad token, an unreachable CRM or a config error has nothing to keep; a file left
    behind would only look like state (a later run or `status` would read it). A store that existed before,
    or that the failed run already put leads, cursors or writes into, is kept.
    """
    created = new_sqlite_file(url)
    try:
        store = Store.open(url)
    except BaseException:
        if created is not None:
            _remove(created)
        raise
    ok = False
    try:
        yield store
        ok = True
    except SystemExit as exc:
        ok = exc.code in (0, None)
        raise
    finally:
        discard = not ok and created is not None and _holds_only_bookkeeping(store)
        store.close()
        if discard and created is not None:
            _remove(created)


def _holds_only_bookkeeping(store: Store) -> bool:
    try:
        return store.tables_with_rows() <= BOOKKEEPING
    except (ConnectorError, sa.exc.SQLAlchemyError):
        return False  # cannot tell: keep it


def _remove(path: Path) -> None:
    """Remove the database and its side files, unless another process has claimed it meanwhile."""
    try:
        fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # a connector process works on the file now: it is not ours to remove
        for name in (str(path), *(f"{path}{suffix}" for suffix in SIDE_FILES)):
            with suppress(FileNotFoundError):
                os.remove(name)
    finally:
        os.close(fd)
