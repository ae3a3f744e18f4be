"""`intake serve`, `intake db upgrade` and `intake demo`."""

from __future__ import annotations

from pathlib import Path

import click
from werkzeug.serving import WSGIRequestHandler, _log, run_simple

from intake.cli.common import info
from intake.config import Settings, settings_from_env
from intake.crypto import identity as identities
from intake.crypto import keyring as kr
from intake.crypto.passphrase import generate_passphrase
from intake.errors import IntakeError


class AddressFreeHandler(WSGIRequestHandler):
    """The development server's request log, without the client address or the time."""

    def log(self, type: str, message: str, *args: object) -> None:
        _log(type, message % args)


def _serve(settings: Settings, host: str, port: int) -> None:
    from intake.storage import db
    from intake.web.app import build_app

    db.upgrade(settings.database_url)
    app = build_app(settings)
    run_simple(host, port, app, threaded=True, request_handler=AddressFreeHandler)


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
    """Demo keys and a signed keyring in var/demo/, then the server on 127.0.0.1:8000."""
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
    info(
        f"""
=== intake DEMO: throwaway keys, not for real reports ===
Reviewer identity : {demo_dir / "reviewer.key"}
Its passphrase    : {passphrase}   (also in {demo_dir / "passphrase.txt"})
Submissions land in {settings.blob_dir}/<id>.age. To read one:
  age -d -i {demo_dir / "reviewer.key"} {settings.blob_dir}/<id>.age | tar -x
(age asks for the passphrase above.)
Open http://{host}:{port}/ in a browser. Stop with Ctrl-C.
"""
    )
    _serve(settings, host, port)
