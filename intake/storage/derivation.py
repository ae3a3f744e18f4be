"""How many receipt derivations run at once, across every instance of a deployment.

A receipt derivation (Argon2id, `intake.crypto.receipt`) costs about 0.3 s of
CPU and 128 MiB. Anyone can ask for one, and there is no client address to
ration them by, so they are rationed by **slots**: a slot is a PostgreSQL
session advisory lock shared by every instance on one database (each held on
its own connection, released by PostgreSQL if the holder dies), or, on
SQLite (one host), an exclusive `flock` on a file in the data directory
(released by the kernel if the holder dies).

There are two pools, so that one kind of work can never take the other's:

- **follow-up** (`follow_up`): opening a mailbox with a receipt. A request
  takes a free slot, waiting at most `FOLLOW_UP_WAIT_SECONDS`, else it gets
  `DerivationsBusy` and the page says "busy, try in a minute". Nothing queues
  longer than that.
- **report** (`report`): the derivation of a new report's receipt. It is
  never refused: it waits for a slot of its own pool, and after
  `REPORT_WAIT_SECONDS` it derives without one (logged for the admin), so a
  flood of reports slows reports down but never turns one away, and a flood of
  follow-up requests never touches reports at all.

Waiting is polling with a random pause (no connection or file is held while
waiting), so the queue is bounded by the requests the servers accept at once
(gunicorn's workers times threads), never by anything stored.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, text

from intake.limits import (
    FOLLOW_UP_DERIVATIONS,
    FOLLOW_UP_WAIT_SECONDS,
    REPORT_DERIVATIONS,
    REPORT_WAIT_SECONDS,
)

admin_log = logging.getLogger("intake.admin")

#: The advisory lock keys of slot i: a namespace apart from the export lock's.
_LOCK_BASE = {"follow-up": 0x696E74616B6510_00, "report": 0x696E74616B6511_00}
#: Between two tries for a slot: a random pause in this range, in seconds.
_PAUSE = (0.02, 0.12)


class DerivationsBusy(Exception):
    """Every follow-up slot stayed taken for the whole wait."""


@dataclass(frozen=True)
class Pool:
    name: str
    slots: int
    wait: float
    refuse_when_full: bool


FOLLOW_UP = Pool("follow-up", FOLLOW_UP_DERIVATIONS, FOLLOW_UP_WAIT_SECONDS, True)
REPORT = Pool("report", REPORT_DERIVATIONS, REPORT_WAIT_SECONDS, False)


class DerivationSlots:
    """The two pools of one deployment (see the module docstring)."""

    def __init__(self, engine: Engine, data_dir: Path, *,
                 follow_up_pool: Pool = FOLLOW_UP, report_pool: Pool = REPORT,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self._engine = engine
        self._lock_dir = Path(data_dir) / "derivation-slots"
        self._pools = {"follow-up": follow_up_pool, "report": report_pool}
        self._clock, self._sleep = clock, sleep

    @contextlib.contextmanager
    def follow_up(self) -> Iterator[None]:
        """Hold a follow-up slot for the block, or raise `DerivationsBusy`."""
        with self._hold(self._pools["follow-up"]):
            yield

    @contextlib.contextmanager
    def report(self) -> Iterator[None]:
        """Hold a report slot for the block; wait for one, never refused."""
        with self._hold(self._pools["report"]):
            yield

    @contextlib.contextmanager
    def _hold(self, pool: Pool) -> Iterator[None]:
        deadline = self._clock() + pool.wait
        while True:
            with self._try_each(pool) as held:
                if held:
                    yield
                    return
            if self._clock() >= deadline:
                break
            self._sleep(random.uniform(*_PAUSE))  # noqa: S311 (jitter, not a secret)
        if pool.refuse_when_full:
            raise DerivationsBusy()
        admin_log.warning(
            "a report waited %.0f s for a receipt derivation slot and derived without one: "
            "the intake is under heavy load", pool.wait,
        )
        yield

    @contextlib.contextmanager
    def _try_each(self, pool: Pool) -> Iterator[bool]:
        """Yield True holding some free slot of `pool`, or False if none was free."""
        order = list(range(pool.slots))
        random.shuffle(order)  # noqa: S311 (spreading, not a secret)
        for slot in order:
            with self._try_slot(pool, slot) as held:
                if held:
                    yield True
                    return
        yield False

    @contextlib.contextmanager
    def _try_slot(self, pool: Pool, slot: int) -> Iterator[bool]:
        if self._engine.dialect.name == "postgresql":
            with self._engine.connect() as connection:
                key = _LOCK_BASE[pool.name] + slot
                if not _try_lock(connection, key):
                    yield False
                    return
                try:
                    yield True
                finally:
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    connection.commit()
            return
        self._lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self._lock_dir / f"{pool.name}-{slot}.lock",
                     os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # releases the lock


def _try_lock(connection: Connection, key: int) -> bool:
    got = bool(connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())
    connection.commit()
    return got
