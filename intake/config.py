"""Settings from the environment, each with an embedded default.

The names are a contract (see the architecture): INTAKE_DATA_DIR,
INTAKE_DATABASE_URL, INTAKE_KEYRING, INTAKE_ADMINS, INTAKE_MAX_UPLOAD,
INTAKE_MAILBOX_DAYS. Nothing
needs setting for a demo: data goes to ./var, SQLite lives there, keys are
read from ./keys. `load_secret_key` creates the Flask secret on first run,
mode 0600, in the data directory.

Commands that only read or change an existing deployment (`intake export`,
`intake purge`) call `Settings.require_existing` first: run from the wrong
folder, they must say where they looked instead of creating an empty
deployment there. Only `intake db upgrade`, `serve`, `demo` and the server
create one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from intake.errors import IntakeError
from intake.fsutil import atomic_write
from intake.limits import DEFAULT_MAILBOX_DAYS, DEFAULT_MAX_UPLOAD, MiB

#: Where "quick exit" leads: a neutral, common site that explains nothing.
QUICK_EXIT_URL = "https://www.wikipedia.org/"

#: How often the keyring file is looked at for changes, at most.
KEYRING_CHECK_SECONDS = 3.0


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    keyring_path: Path
    admins_path: Path
    max_upload: int
    keyring_check_seconds: float = KEYRING_CHECK_SECONDS
    #: A source mailbox with no activity for this many days is deleted.
    mailbox_days: int = DEFAULT_MAILBOX_DAYS

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def upload_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def secret_key_path(self) -> Path:
        return self.data_dir / "secret_key"

    @property
    def receipt_secrets_path(self) -> Path:
        """The salt, pepper and Argon2id parameters of receipts: beside the secret key."""
        from intake.crypto.receipt import SECRETS_FILE  # PyNaCl: the server's extra only

        return self.secret_key_path.parent / SECRETS_FILE

    def require_existing(self) -> Settings:
        """These settings, if a deployment lives where they point; else refuse, creating nothing.

        A deployment is its data folder and a database that answers and is up
        to date (on SQLite, the file in the data folder must exist first, since
        connecting would create it). Only a connection is opened: nothing is
        made but SQLite's own lock files beside an existing database.
        """
        if not self.data_dir.is_dir():
            raise IntakeError(
                f"There is no intake deployment at {self.data_dir}: run the command in the "
                "deployment's folder, or set INTAKE_DATA_DIR to its data folder."
            )
        sqlite_file = _sqlite_file(self.database_url)
        if sqlite_file is not None and not sqlite_file.is_file():
            raise IntakeError(
                f"There is no intake database at {sqlite_file}: set INTAKE_DATA_DIR (or "
                "INTAKE_DATABASE_URL) to the deployment's, or run `intake db upgrade` to start one."
            )
        from intake.storage import db  # the storage layer sits above the settings

        engine = db.make_engine(self.database_url)
        try:
            if not db.is_up_to_date(engine):
                raise IntakeError(
                    "The database is not up to date for this version of intake; "
                    "run `intake db upgrade` first."
                )
        finally:
            engine.dispose()
        return self


def _sqlite_file(database_url: str) -> Path | None:
    """The file of a SQLite URL ("sqlite:///path"), or None for any other database."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(database_url)
    except (ArgumentError, ValueError):
        return None  # the engine explains a malformed URL in its own words
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).absolute()


def settings_from_env(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    data_dir = Path(env.get("INTAKE_DATA_DIR") or "var").absolute()
    database_url = env.get("INTAKE_DATABASE_URL") or f"sqlite:///{data_dir / 'intake.db'}"
    raw_max = env.get("INTAKE_MAX_UPLOAD") or str(DEFAULT_MAX_UPLOAD)
    try:
        max_upload = int(raw_max)
    except ValueError:
        raise IntakeError("INTAKE_MAX_UPLOAD must be a number of bytes, e.g. 524288000.") from None
    if max_upload < 1 * MiB:
        raise IntakeError("INTAKE_MAX_UPLOAD must be at least 1048576 bytes (1 MiB).")
    raw_days = env.get("INTAKE_MAILBOX_DAYS") or str(DEFAULT_MAILBOX_DAYS)
    if not (raw_days.isascii() and raw_days.isdigit()) or not 1 <= int(raw_days) <= 3650:
        raise IntakeError(
            "INTAKE_MAILBOX_DAYS must be a whole number of days from 1 to 3650, e.g. 90."
        )
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        keyring_path=Path(env.get("INTAKE_KEYRING") or "keys/keyring.json").absolute(),
        admins_path=Path(env.get("INTAKE_ADMINS") or "keys/admins.json").absolute(),
        max_upload=max_upload,
        mailbox_days=int(raw_days),
    )


def load_secret_key(path: Path) -> bytes:
    """The Flask secret key: read, or made on first run with mode 0600."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        # Another worker may make it first: then use theirs.
        with contextlib.suppress(FileExistsError):
            atomic_write(path, secrets.token_hex(32).encode("ascii"), mode=0o600, overwrite=False)
    key = path.read_bytes().strip()
    if len(key) < 32:
        raise IntakeError(f"The secret key file {path} is damaged; delete it to make a new one.")
    return key
