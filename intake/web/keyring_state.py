"""The server's view of the keyring: trusted, or the intake is closed.

`KeyringWatcher.current()` returns the keyring to encrypt to, or raises
`IntakeClosed`. It looks at the file at most every few seconds; when the file
changed, or the interval passed, it verifies it again (signatures, threshold,
expiry) against the highest version ever accepted, which lives in the
database so that every worker and every restart shares it. Accepting a newer
version raises that number; an older one is refused as a rollback. The
reason for a refusal goes to the admin log only; sources see "temporarily
closed".
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from intake.crypto import keyring as kr
from intake.errors import IntakeError

admin_log = logging.getLogger("intake.admin")


class IntakeClosed(Exception):
    """No trusted keyring: the intake accepts nothing until an admin fixes it."""


class KeyringWatcher:
    def __init__(
        self,
        keyring_path: Path,
        admins_path: Path,
        *,
        highest_version: Callable[[], int],
        raise_version: Callable[[int], int],
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._keyring_path = keyring_path
        self._admins_path = admins_path
        self._highest_version = highest_version
        self._raise_version = raise_version
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._fingerprint: bytes | None = None
        self._keyring: kr.Keyring | None = None
        self._reason = "not checked yet"

    def current(self) -> kr.Keyring:
        with self._lock:
            now = self._clock()
            if self._checked_at is None or now - self._checked_at >= self._interval:
                self._checked_at = now
                self._refresh()
            if self._keyring is None:
                raise IntakeClosed(self._reason)
            return self._keyring

    def _refresh(self) -> None:
        try:
            raw = self._keyring_path.read_bytes()
            admins_raw = self._admins_path.read_bytes()
        except OSError as exc:
            self._close(f"cannot read {exc.filename}: {exc.strerror}")
            return
        fingerprint = hashlib.sha256(raw + b"\0" + admins_raw).digest()
        try:
            keyring = kr.parse_keyring(raw)
            admins = kr.parse_admins(admins_raw)
            floor = self._highest_version()
            kr.verify_keyring(keyring, admins, min_version=floor)
            stored = self._raise_version(keyring.version)
            if stored > keyring.version:  # another worker accepted a newer one meanwhile
                raise IntakeError(f"version {keyring.version} is older than version {stored}")
        except IntakeError as exc:
            self._close(str(exc))
            return
        if self._keyring is None or fingerprint != self._fingerprint:
            admin_log.info(
                "keyring version %d accepted: %d active recipient(s)",
                keyring.version,
                len(keyring.active_recipients()),
            )
        self._fingerprint = fingerprint
        self._keyring = keyring

    def _close(self, reason: str) -> None:
        if self._keyring is not None or reason != self._reason:
            admin_log.error("intake closed, the keyring is not trusted: %s", reason)
        self._keyring = None
        self._fingerprint = None
        self._reason = reason
