"""`intake keys`: reviewer identities, admin keys and the signed keyring."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import click

from intake.cli.common import (
    admins_option,
    info,
    keyring_option,
    passphrase_file_option,
    passphrase_source,
)
from intake.crypto import identity as identities
from intake.crypto import keyring as kr
from intake.errors import IntakeError

MAX_LABEL = 80


def _clean_label(label: str) -> str:
    label = "".join(ch for ch in label if unicodedata.category(ch)[0] != "C").strip()
    if not label or len(label) > MAX_LABEL:
        raise IntakeError(f"The label must be 1 to {MAX_LABEL} visible characters.")
    return label


def _warn_weak(passphrase: str) -> None:
    if len(passphrase) < identities.WEAK_PASSPHRASE:
        info(
            f"Warning: the passphrase is shorter than {identities.WEAK_PASSPHRASE} characters; "
            "a passphrase of several random words is much harder to guess."
        )


def _load_document(path: Path) -> dict:
    """The keyring document to revise: an empty one if the file does not exist yet."""
    if not path.exists():
        return kr.empty_keyring_document()
    return kr.load_keyring(path).document


def _describe(keyring: kr.Keyring) -> None:
    info(
        f"Keyring version {keyring.version}, issued {kr.format_time(keyring.issued_at)}, "
        f"expires {kr.format_time(keyring.expires_at)}."
    )


valid_days_option = click.option(
    "--valid-days",
    type=click.IntRange(1, 3660),
    default=kr.DEFAULT_VALID_DAYS,
    show_default=True,
    help="How long the new keyring version stays valid.",
)


@click.group()
def keys() -> None:
    """Reviewer identities, admin keys and the signed keyring."""


@keys.command("new-identity")
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write the passphrase-protected identity.",
)
@passphrase_file_option
def new_identity(out: Path, passphrase_file: Path | None) -> None:
    """Create a reviewer identity (run this on the air-gapped machine); print its public key."""
    if out.exists():
        raise IntakeError(
            f"{out} already exists; a key file is never overwritten, choose another name."
        )
    passphrase = passphrase_source(passphrase_file, what=str(out), new=True)()
    _warn_weak(passphrase)
    public = identities.write_reviewer_identity(out, passphrase)
    click.echo(public)
    info(
        f"Wrote the reviewer identity to {out}, protected by the passphrase.\n"
        f"Fingerprint: {kr.fingerprint(public)}\n"
        "Give the public key (age1...) to an admin, who adds it with "
        "`intake keys add age1... --id ID --label LABEL`; "
        "compare the fingerprint with them out of band."
    )


@keys.command("new-admin")
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write the passphrase-protected signing key.",
)
@passphrase_file_option
@admins_option
@click.option("--label", default="", help="A role name shown next to the key (it is public).")
def new_admin(out: Path, passphrase_file: Path | None, admins: Path, label: str) -> None:
    """Create an admin signing key and register its public key in the admins file."""
    if out.exists():
        raise IntakeError(
            f"{out} already exists; a key file is never overwritten, choose another name."
        )
    if admins.exists():
        kr.load_admins(admins)  # a broken admins file fails before any key is made
    label = _clean_label(label) if label else out.stem
    passphrase = passphrase_source(passphrase_file, what=str(out), new=True)()
    _warn_weak(passphrase)
    admin = identities.write_admin_key(out, passphrase)
    try:
        registered = kr.register_admin(admins, admin.id, admin.public_key_b64, label)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    click.echo(admin.public_key_b64)
    info(
        f"Wrote the admin signing key {admin.id} to {out} and registered it in {admins} "
        f"({len(registered.admins)} admin(s), {registered.threshold} signature(s) required)."
    )


@keys.command("add")
@click.argument("recipient")
@click.option(
    "--id", "recipient_id", required=True, help="A short name for the key, e.g. r-amal-2026."
)
@click.option(
    "--label", required=True, help="A role name shown to sources (public; not a person's name)."
)
@keyring_option
@valid_days_option
def add(recipient: str, recipient_id: str, label: str, keyring: Path, valid_days: int) -> None:
    """Add a reviewer's public key; the new version must then be signed."""
    document = _load_document(keyring)
    revised = kr.add_recipient(
        document,
        recipient,
        recipient_id=recipient_id,
        label=_clean_label(label),
        valid_days=valid_days,
    )
    kr.save_keyring(keyring, revised)
    info(f"Added {recipient_id} (fingerprint {kr.fingerprint(recipient.strip())}).")
    _describe(revised)
    info("The keyring is unsigned now: admins must run `intake keys sign`.")


@keys.command("retire")
@click.argument("recipient_id", metavar="ID")
@keyring_option
@valid_days_option
def retire(recipient_id: str, keyring: Path, valid_days: int) -> None:
    """Stop encrypting new reports to a key (it stays listed); the new version must be signed."""
    revised = kr.retire_recipient(
        kr.load_keyring(keyring).document, recipient_id, valid_days=valid_days
    )
    if not revised.active_recipients():
        raise IntakeError(
            f"Retiring {recipient_id} would leave no active recipient and close the intake; "
            "add the new reviewer's key first."
        )
    kr.save_keyring(keyring, revised)
    info(f"Retired {recipient_id}; it receives no new reports.")
    _describe(revised)
    info("The keyring is unsigned now: admins must run `intake keys sign`.")


@keys.command("renew")
@keyring_option
@valid_days_option
def renew(keyring: Path, valid_days: int) -> None:
    """Extend the keyring's validity with the same recipients; it must then be signed."""
    revised = kr.renew_keyring(kr.load_keyring(keyring).document, valid_days=valid_days)
    kr.save_keyring(keyring, revised)
    _describe(revised)
    info("The keyring is unsigned now: admins must run `intake keys sign`.")


@keys.command("sign")
@click.option(
    "--admin-key",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Your admin signing key.",
)
@passphrase_file_option
@keyring_option
@admins_option
def sign(admin_key: Path, passphrase_file: Path | None, keyring: Path, admins: Path) -> None:
    """Sign the keyring with an admin key, after showing what is being signed."""
    current = kr.load_keyring(keyring)
    registry = kr.load_admins(admins)
    _describe(current)
    for r in current.recipients:
        info(f"  {r.status:8} {r.id:20} {kr.fingerprint(r.recipient)}  {r.label}")
    admin = identities.load_admin_key(
        admin_key, passphrase_source(passphrase_file, what=str(admin_key))
    )
    if admin.id not in registry.admins:
        raise IntakeError(
            f"The admin key {admin.id} is not listed in {admins}; its signature would not count."
        )
    assert admin.private_key is not None
    signed = kr.sign_keyring(current, admin.id, admin.private_key)
    kr.save_keyring(keyring, signed)
    valid = len({s["admin"] for s in signed.signatures if s["admin"] in registry.admins})
    info(f"Signed by {admin.id}: {valid} of {registry.threshold} required signature(s).")


@keys.command("verify")
@keyring_option
@admins_option
@click.option(
    "--min-version",
    type=click.IntRange(0),
    default=0,
    help="The highest version accepted before; an older keyring is refused as a rollback.",
)
def verify(keyring: Path, admins: Path, min_version: int) -> None:
    """Exit 0 only for a keyring the server would accept; print its active recipients."""
    checked = kr.verify_keyring(
        kr.load_keyring(keyring), kr.load_admins(admins), min_version=min_version
    )
    click.echo(
        f"OK: keyring version {checked.version}, expires {kr.format_time(checked.expires_at)}, "
        f"{len(checked.active_recipients())} active recipient(s)."
    )
    for r in checked.recipients:
        if r.status == "active":
            click.echo(f"{r.id}\t{r.recipient}\t{kr.fingerprint(r.recipient)}\t{r.label}")


@keys.command("list")
@keyring_option
def list_keys(keyring: Path) -> None:
    """Show every recipient: id, label, status and a fingerprint to compare aloud."""
    current = kr.load_keyring(keyring)
    click.echo(
        f"Keyring version {current.version}, expires {kr.format_time(current.expires_at)}, "
        f"{len(current.signatures)} signature(s)."
    )
    rows = [("ID", "STATUS", "FINGERPRINT", "LABEL")]
    rows += [(r.id, r.status, kr.fingerprint(r.recipient), r.label) for r in current.recipients]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        click.echo(
            "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3]
        )


@keys.command("remove-admin")
@click.argument("admin_id")
@admins_option
def remove_admin(admin_id: str, admins: Path) -> None:
    """Take an admin off the admins file (an admin leaves or lost their key).

    Their signatures stop counting at once: make a new keyring version, have
    the remaining admins sign it, and deploy both files together.
    """
    updated = kr.remove_admin(admins, admin_id)
    info(
        f"{admins}: admin {admin_id} removed; {updated.threshold} of {len(updated.admins)} "
        "admins must sign each keyring. Now `intake keys renew`, sign, verify and deploy "
        "the keyring and this file together."
    )


@keys.command("threshold")
@click.argument("count", type=click.IntRange(1))
@admins_option
def threshold(count: int, admins: Path) -> None:
    """Require COUNT distinct admin signatures on every keyring from now on."""
    updated = kr.set_threshold(admins, count)
    info(f"{admins}: {updated.threshold} of {len(updated.admins)} admins must sign each keyring.")
