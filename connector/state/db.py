"""The database under the store: engine creation, transactions, schema migrations and the SQLite one-process lock."""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from datetime import datetime
from enum import Enum
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.sql.compiler import SQLCompiler

from connector.core.clock import SystemClock
from connector.core.errors import ConfigError, ConfigProblem, StoreLockedError, StoreUnwritableError

T = TypeVar("T")

# How long an SQLite writer waits for another process's write transaction before giving up.
# Routing and limiter transactions are milliseconds long, so 30 s only runs out when a process hangs.
SQLITE_BUSY_TIMEOUT_SECONDS = 30
# Two replicas starting at once against a fresh PostgreSQL must not both run the DDL.
_MIGRATION_LOCK_KEY = 0x636F6E6E  # "conn"
# SQLite caps bound parameters per statement (32,766 since 3.32, 999 before); stay well under both.
CHUNK = 500
_MIGRATIONS = Path(__file__).with_name("migrations")
# The table Alembic keeps the store's revision in (migrations/env.py names it).
_VERSION_TABLE = "connector_alembic_version"
# `revision = "0007"` / `down_revision = "0006"` (or None) lines of a migration file; anything else (a merge's tuple)
# does not match, and then the head is left to Alembic.
_REVISION_LINE = re.compile(r"""^(revision|down_revision)\s*(?::[^=\n]*)?=\s*(?:["']([^"'\n]+)["']|None)\s*$""", re.MULTILINE)

# SQLite files this process holds the one-process lock of: path -> (open lock file descriptor, holders).
_PROCESS_LOCKS: dict[str, tuple[int, int]] = {}


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """`items` in slices small enough for one statement's bound parameters."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def split_lead_key(key: str) -> tuple[str, str, str]:
    """A lead key "crm:object_type:record_id" as its three parts."""
    crm, _, rest = key.partition(":")
    object_type, _, record_id = rest.partition(":")
    return crm, object_type, record_id


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot store a {type(value).__name__} in a JSON column of the state store")


# orjson writes what json.dumps(separators=(",", ":")) wrote (UTF-8 instead of \u escapes: the same values read
# back). Datetimes and dataclasses go through _json_default like before (orjson's own formats differ or accept more);
# non-str keys are written as json.dumps writes them (https://github.com/ijl/orjson#option).
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS


def _dumps(value: object) -> str:
    try:
        return orjson.dumps(value, default=_json_default, option=_ORJSON_OPTIONS).decode()
    except TypeError:
        # What orjson refuses (integers beyond 64 bits) json writes; for the rest it raises _json_default's TypeError.
        return json.dumps(value, default=_json_default, separators=(",", ":"))


def _loads(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        # Text json.dumps stored that orjson rejects (NaN, Infinity, lone surrogates) reads as it always did.
        return json.loads(text)


def store_problem(message: str) -> ConfigError:
    """A problem with [store] url, reported like any other config error."""
    return ConfigError([ConfigProblem("store.url", message)])


def _sqlite_pragmas(busy_timeout_seconds: float) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the sqlite3 module (its legacy mode never BEGINs before SELECT), so
        # `_sqlite_on_begin` decides between DEFERRED reads and IMMEDIATE writes.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_seconds * 1000)}")
        # WAL lets readers (CLI, /healthz) run while a sync writes; fine for a local file.
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        # NORMAL in WAL mode: no fsync per commit, and still consistent; a crash or kill -9 of the process loses
        # nothing, only an OS crash or power cut can roll back the last commits, and the cursor rolls back with
        # them, so those leads are read again, not lost (https://www.sqlite.org/pragma.html#pragma_synchronous).
        cursor.execute("PRAGMA synchronous = NORMAL")
        # 64 MiB of page cache (negative: KiB) instead of 2 MB, so a 100,000-lead store's indexes stay in memory
        # (https://www.sqlite.org/pragma.html#pragma_cache_size).
        cursor.execute("PRAGMA cache_size = -65536")
        cursor.close()

    return on_connect


def _sqlite_on_begin(conn: sa.Connection) -> None:
    # IMMEDIATE takes the write lock up front: a DEFERRED transaction that reads, then writes, gets
    # SQLITE_BUSY without waiting when another process wrote in between.
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def create_engine(url_text: str, *, busy_timeout_seconds: float = SQLITE_BUSY_TIMEOUT_SECONDS) -> sa.Engine:
    """An engine for a SQLite or PostgreSQL URL; anything else is a ConfigError on store.url."""
    try:
        url = sa.make_url(url_text)
    except sa.exc.ArgumentError as exc:
        raise store_problem(f"not a database URL ({exc}); use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB") from exc
    backend = url.get_backend_name()
    if backend == "postgresql" and url.drivername == "postgresql":
        # A bare postgresql:// would pick psycopg2, which the connector does not ship; psycopg 3 is the driver.
        url = url.set(drivername="postgresql+psycopg")
    if backend not in ("sqlite", "postgresql"):
        raise store_problem(f"unsupported database {backend!r}; use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB")
    # hide_parameters: SQLAlchemy puts a statement's bound values into its error messages and logs; those are
    # event properties, emails and tokens, which must not reach a log line (tests/observability/test_logging.py).
    try:
        if backend == "sqlite":
            engine = sa.create_engine(
                url, json_serializer=_dumps, json_deserializer=_loads, connect_args={"timeout": busy_timeout_seconds},
                hide_parameters=True,
            )
            sa.event.listen(engine, "connect", _sqlite_pragmas(busy_timeout_seconds))
            sa.event.listen(engine, "begin", _sqlite_on_begin)
        else:
            engine = sa.create_engine(url, json_serializer=_dumps, json_deserializer=_loads, hide_parameters=True)
            _ping_when_idle(engine)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise store_problem(f"cannot use {url.drivername}: {exc}") from exc
    return engine


# A pooled PostgreSQL connection back in use within this long is not pinged first (issue 18: the ping was one
# round trip in four); one idle longer is, so a restarted server or a dropped connection is found before use.
PING_AFTER_IDLE_SECONDS = 1.0
_MONOTONIC = SystemClock()


def _ping_when_idle(engine: sa.Engine) -> None:
    """Like `pool_pre_ping`, but only for a connection that sat in the pool PING_AFTER_IDLE_SECONDS or longer.

    A failed ping makes the pool discard the connection and connect afresh (DisconnectionError). A connection
    that breaks within the second after its last use fails its next statement instead; SQLAlchemy then
    invalidates it and every pooled connection older than it, so the one after that reconnects.
    """

    def checkin(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = _MONOTONIC.monotonic()

    def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        record.info["pinged"] = since is not None and _MONOTONIC.monotonic() - since >= PING_AFTER_IDLE_SECONDS
        if not record.info["pinged"]:
            return  # new, or used a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)  # what pool_pre_ping runs: SELECT 1 outside a transaction
        except Exception as exc:  # the driver's error for a dead connection: let the pool replace it
            raise sa.exc.DisconnectionError(f"pooled connection failed its ping: {exc}") from exc

    sa.event.listen(engine.pool, "checkin", checkin)
    sa.event.listen(engine.pool, "checkout", checkout)


def _sqlite_file(engine: sa.Engine) -> str | None:
    """The SQLite database file of the engine; None for PostgreSQL, in-memory and URI databases."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


@contextmanager
def _first_open_lock(engine: sa.Engine) -> Iterator[None]:
    """SQLite: one opener at a time per file, so two processes creating a fresh store don't collide.

    Switching a new file to WAL and migrating it both need the write lock; SQLite answers a second
    connection doing the same at that moment with "database is locked" instead of waiting.
    """
    database = _sqlite_file(engine)
    if database is None:
        yield
        return
    try:
        fd = os.open(str(Path(database).resolve()) + ".open-lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield  # e.g. a missing directory: connecting fails next with the message that names it
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _busy_code(exc: sa.exc.OperationalError) -> bool:
    # sqlite3 exposes the (extended) result code; the low byte is the primary code.
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _unwritable_reason(exc: sa.exc.DBAPIError) -> str | None:
    """Why the database refuses every write, read from the driver's error code; None for any other error."""
    code = getattr(exc.orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        primary = code & 0xFF  # the low byte of an extended result code (SQLITE_READONLY_DBMOVED, ...)
        if primary == sqlite3.SQLITE_FULL:
            return "disk full"
        if primary == sqlite3.SQLITE_READONLY:
            return "read-only file system or database file"
        return None
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate == "53100":  # disk_full
        return "disk full"
    if sqlstate == "25006":  # read_only_sql_transaction: a hot standby, or default_transaction_read_only
        return "read-only (a standby, or default_transaction_read_only is on)"
    return None


def _unwritable_error(url: str, exc: sa.exc.DBAPIError) -> StoreUnwritableError | None:
    """The error to stop with when the store at `url` cannot take writes (disk full, read-only); else None."""
    reason = _unwritable_reason(exc)
    if reason is None:
        return None
    detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
    fix = "free space on its volume" if reason == "disk full" else "make the volume and the database writable"
    return StoreUnwritableError(
        f"the state store at {url} cannot be written: {reason} ({detail}); the last transaction was rolled back "
        f"and the cursor was not advanced; {fix}, then run again"
    )


class _UnknownRevisionError(Exception):
    """Alembic's CommandError from an upgrade, carried out of `Database.migrate` (Alembic is imported only there)."""


def head_revision() -> str | None:
    """The newest migration's revision, read from migrations/versions without importing Alembic; None when the
    files don't name exactly one head (Alembic then decides)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (_MIGRATIONS / "versions").glob("[!_]*.py"):
        found = {m.group(1): m.group(2) for m in _REVISION_LINE.finditer(path.read_text(encoding="utf-8"))}
        revision = found.get("revision")
        if revision is None or "down_revision" not in found:
            return None
        revisions.add(revision)
        parents.update(p for p in (found["down_revision"],) if p is not None)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _read_lock_file(fd: int) -> dict[str, Any]:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


class _BulkStatement:
    """A statement compiled for Database.execute_many: its SQL and what turns a row into the driver's parameters."""

    def __init__(self, stmt: sa.ClauseElement, keys: Sequence[str], dialect: sa.Dialect) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=list(keys))
        assert isinstance(compiled, SQLCompiler)  # a DML statement compiles to SQL, never to DDL
        self.sql = compiled.string
        # qmark (sqlite3) binds by position, pyformat (psycopg) by name as written into the SQL.
        self._positional = compiled.positiontup is not None
        binds = {name: bind for bind, name in compiled.bind_names.items()}  # as rendered into the SQL
        names = list(compiled.positiontup) if compiled.positiontup is not None else list(binds)
        missing = sorted(set(names) - set(keys))
        if missing:
            raise ValueError(f"execute_many rows lack the bound parameters {missing} of {self.sql!r}")
        self._sql_names = tuple(compiled.escaped_bind_names.get(n, n) for n in names)
        self._get = itemgetter(*names)
        self._single = len(names) == 1
        processors = [binds[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names]
        self._processors = [(i, p) for i, p in enumerate(processors) if p is not None]

    def parameters(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        out: list[Any] = []
        for row in rows:
            got = self._get(row)
            values = [got] if self._single else list(got)
            for i, process in self._processors:
                values[i] = process(values[i])
            out.append(tuple(values) if self._positional else dict(zip(self._sql_names, values)))
        return out


class Database:
    """One engine over SQLite or PostgreSQL and the read and write transactions every repository runs in."""

    def __init__(self, engine: sa.Engine, *, busy_timeout_seconds: float = SQLITE_BUSY_TIMEOUT_SECONDS) -> None:
        self.engine = engine
        self.dialect: str = engine.dialect.name
        self.url: str = engine.url.render_as_string(hide_password=True)
        self.busy_timeout_seconds = busy_timeout_seconds
        self._process_lock: str | None = None
        # SQLite: this process's threads (a run's reader and writers, pipeline/overlap.py) take the file's write
        # lock in turn here; left to SQLite's busy handler they would poll for it in sleeps of up to 100 ms.
        self._write_turn = threading.RLock()
        # execute_many's compiled statements, by (name, row keys).
        self._bulk: dict[tuple[str, tuple[str, ...]], _BulkStatement] = {}

    @classmethod
    def open(cls, url: str, *, migrate: bool = True, busy_timeout_seconds: float = SQLITE_BUSY_TIMEOUT_SECONDS) -> Database:
        """Connect and (by default) upgrade the schema to head; a bad or unreachable URL is a ConfigError on store.url."""
        engine = create_engine(url, busy_timeout_seconds=busy_timeout_seconds)
        db = cls(engine, busy_timeout_seconds=busy_timeout_seconds)
        try:
            with _first_open_lock(engine):
                with engine.connect() as conn:
                    conn.exec_driver_sql("SELECT 1")
                if migrate:
                    db.migrate()
        except sa.exc.DBAPIError as exc:
            engine.dispose()
            unwritable = _unwritable_error(db.url, exc)
            if unwritable is not None:
                raise unwritable from exc
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
            raise store_problem(f"cannot open the state store at {db.url}: {reason}") from exc
        except _UnknownRevisionError as exc:
            engine.dispose()
            raise store_problem(
                f"the state store at {db.url} has a schema this connector version does not know ({exc}); "
                "run the newer connector version or point [store] url at another database"
            ) from exc
        return db

    def migrate(self) -> None:
        """Upgrade the schema to the newest migration (one migrator at a time); a store already there is left as it is."""
        if self._at_head():
            return
        # Imported only when there is something to migrate: Alembic's import is ~0.2 s of CPU (issue 18).
        from alembic import command
        from alembic.config import Config
        from alembic.util.exc import CommandError

        cfg = Config()
        # configparser interpolates '%' in option values.
        cfg.set_main_option("script_location", str(_MIGRATIONS).replace("%", "%%"))
        cfg.set_main_option("path_separator", "os")
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                if self.dialect == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
                cfg.attributes["connection"] = conn
                try:
                    command.upgrade(cfg, "head")
                except CommandError as exc:  # e.g. the store holds a revision this version lacks
                    raise _UnknownRevisionError(str(exc)) from exc

    def _at_head(self) -> bool:
        """True when the store's version table holds exactly the newest migration's revision."""
        head = head_revision()
        if head is None:
            return False
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table(_VERSION_TABLE):
                return False
            stored = list(conn.execute(sa.text(f"SELECT version_num FROM {_VERSION_TABLE}")).scalars())
        return stored == [head]

    def close(self) -> None:
        """Give up the process lock and every pooled connection."""
        self._release_process()
        self.engine.dispose()

    def ping(self) -> bool:
        """True when the database answers (for /healthz)."""
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except sa.exc.DBAPIError:
            return False
        return True

    def tables_with_rows(self) -> set[str]:
        """The tables holding at least one row: tells a store with work in it from one only just created."""
        with self.read() as conn:
            names = sa.inspect(conn).get_table_names()
            return {name for name in names if conn.execute(sa.select(sa.literal(1)).select_from(sa.table(name)).limit(1)).first()}

    def insert(self, table: sa.Table) -> Any:
        """An INSERT that can take ON CONFLICT clauses (upserts)."""
        # Both dialects spell upserts as INSERT ... ON CONFLICT; SQLAlchemy exposes them per dialect.
        if self.dialect == "postgresql":
            # Imported here: the PostgreSQL dialect's modules cost a SQLite run ~0.1 s of start-up (issue 18).
            from sqlalchemy.dialects import postgresql

            return postgresql.insert(table)
        return sqlite_dialect.insert(table)

    def execute_many(
        self, conn: sa.Connection, name: str, build: Callable[[], sa.ClauseElement], rows: Sequence[Mapping[str, Any]]
    ) -> None:
        """Run `build()`'s statement once per row (an executemany), every row giving every bound parameter.

        For the per-lead writes of a batch (issue 18 profile: SQLAlchemy's per-row parameter handling cost more
        than SQLite running the rows). The statement is compiled once per `name` and set of row keys; each row
        becomes the driver's parameters directly, through only the bind processors its column types have
        (UtcDateTime, JSON), so it is stored exactly as a SQLAlchemy execute would store it.
        """
        if not rows:
            return
        keys = tuple(rows[0])
        bulk = self._bulk.get((name, keys))
        if bulk is None:
            bulk = self._bulk[(name, keys)] = _BulkStatement(build(), keys, self.engine.dialect)
        try:
            parameters = bulk.parameters(rows)
        except (TypeError, ValueError) as exc:  # a naive datetime, a value JSON cannot hold: as conn.execute reports it
            raise sa.exc.StatementError(str(exc), bulk.sql, None, exc, hide_parameters=True) from exc
        conn.exec_driver_sql(bulk.sql, parameters)

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        try:
            yield
        except sa.exc.DBAPIError as exc:  # PostgreSQL's read-only error is an InternalError, the rest OperationalError
            if isinstance(exc, sa.exc.OperationalError) and _busy_code(exc):
                raise StoreLockedError(
                    f"the state store {self.url} stayed locked by another process for {self.busy_timeout_seconds} s"
                ) from exc
            unwritable = _unwritable_error(self.url, exc)
            if unwritable is not None:
                raise unwritable from exc
            raise

    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """A write transaction (SQLite: BEGIN IMMEDIATE, so it waits for the file's write lock up front)."""
        with self._write_turn if self.dialect == "sqlite" else nullcontext(), self._translate_errors(), self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A read transaction."""
        with self._translate_errors(), self.engine.connect() as conn, conn.begin():
            yield conn

    def claim_process(self, purpose: str, now: datetime) -> None:
        """SQLite: make this the only connector process working on the file, until close(); PostgreSQL: nothing to do.

        An exclusive flock on "<db>.lock" (released by the kernel when the process dies, even by kill -9).
        A second process — `connector sync` while `connector serve` runs — fails fast with StoreLockedError
        naming the holder. Re-entrant within one process (the service's worker and poll loops share it).
        """
        if self._process_lock is not None:
            return
        database = _sqlite_file(self.engine)
        if database is None:
            return
        path = str(Path(database).resolve()) + ".lock"
        held = _PROCESS_LOCKS.get(path)
        if held is not None:
            _PROCESS_LOCKS[path] = (held[0], held[1] + 1)
            self._process_lock = path
            return
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_lock_file(fd)
            os.close(fd)
            raise StoreLockedError(
                f"state store {self.url} is in use by pid {holder.get('pid', '?')} "
                f"({holder.get('purpose', 'a connector process')} on {holder.get('host', '?')} since {holder.get('since', '?')}); "
                "use PostgreSQL for several processes"
            ) from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": purpose, "since": now.isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        _PROCESS_LOCKS[path] = (fd, 1)
        self._process_lock = path

    def _release_process(self) -> None:
        path, self._process_lock = self._process_lock, None
        if path is None or path not in _PROCESS_LOCKS:
            return
        fd, holders = _PROCESS_LOCKS[path]
        if holders > 1:
            _PROCESS_LOCKS[path] = (fd, holders - 1)
            return
        del _PROCESS_LOCKS[path]
        os.close(fd)  # closing the descriptor drops the flock
