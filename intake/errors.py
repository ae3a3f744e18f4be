"""Errors meant for people.

An `IntakeError` carries one sentence that says what went wrong and what to do.
It never contains a traceback, a server path the user did not give, or any
byte of a report. The command line prints it and exits non-zero; the web layer
turns it into a 4xx page.
"""

import errno


class IntakeError(Exception):
    """A user-facing error: `str(err)` is one sentence that says what to do."""


class EnvelopeError(IntakeError):
    """Ciphertext that cannot be produced, parsed or opened."""


class ContainerError(IntakeError):
    """A report container that is malformed, hostile or over a limit."""


class KeyringError(IntakeError):
    """A keyring or admins file that the server must not trust."""


class IdentityError(IntakeError):
    """A key file that cannot be read, written or unlocked."""


class StorageFull(IntakeError):
    """The data directory or the database has no room for this submission."""


#: SQLite's SQLITE_FULL and PostgreSQL's disk_full (SQLSTATE 53100).
_SQLITE_FULL = 13
_PG_DISK_FULL = "53100"


def is_storage_full(exc: BaseException | None) -> bool:
    """Whether `exc`, or anything it was raised from, says the disk is full.

    A full disk surfaces in many guises: ENOSPC or EDQUOT from a write (the
    spool, a blob, an upload), SQLite's "database or disk is full", PostgreSQL's
    disk_full, each possibly wrapped by SQLAlchemy or by our own errors.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, StorageFull):
            return True
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL:
            return True
        if getattr(exc, "sqlstate", None) == _PG_DISK_FULL:
            return True
        orig = getattr(exc, "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's error
        if isinstance(orig, BaseException) and is_storage_full(orig):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
