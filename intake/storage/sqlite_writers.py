"""SQLite writers take turns in a queue instead of SQLite's busy loop.

SQLite lets one connection write at a time; the others wait in its busy
handler, which sleeps 1, 2, 5 … up to 100 ms between tries and wakes no one
when the lock frees. With dozens of request threads in each of several
gunicorn processes, that wait is unfair: bench/throughput.py saw the database
row of a report take 11 ms at the median and 760 ms at the 99th percentile,
all of it sleeping. Here a connection about to write (its first INSERT,
UPDATE, DELETE or REPLACE of a transaction) first takes this process's lock,
then an exclusive `flock` on a file next to the database (``<db>.writers``,
empty, mode 0600), and gives both back when its transaction commits or rolls
back, or when the connection is reset, invalidated or closed. A blocked
`flock` is woken the moment the holder lets go.

Nothing about what is written changes: transactions, their order of commits
and durability are SQLite's. A writer that waits longer than SQLite's own busy
timeout goes ahead without its turn for the rest of its transaction (and
SQLite's busy handler decides), so a second write transaction opened by a
thread that already holds one is answered as before, by SQLite, never by a
deadlock here.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

# A write statement: its first word decides; the rest may be anything.
_WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE)\b.*", re.IGNORECASE | re.DOTALL)
#: Set in a connection's info while it holds its turn, or went ahead without one.
_HOLDS = "intake.sqlite_writer_turn"
_WENT_AHEAD = "intake.sqlite_writer_went_ahead"


class WriterQueue:
    """This process's lock and the file lock shared with the other processes."""

    def __init__(self, lock_path: Path, wait_seconds: float):
        self.lock_path = lock_path
        self.wait_seconds = wait_seconds
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    def _file(self) -> int:
        # Opened lazily, and again in a forked child: a descriptor shared with
        # the parent would share its flock too.
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW
                               | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
        return self._fd

    def acquire(self) -> bool:
        """Wait for this connection's turn; False if it did not come within the wait."""
        deadline = time.monotonic() + self.wait_seconds
        if not self._thread_lock.acquire(timeout=self.wait_seconds):
            return False
        try:
            fd = self._file()
            pause = 0.0005
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        break
                # Another process writes: its transactions last milliseconds.
                time.sleep(pause)
                pause = min(pause * 2, 0.004)
        except BaseException:
            self._thread_lock.release()
            raise
        self._thread_lock.release()
        return False

    def release(self) -> None:
        try:
            if self._fd is not None and self._pid == os.getpid():
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()


_QUEUES: weakref.WeakKeyDictionary[Engine, WriterQueue] = weakref.WeakKeyDictionary()


def queue_of(engine: Engine) -> WriterQueue | None:
    """The queue `install` gave `engine`, if any."""
    return _QUEUES.get(engine)


def install(engine: Engine, database: Path, wait_seconds: float) -> WriterQueue:
    """Make every write transaction on `engine` (SQLite at `database`) wait its turn."""
    queue = WriterQueue(database.with_name(database.name + ".writers"), wait_seconds)
    _QUEUES[engine] = queue
    turns: dict[int, Any] = {}  # id(DBAPI connection) -> its pool record's info

    @event.listens_for(engine, "before_cursor_execute")
    def _take_turn(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        info = conn.info
        if info.get(_HOLDS) or info.get(_WENT_AHEAD) or not _WRITE.fullmatch(statement):
            return
        # A transaction that waited its whole wait in vain goes ahead once, not once
        # per statement: SQLite's busy handler decides for the rest of it.
        info[_HOLDS if queue.acquire() else _WENT_AHEAD] = True
        turns[id(conn.connection.dbapi_connection)] = info

    def give_back(connection: Any) -> None:
        # The pool's proxy or the DBAPI connection itself, depending on the caller.
        info = turns.pop(id(getattr(connection, "dbapi_connection", connection)), None)
        if info is None:
            return
        info.pop(_WENT_AHEAD, None)
        if info.pop(_HOLDS, False):
            queue.release()

    dialect = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(dbapi_connection: Any) -> None:
        try:
            commit(dbapi_connection)
        finally:
            give_back(dbapi_connection)

    def do_rollback(dbapi_connection: Any) -> None:
        try:
            rollback(dbapi_connection)
        finally:
            give_back(dbapi_connection)

    # The pool resets a returned connection with the dialect's rollback too.
    dialect.do_commit = do_commit  # type: ignore[method-assign]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign]

    @event.listens_for(engine, "invalidate")
    def _invalidated(dbapi_connection, record, exception):  # type: ignore[no-untyped-def]
        with contextlib.suppress(Exception):
            give_back(dbapi_connection)

    @event.listens_for(engine, "close")
    def _closed(dbapi_connection, record):  # type: ignore[no-untyped-def]
        with contextlib.suppress(Exception):
            give_back(dbapi_connection)

    return queue
