"""Engines, sessions and migrations, for SQLite (the default) and PostgreSQL.

`make_engine` is the only place an engine is built, so every process gets the
same settings: on SQLite a 30 s busy timeout (gunicorn's workers share one
file), WAL, foreign keys and `secure_delete` (a purged row is overwritten, not
left in a free page of a seized disk); on PostgreSQL a pre-ping, so a restarted
server costs no request. Bound parameters are hidden from log lines and error
messages on both, so an id or a day never reaches a log through an exception.

`is_unavailable` tells a database that cannot answer now (stopped,
restarting, unreachable, out of connections) from other failures: the web
layer answers the first with 503 "try again", since nothing was stored.

`advisory_lock` serialises admin commands across every host that shares one
PostgreSQL database (on SQLite, which lives on one host, the caller's file
lock is enough).

`upgrade` runs the Alembic migrations in `migrations/` to head from code: no
alembic.ini and no logging configuration (Alembic's usual `fileConfig` is
never called, and nothing here echoes SQL).

A database URL that cannot work, or a first connection that fails, becomes a
`DatabaseSetupError`: one sentence that says what to do ("PostgreSQL refused
the password for user intake …; check INTAKE_DATABASE_URL"), never the
driver's traceback and never the password. The translation lives here alone:
`make_engine` checks the URL, and `first_connection` explains a connection
that fails. `upgrade` and `current_revision` (so `is_up_to_date`) connect
through it, and they are what every command and the app factory call first;
later failures (a database that goes away under a running server) keep
SQLAlchemy's own exceptions, which the request paths handle.
"""

from __future__ import annotations

import contextlib
import getpass
import re
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import sessionmaker

from intake.errors import IntakeError
from intake.storage import sqlite_writers

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

#: How long a SQLite writer waits for another before giving up, in seconds.
SQLITE_BUSY_TIMEOUT = 30
#: How long a request waits for one of its process's pooled connections. A process
#: has 128 threads (deploy/gunicorn.conf.py) and 15 connections: when hundreds of
#: chunks land at once, a request waits its turn, within nginx's 120 s, rather than
#: failing after SQLAlchemy's default 30 s (bench/slow_sources.py saw 3 of 250).
POOL_TIMEOUT = 90


#: How the database URL should look, for messages.
URL_FORMS = "sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST/DATABASE"


class DatabaseSetupError(IntakeError):
    """The database URL cannot work, or the database refused the first connection."""


def parse_database_url(url: str) -> URL:
    """`url` parsed, or a `DatabaseSetupError` that says how to write it (never echoing it)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise DatabaseSetupError(
            f"INTAKE_DATABASE_URL is not a database URL; write it as {URL_FORMS}."
        ) from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "postgres":
        raise DatabaseSetupError(
            "INTAKE_DATABASE_URL uses postgres://, which SQLAlchemy does not know; "
            "write postgresql+psycopg://USER:PASSWORD@HOST/DATABASE instead."
        )
    if backend == "postgresql" and driver not in ("", "psycopg"):
        raise DatabaseSetupError(
            f"INTAKE_DATABASE_URL names the driver {driver}, which the intake does not "
            "install; write postgresql+psycopg://USER:PASSWORD@HOST/DATABASE."
        )
    if backend not in ("sqlite", "postgresql"):
        raise DatabaseSetupError(
            f"INTAKE_DATABASE_URL names {backend}, which the intake does not support; "
            f"use {URL_FORMS}."
        )
    if backend == "postgresql" and not driver:
        # SQLAlchemy 2.0 would pick psycopg2 here, which is not installed.
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str) -> Engine:
    """An engine for `url`: "sqlite:///path" or "postgresql+psycopg://...".

    For SQLite, the database file's directory is created (mode 0700) if needed.
    A URL that cannot work raises `DatabaseSetupError` here; connect through
    `first_connection` to have a failed connection explained too.
    """
    parsed = parse_database_url(url)
    if parsed.get_backend_name() != "sqlite":
        try:
            engine = create_engine(parsed, pool_pre_ping=True, hide_parameters=True,
                                   pool_timeout=POOL_TIMEOUT)
        except (NoSuchModuleError, ModuleNotFoundError):
            raise DatabaseSetupError(
                "The PostgreSQL driver is missing; reinstall intake (it needs psycopg)."
            ) from None
        return engine

    on_disk = bool(parsed.database) and parsed.database != ":memory:" and not (
        parsed.database.startswith("file:")
    )
    if on_disk:
        Path(parsed.database).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    engine = create_engine(
        parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT}, hide_parameters=True,
        # An in-memory database has one connection per thread, no queue to wait in.
        **({"pool_timeout": POOL_TIMEOUT} if on_disk else {}),
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT * 1000}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    if on_disk:  # writers queue up instead of sleeping in SQLite's busy handler
        sqlite_writers.install(engine, Path(parsed.database), SQLITE_BUSY_TIMEOUT)
    return engine


@contextlib.contextmanager
def first_connection(engine: Engine) -> Iterator[Connection]:
    """A connection from `engine`; if connecting fails, a `DatabaseSetupError` saying why.

    Only the connect step is explained: an error in what the caller then does
    with the connection goes on as it was.
    """
    try:
        connection = engine.connect()
    except DBAPIError as exc:
        explained = explain_connect_failure(exc.orig or exc, engine.url)
        if explained is None:
            raise
        raise explained from exc
    with connection:
        yield connection


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "this user"


def explain_connect_failure(exc: BaseException, url: URL) -> DatabaseSetupError | None:
    """One sentence for a driver's connection failure, or None if it is not one.

    PostgreSQL (psycopg) gives no SQLSTATE for a failed connection, so the
    libpq message is read; what cannot be recognised still gets a sentence
    with libpq's own words, the password removed.
    """
    message = str(exc)
    if url.get_backend_name() == "sqlite":
        if "unable to open database file" in message:
            return DatabaseSetupError(
                f"The SQLite database {url.database} cannot be opened; check that its folder "
                "exists and that this user may write there, or set INTAKE_DATA_DIR."
            )
        return None
    user = url.username or _os_user()
    socket = url.query.get("host")
    if url.host:
        where = f"{url.host}:{url.port or 5432}"
    elif isinstance(socket, str):
        where = f"the local socket in {socket}"
    else:
        where = "the local socket"
    database = url.database or user
    if "password authentication failed" in message:
        return DatabaseSetupError(
            f"PostgreSQL at {where} refused the password for user {user}; "
            "check the user and password in INTAKE_DATABASE_URL."
        )
    if re.search(r"(Peer|Ident) authentication failed", message):
        return DatabaseSetupError(
            f"PostgreSQL's peer authentication on {where} accepts user {user} only from the "
            f"system user of that name, and this command runs as {_os_user()}; connect over "
            "TCP with a password in INTAKE_DATABASE_URL "
            f"(postgresql+psycopg://{user}:PASSWORD@127.0.0.1/{database}) "
            f"or run the command as system user {user}."
        )
    if "no password supplied" in message:
        return DatabaseSetupError(
            f"PostgreSQL at {where} asks for a password for user {user} and INTAKE_DATABASE_URL "
            f"gives none; write it as postgresql+psycopg://{user}:PASSWORD@HOST/{database}."
        )
    if re.search(r'database ".*" does not exist', message):
        return DatabaseSetupError(
            f"PostgreSQL at {where} has no database named {database}; create it "
            "(deploy/README.md shows how) or correct INTAKE_DATABASE_URL."
        )
    if re.search(r'role ".*" does not exist', message):
        return DatabaseSetupError(
            f"PostgreSQL at {where} has no user named {user}; create it "
            "(deploy/README.md shows how) or correct INTAKE_DATABASE_URL."
        )
    if "failed to resolve host" in message or "could not translate host name" in message:
        return DatabaseSetupError(
            f"The PostgreSQL host {url.host} in INTAKE_DATABASE_URL cannot be found; correct it."
        )
    if "Connection refused" in message or "No such file or directory" in message:
        return DatabaseSetupError(
            f"Nothing answers for PostgreSQL at {where}; start PostgreSQL, or correct the host "
            "and port in INTAKE_DATABASE_URL."
        )
    detail = message.strip().splitlines()[-1] if message.strip() else type(exc).__name__
    if url.password:
        detail = detail.replace(str(url.password), "***")
    detail = re.sub(r"[^\x20-\x7e]", "?", detail)[:200]
    return DatabaseSetupError(
        f"Cannot connect to PostgreSQL at {where} as user {user} ({detail}); check "
        "INTAKE_DATABASE_URL and that PostgreSQL is running."
    )


#: SQLSTATE classes of a server that is going away or not yet there: 08 connection
#: exception, 57P01-57P03 admin/crash shutdown and "cannot connect now" (starting up).
_UNAVAILABLE_STATES = ("08", "57P01", "57P02", "57P03")


def is_unavailable(exc: BaseException | None) -> bool:
    """Whether `exc`, or anything it was raised from, says the database cannot answer now.

    A stopped, restarting or unreachable PostgreSQL, a connection it dropped,
    a pool with no free connection in time, a SQLite database locked past its
    busy timeout. Not a refused statement, a constraint or a full disk.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (DisconnectionError, PoolTimeout)):
            return True
        if isinstance(exc, (OperationalError, InterfaceError)):
            state = getattr(exc.orig, "sqlstate", None)
            if state is None or state.startswith(_UNAVAILABLE_STATES):
                return True
        if isinstance(exc, DBAPIError) and getattr(exc, "connection_invalidated", False):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def make_session_factory(engine: Engine) -> sessionmaker:
    """Sessions whose objects stay readable after commit (rows are handed to callers)."""
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str | None = None) -> Config:
    """An Alembic configuration built in code, as alembic.ini would give it.

    Use it for any Alembic command, e.g. ``command.history(alembic_config())``.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        # ConfigParser interpolation: a "%" in a password must be doubled.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    """Apply every migration up to head; a database already there is left alone.

    A database that cannot be reached is explained (`first_connection`) before
    Alembic starts.
    """
    engine = make_engine(url)
    try:
        with first_connection(engine):
            pass
    finally:
        engine.dispose()
    command.upgrade(alembic_config(url), "head")


def head_revision() -> str | None:
    """The newest migration in this version of the code."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at; None for a database never upgraded."""
    with first_connection(engine) as connection:
        return MigrationContext.configure(connection).get_current_revision()


def is_up_to_date(engine: Engine) -> bool:
    return current_revision(engine) == head_revision()


#: Keys of the PostgreSQL advisory locks the intake takes (one namespace per use).
EXPORT_LOCK = 0x696E74616B6501


class LockBusy(Exception):
    """Another process holds the lock."""


@contextlib.contextmanager
def advisory_lock(engine: Engine, key: int) -> Iterator[None]:
    """Hold PostgreSQL's session advisory lock `key`, or raise LockBusy at once.

    The lock lives as long as the connection: if the holder dies, PostgreSQL
    releases it, so a crashed export never blocks the next. A no-op on SQLite.
    """
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as connection:
        got = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key})
        if not got.scalar():
            raise LockBusy()
        connection.commit()
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()
