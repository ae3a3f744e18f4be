"""SQLite writers queue for their turn (intake.storage.sqlite_writers).

- many threads in two processes, each writing through `make_engine`'s engine,
  commit every row, and the turn is free again afterwards;
- a transaction that fails and rolls back gives its turn back, and so does a
  connection the pool throws away;
- a second write transaction opened by a thread that already holds the turn
  is answered by SQLite (busy, after its timeout), never a deadlock;
- the lock file is empty and readable by its owner only.
"""

from __future__ import annotations

import multiprocessing
import os
import stat
import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from intake.storage import db, sqlite_writers


def _engine(path: Path):
    engine = db.make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS t (writer TEXT, n INTEGER)"))
    return engine


def _queue(engine) -> sqlite_writers.WriterQueue:
    queue = sqlite_writers.queue_of(engine)
    assert queue is not None, "make_engine gave this SQLite engine no writer queue"
    return queue


def _write_rows(path: str, writer: str, threads: int, rows: int) -> None:
    engine = _engine(Path(path))

    def work(thread: int) -> None:
        for n in range(rows):
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO t VALUES (:w, :n)"),
                             {"w": f"{writer}-{thread}", "n": n})

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    engine.dispose()


def test_threads_in_two_processes_commit_every_row_and_the_turn_is_free_after(tmp_path):
    path = tmp_path / "intake.db"
    _engine(path).dispose()
    context = multiprocessing.get_context("fork")
    other = context.Process(target=_write_rows, args=(str(path), "child", 6, 40))
    other.start()
    _write_rows(str(path), "parent", 6, 40)
    other.join(120)
    assert other.exitcode == 0
    engine = _engine(path)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 2 * 6 * 40
        assert conn.execute(text("SELECT count(DISTINCT writer) FROM t")).scalar() == 12
    assert not _queue(engine)._thread_lock.locked()


def test_a_failed_transaction_and_a_discarded_connection_give_the_turn_back(tmp_path):
    engine = _engine(tmp_path / "intake.db")
    queue = _queue(engine)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES ('a', 1)"))
        assert queue._thread_lock.locked()
        raise RuntimeError("the request failed half-way")
    assert not queue._thread_lock.locked()
    conn = engine.connect()
    conn.execute(text("UPDATE t SET n = 2"))
    assert queue._thread_lock.locked()
    conn.invalidate()  # the pool closes the DBAPI connection: its transaction is gone
    assert not queue._thread_lock.locked()
    with engine.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 0


def test_a_second_writer_in_the_same_thread_is_answered_by_sqlite_not_a_deadlock(tmp_path):
    path = tmp_path / "nested.db"
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.2})
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    sqlite_writers.install(engine, path, wait_seconds=0.5)
    with engine.connect() as first:
        first.execute(text("INSERT INTO t VALUES (1)"))
        with engine.connect() as second, pytest.raises(OperationalError, match="locked"):
            second.execute(text("INSERT INTO t VALUES (2)"))
        first.commit()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1


def test_the_lock_file_is_empty_and_its_owners_alone(tmp_path):
    engine = _engine(tmp_path / "intake.db")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES ('a', 1)"))
    lock = tmp_path / "intake.db.writers"
    mode = os.stat(lock).st_mode
    assert stat.S_IMODE(mode) == 0o600 and lock.read_bytes() == b""


def test_a_transaction_that_waited_in_vain_goes_ahead_once_not_once_per_statement(tmp_path):
    path = tmp_path / "slow.db"
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 5})
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    queue = sqlite_writers.install(engine, path, wait_seconds=0.2)
    asked = []
    acquire = queue.acquire
    queue.acquire = lambda: asked.append(1) or acquire()  # type: ignore[method-assign]
    assert queue._thread_lock.acquire()  # another thread of this process holds the turn
    try:
        with engine.begin() as conn:
            for n in range(5):
                conn.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
    finally:
        queue._thread_lock.release()
    assert len(asked) == 1  # the statements after the first did not queue again
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 5
    # The next transaction queues again, and gets its turn now that it is free.
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (5)"))
        assert queue._thread_lock.locked()
    assert len(asked) == 2 and not queue._thread_lock.locked()
