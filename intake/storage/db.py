"""Engines, sessions and migrations, for SQLite (the default) and PostgreSQL.

`make_engine` is the only place an engine is built, so every process gets the
same settings: on SQLite a 30 s busy timeout (gunicorn's workers share one
file), WAL, foreign keys and `secure_delete` (a purged row is overwritten, not
left in a free page of a seized disk); on PostgreSQL a pre-ping, so a restarted
server costs no request. Bound parameters are hidden from log lines and error
messages on both, so an id or a day never reaches a log through an exception.

`advisory_lock` serialises admin commands across every host that shares one
PostgreSQL database (on SQLite, which lives on one host, the caller's file
lock is enough).

`upgrade` runs the Alembic migrations in `migrations/` to head from code: no
alembic.ini and no logging configuration (Alembic's usual `fileConfig` is
never called, and nothing here echoes SQL).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

#: How long a SQLite writer waits for another before giving up, in seconds.
SQLITE_BUSY_TIMEOUT = 30


def make_engine(url: str) -> Engine:
    """An engine for `url`: "sqlite:///path" or "postgresql+psycopg://...".

    For SQLite, the database file's directory is created (mode 0700) if needed.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, hide_parameters=True)

    if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith(
        "file:"
    ):
        Path(parsed.database).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT}, hide_parameters=True
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT * 1000}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    return engine


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
    """Apply every migration up to head; a database already there is left alone."""
    command.upgrade(alembic_config(url), "head")


def head_revision() -> str | None:
    """The newest migration in this version of the code."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at; None for a database never upgraded."""
    with engine.connect() as connection:
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
