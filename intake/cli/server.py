"""`intake serve`, `intake db upgrade|move-blobs|reclaim` and `intake demo`."""

from __future__ import annotations

import dataclasses
import shlex
import sys
from pathlib import Path

import click

from intake.cli.common import info
from intake.config import Settings, settings_from_env
from intake.crypto import identity as identities
from intake.crypto import keyring as kr
from intake.crypto.passphrase import generate_passphrase
from intake.errors import IntakeError


def address_free_handler() -> type:
    """The development server's request log, without the client address or the time.

    Made when a server starts: `intake --help` and the reviewers' commands import no server.
    """
    from werkzeug.serving import WSGIRequestHandler, _log

    class AddressFreeHandler(WSGIRequestHandler):
        def log(self, type: str, message: str, *args: object) -> None:
            _log(type, message % args)

    return AddressFreeHandler


def _serve(settings: Settings, host: str, port: int) -> None:
    from werkzeug.serving import run_simple

    from intake.storage import db
    from intake.web.app import build_app

    db.upgrade(settings.database_url)
    app = build_app(settings)
    run_simple(host, port, app, threaded=True, request_handler=address_free_handler())


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
def serve(host: str, port: int) -> None:
    """Run the development server (production: gunicorn -c deploy/gunicorn.conf.py)."""
    _serve(settings_from_env(), host, port)


@click.group("db")
def database() -> None:
    """The database: its schema, and the blobs kept in PostgreSQL."""


@database.command("upgrade")
def upgrade() -> None:
    """Apply the Alembic migrations up to the newest."""
    from intake.storage import db

    settings = settings_from_env()
    db.upgrade(settings.database_url)
    info("The database is up to date.")


def line_progress(label: str):
    """Progress for long work: a bar on a terminal, else a line at every tenth of the way."""
    from intake.cli.common import terminal_progress

    bar = terminal_progress(label)
    if bar is not None:
        return bar
    state = {"last": -1}

    def update(done: int, total: int) -> None:
        tenth = 10 if total == 0 else done * 10 // total
        if tenth != state["last"]:
            state["last"] = tenth
            info(f"{label}: {tenth * 10}% ({done / 1e6:.1f} of {total / 1e6:.1f} MB)")

    return update


@database.command("move-blobs")
@click.option(
    "--keep-files",
    is_flag=True,
    help="Copy and verify, but leave the files in the data folder "
    "(a later run without this option deletes them, verified again).",
)
def move_blobs(keep_files: bool) -> None:
    """Move the data folder's blobs into PostgreSQL, verified by hash; run it again to resume.

    Stop every app server first; afterwards set INTAKE_BLOB_STORE=postgresql.
    """
    from intake.storage.move_blobs import move_blobs as run_move

    settings = settings_from_env()
    result = run_move(settings, keep_files=keep_files, progress=line_progress("Moving"))
    if not (result.moved or result.verified or result.uploads_moved):
        info("Nothing to move: no blob of a submission is left in "
             f"{settings.blob_dir}.")
    else:
        kept = "" if not keep_files else " The files were kept (--keep-files)."
        info(
            f"Moved {result.moved} blob(s) into PostgreSQL and verified {result.verified} moved "
            f"before, {result.bytes / 1e6:.1f} MB, each checked by SHA-256; "
            f"{result.deleted_files} file(s) deleted.{kept}"
        )
    if result.uploads_moved or result.uploads_dropped:
        info(f"Uploads in progress: {result.uploads_moved} moved, {result.uploads_dropped} "
             "dropped (caught while being filed; their sources' pages start them again).")
    if result.left_behind:
        info(f"{result.left_behind} blob file(s) without a submission row were left in "
             f"{settings.blob_dir}; they are not served (an interrupted submission).")
    if result.missing:
        info(f"{len(result.missing)} submission(s) have no blob on disk or in PostgreSQL; "
             "they are not served.")
    if settings.blob_store != "postgresql":
        info("Set INTAKE_BLOB_STORE=postgresql for every app server and admin command now.")


@database.command("reclaim")
def reclaim() -> None:
    """Make every deleted blob's bytes leave PostgreSQL's table files (purge does it too)."""
    from intake.cli.admin import show_reclaimed
    from intake.transfer.server_side import reclaim_space

    settings = settings_from_env().require_existing()
    if settings.blob_store != "postgresql":
        info("Nothing to do: with INTAKE_BLOB_STORE=filesystem a purged blob's file is deleted "
             "at once.")
        return
    show_reclaimed(reclaim_space(settings, line_progress("Reclaiming")))


@database.command("receipt-secrets")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
def receipt_secrets(path: Path) -> None:
    """Make the receipt secrets file (salt, pepper, Argon2id cost) at PATH, once.

    Only for instances that share INTAKE_SECRET_KEY_FILE: put it beside that
    file, readable by every instance. A lone server makes its own on first
    start. An existing file is never replaced.
    """
    from intake.crypto import receipt

    if path.exists():
        raise IntakeError(f"{path} exists already; it is never replaced (every receipt "
                          "depends on it).")
    if not path.parent.is_dir():
        raise IntakeError(f"The folder {path.parent} does not exist; make it first.")
    receipt.write_secrets(path, receipt.generate_secrets())
    info(f"Wrote {path} (mode 0600). Back it up encrypted, apart from the database; give "
         "every instance the same file (chmod 0640 and the service's group if they run as "
         "different users).")


DEMO_WARNING = "# DEMO ONLY: throwaway keys; never use them for real reports."


def prepare_demo_keys(demo_dir: Path) -> tuple[Path, Path, str]:
    """Make (or reuse) the demo reviewer, admin and signed keyring in `demo_dir`.

    Returns the keyring path, the admins path and the demo passphrase.
    """
    demo_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys_dir = demo_dir / "keys"
    keys_dir.mkdir(exist_ok=True)
    passphrase_file = demo_dir / "passphrase.txt"
    reviewer_key, admin_key = demo_dir / "reviewer.key", demo_dir / "admin.key"
    keyring_path, admins_path = keys_dir / "keyring.json", keys_dir / "admins.json"
    if not passphrase_file.exists():
        # Seven EFF words, as `intake keys` offers: the demo shows the real thing.
        passphrase_file.write_text(f"{generate_passphrase()}\n{DEMO_WARNING}\n")
        passphrase_file.chmod(0o600)
    passphrase = passphrase_file.read_text().splitlines()[0]
    if not reviewer_key.exists():
        public = identities.write_reviewer_identity(reviewer_key, passphrase)
        (demo_dir / "reviewer.pub").write_text(public + "\n")
    public = (demo_dir / "reviewer.pub").read_text().strip()
    if not admin_key.exists():
        admin = identities.write_admin_key(admin_key, passphrase)
        kr.register_admin(admins_path, admin.id, admin.public_key_b64, "Demo admin")
    try:
        kr.verify_keyring(kr.load_keyring(keyring_path), kr.load_admins(admins_path))
        return keyring_path, admins_path, passphrase
    except IntakeError:
        pass
    if keyring_path.exists():
        revised = kr.renew_keyring(kr.load_keyring(keyring_path).document)
    else:
        revised = kr.add_recipient(
            kr.empty_keyring_document(), public, recipient_id="demo-reviewer", label="Demo reviewer"
        )
    admin = identities.load_admin_key(admin_key, lambda: passphrase)
    assert admin.private_key is not None
    kr.save_keyring(keyring_path, kr.sign_keyring(revised, admin.id, admin.private_key))
    return keyring_path, admins_path, passphrase


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
def demo(host: str, port: int) -> None:
    """Demo keys and a signed keyring in var/demo/, then the server (127.0.0.1:8000)."""
    base = settings_from_env()
    demo_dir = base.data_dir / "demo"
    info("Preparing the demo keys (this takes a few seconds)…")
    keyring_path, admins_path, passphrase = prepare_demo_keys(demo_dir)
    settings = dataclasses.replace(base, keyring_path=keyring_path, admins_path=admins_path)
    info(demo_banner(settings, demo_dir, passphrase, host, port))
    _serve(settings, host, port)


def intake_command() -> str:
    """How to run `intake` again from another terminal: the script that runs now, if any."""
    script = Path(sys.argv[0])
    if script.name == "intake" and script.is_file():
        return shlex.quote(str(script.resolve()))
    return f"{shlex.quote(sys.executable)} -m intake"


def demo_banner(settings: Settings, demo_dir: Path, passphrase: str, host: str, port: int) -> str:
    """What the demo made, and the next steps: read a report, the reviewers' path, rotation."""
    q = shlex.quote
    intake = intake_command()
    identity, passphrase_file = demo_dir / "reviewer.key", demo_dir / "passphrase.txt"
    usb, cases = demo_dir / "usb", demo_dir / "cases"
    return f"""
=== intake DEMO: throwaway keys, not for real reports ===
Open http://{host}:{port}/ in a browser and send a report. Stop with Ctrl-C.

Reviewer identity : {identity}
Its passphrase    : {passphrase}   (also in {passphrase_file})

Next steps, in another terminal:
1. Open one submission with the age tool (it asks for the passphrase above):
     age -d -i {q(str(identity))} {q(str(settings.blob_dir))}/<id>.age | tar -x
2. The reviewers' path: export what arrived, as an admin does, then import it:
     export INTAKE_DATA_DIR={q(str(settings.data_dir))}
     export INTAKE_KEYRING={q(str(settings.keyring_path))}
     export INTAKE_ADMINS={q(str(settings.admins_path))}
     {intake} export --out {q(str(usb))}
     {intake} review import {q(str(usb))}/intake-export-*.tar --identity {q(str(identity))} \\
         --passphrase-file {q(str(passphrase_file))} --cases {q(str(cases))}
     {intake} review list --cases {q(str(cases))}
3. A key rotation on the demo's keys (with the three variables above set):
     {intake} keys new-identity --out {q(str(demo_dir / "reviewer2.key"))}
     {intake} keys add age1... --id demo-reviewer-2 --label "Second reviewer"
     {intake} keys sign --admin-key {q(str(demo_dir / "admin.key"))} \\
         --passphrase-file {q(str(passphrase_file))}
     {intake} keys list
   The running demo takes the newly signed keyring within a few seconds.
"""
