"""`intake serve`, `intake db upgrade` and `intake demo`."""

from __future__ import annotations

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
    """The metadata database."""


@database.command("upgrade")
def upgrade() -> None:
    """Apply the Alembic migrations up to the newest."""
    from intake.storage import db

    settings = settings_from_env()
    db.upgrade(settings.database_url)
    info("The database is up to date.")


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
    settings = Settings(
        data_dir=base.data_dir,
        database_url=base.database_url,
        keyring_path=keyring_path,
        admins_path=admins_path,
        max_upload=base.max_upload,
    )
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
