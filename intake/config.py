"""Settings from the environment, each with an embedded default.

The names are a contract (see the architecture): INTAKE_DATA_DIR,
INTAKE_DATABASE_URL, INTAKE_KEYRING, INTAKE_ADMINS, INTAKE_MAX_UPLOAD,
INTAKE_MAILBOX_DAYS, INTAKE_BLOB_STORE, INTAKE_SECRET_KEY_FILE. Nothing needs
setting for a demo: data goes to ./var, SQLite lives there, keys are read
from ./keys, blobs are files in the data directory. `load_secret_key` creates
the Flask secret on first run, mode 0600, in the data directory; the receipt
secrets (`intake.crypto.receipt`) live beside it.

Several app servers serving one deployment share what must be shared
through PostgreSQL and one file, never a disk: INTAKE_BLOB_STORE=postgresql
keeps blobs and upload parts in the database (it refuses any other
database), and INTAKE_SECRET_KEY_FILE names the session and CSRF secret that
every instance reads, so that a form fetched from one is posted to another.
That file is never made here: a missing or damaged one stops the server with
a sentence that says how to make it, since each host making its own would
split the deployment silently. The same holds for the receipt secrets file
beside it: made on first run in the data directory, never beside a shared
key (`intake db receipt-secrets` makes it once).

Commands that only read or change an existing deployment (`intake export`,
`intake purge`) call `Settings.require_existing` first: run from the wrong
folder, they must say where they looked instead of creating an empty
deployment there. With the PostgreSQL blob store a deployment is its
database alone, and they need no data directory at all. Only `intake db
upgrade`, `serve`, `demo` and the server create one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
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
    #: INTAKE_BLOB_STORE: "filesystem" (blobs in the data dir) or "postgresql".
    blob_store: str = "filesystem"
    #: INTAKE_SECRET_KEY_FILE; None: the data dir's generated key.
    secret_key_file: Path | None = None

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
        """INTAKE_SECRET_KEY_FILE if set (shared by every instance), else the data dir's key."""
        return self.secret_key_file or self.data_dir / "secret_key"

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
        made but SQLite's own lock files beside an existing database. With the
        PostgreSQL blob store the data folder is not looked at: an admin
        command may run on a host that has none.
        """
        if self.blob_store != "postgresql" and not self.data_dir.is_dir():
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


def _blob_store(env: Mapping[str, str], database_url: str) -> str:
    from intake.storage.blobs import BLOB_STORES

    kind = (env.get("INTAKE_BLOB_STORE") or "filesystem").strip().lower()
    if kind not in BLOB_STORES:
        raise IntakeError(
            "INTAKE_BLOB_STORE must be filesystem (blobs in the data folder) or postgresql "
            "(blobs in the database)."
        )
    if kind == "postgresql" and not database_url.startswith(("postgresql", "postgres:")):
        raise IntakeError(
            "INTAKE_BLOB_STORE=postgresql keeps blobs in PostgreSQL, but INTAKE_DATABASE_URL is "
            "not a PostgreSQL database; set it to postgresql+psycopg://USER:PASSWORD@HOST/DATABASE."
        )
    return kind


def settings_from_env(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    data_dir = Path(env.get("INTAKE_DATA_DIR") or "var").absolute()
    database_url = env.get("INTAKE_DATABASE_URL") or f"sqlite:///{data_dir / 'intake.db'}"
    key_file = env.get("INTAKE_SECRET_KEY_FILE")
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
        blob_store=_blob_store(env, database_url),
        secret_key_file=Path(key_file).absolute() if key_file else None,
    )


#: How to make a shared secret key file, for messages and the operators' guide.
MAKE_KEY = "python3 -c 'import secrets; print(secrets.token_hex(32))' > FILE; chmod 0640 FILE"
#: The longest secret key file read (a key is 64 hex digits; anything far longer is not one).
MAX_KEY_FILE = 4096


def load_secret_key(path: Path, *, create: bool = True) -> bytes:
    """The Flask secret key: read, or (`create`) made on first run with mode 0600.

    A given INTAKE_SECRET_KEY_FILE is read, never made (`create=False`): every
    instance must read the same one. It must hold at least 32 characters and
    be neither readable nor writable by every user on the host.
    """
    if create:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():
            # Another worker may make it first: then use theirs.
            with contextlib.suppress(FileExistsError):
                atomic_write(path, secrets.token_hex(32).encode("ascii"), mode=0o600,
                             overwrite=False)
    try:
        mode = os.stat(path).st_mode
        with open(path, "rb") as fh:
            key = fh.read(MAX_KEY_FILE + 1).strip()
    except FileNotFoundError:
        raise IntakeError(
            f"The secret key file {path} (INTAKE_SECRET_KEY_FILE) does not exist; make it once "
            f"with {MAKE_KEY.replace('FILE', str(path))}, and give every instance the same file."
        ) from None
    except OSError as exc:
        raise IntakeError(
            f"The secret key file {path} cannot be read ({exc.strerror}); let the service's "
            "user read it."
        ) from None
    if not stat.S_ISREG(mode) or mode & 0o007:
        raise IntakeError(
            f"The secret key file {path} is open to every user on this host (or is not a "
            f"file); restrict it with chmod 0640 {path}."
        )
    if len(key) < 32 or len(key) > MAX_KEY_FILE:
        hint = "delete it to make a new one" if create else "make it again (deploy/README.md)"
        raise IntakeError(f"The secret key file {path} is damaged; {hint}.")
    return key
