"""`intake keys`: reviewer identities, admin keys and the signed keyring.

Everything these commands print that came from a keyring or an admins file
(ids, labels) goes through `terminal_safe`, although the keyring's own parser
already refuses labels with control or invisible characters: the display must
not depend on the file having been checked. `sign` shows what is being signed
(the version, the dates, the count of active recipients and each one's
fingerprint) and, on a terminal, asks before signing.

New key files need a passphrase at least as strong as six random diceware
words (`intake.crypto.passphrase`); on a terminal a generated one is offered
first. Private key files are written only into a folder that exists (a
missing folder may be an unmounted encrypted stick); the public files in
``keys/`` get their folder made when a command is the first to need it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from intake.cli.common import (
    admins_option,
    generate_passphrase_option,
    info,
    keyring_option,
    new_passphrase,
    passphrase_file_option,
    passphrase_source,
)
from intake.cli.terminal import terminal_safe
from intake.crypto import identity as identities
from intake.crypto import keyring as kr
from intake.errors import IntakeError


def _clean_label(label: str) -> str:
    """A label typed by an admin, without surrounding spaces; refused if it could hide text."""
    label = label.strip()
    problem = kr.label_problem(label)
    if problem:
        raise IntakeError(
            f"The label {terminal_safe(problem)}; give a short role name of visible characters."
        )
    return label


def _folder_of(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def _check_secret_folder(out: Path) -> None:
    """A private key is written only into a folder that exists: never guess where it goes."""
    if out.exists():
        raise IntakeError(
            f"{out} already exists; a key file is never overwritten, choose another name."
        )
    folder = _folder_of(out)
    if not folder.is_dir():
        raise IntakeError(
            f"The folder {folder} for --out does not exist (is the encrypted stick mounted?); "
            "create it, or give --out a path in an existing folder."
        )


def _public_folder_to_make(path: Path, option: str) -> Path | None:
    """The missing folder for a public keys file, if it may be made; refuse a deeper gap."""
    folder = _folder_of(path)
    if folder.is_dir():
        return None
    if folder.exists():
        raise IntakeError(f"{folder} is not a folder; give {option} a path in a folder.")
    if not _folder_of(folder).is_dir():
        raise IntakeError(
            f"The folder {folder} for {option} does not exist, nor does {_folder_of(folder)}; "
            f"run the command in the deployment's folder, or give {option} its path."
        )
    return folder


def _make_public_folder(folder: Path | None) -> None:
    if folder is not None:
        folder.mkdir(mode=0o755)
        info(f"Created the folder {folder} for the deployment's public keys.")


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


def _recipient_rows(recipients: list[kr.Recipient]) -> list[str]:
    """One aligned line per recipient: status, id, fingerprint, label (terminal-safe)."""
    cells = [
        (r.status, terminal_safe(r.id), kr.fingerprint(r.recipient), terminal_safe(r.label))
        for r in recipients
    ]
    width = max((len(c[1]) for c in cells), default=0)
    return [f"  {status:8} {rid:{width}}  {fp}  {label}" for status, rid, fp, label in cells]


def _show_for_signing(keyring: kr.Keyring, registry: kr.Admins) -> None:
    """Everything an admin must compare before signing, the count of active keys first."""
    active = [r for r in keyring.recipients if r.status == "active"]
    retired = [r for r in keyring.recipients if r.status != "active"]
    _describe(keyring)
    info(
        f"{len(active)} active recipient(s): every new report is encrypted to these keys, "
        "and only to these."
    )
    for line in _recipient_rows(active):
        info(line)
    if retired:
        info(f"{len(retired)} retired recipient(s), marked retired: they receive nothing new.")
        for line in _recipient_rows(retired):
            info(line)
    signers = [registry.admins[a] for a in kr.valid_signers(keyring, registry)]
    names = ", ".join(f"{a.id} ({terminal_safe(a.label)})" for a in signers) or "nobody yet"
    info(f"Signed so far by: {names}; {registry.threshold} signature(s) required.")
    info(
        "Compare the count and each fingerprint with the reviewers and the other admins "
        "before you sign."
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
    help="Where to write the passphrase-protected identity (in an existing folder).",
)
@passphrase_file_option
@generate_passphrase_option
def new_identity(out: Path, passphrase_file: Path | None, generate_passphrase: bool) -> None:
    """Create a reviewer identity (run this on the air-gapped machine); print its public key."""
    _check_secret_folder(out)
    passphrase = new_passphrase(
        passphrase_file, what=str(out), generate=generate_passphrase, context=(out.stem,)
    )
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
    help="Where to write the passphrase-protected signing key (in an existing folder).",
)
@passphrase_file_option
@generate_passphrase_option
@admins_option
@click.option(
    "--label", default="", help="A role name shown next to the key (it is public); default: "
    "the key file's name."
)
def new_admin(
    out: Path, passphrase_file: Path | None, generate_passphrase: bool, admins: Path, label: str
) -> None:
    """Create an admin signing key and register its public key in the admins file."""
    _check_secret_folder(out)
    if admins.exists():
        kr.load_admins(admins)  # a broken admins file fails before any key is made
    folder = _public_folder_to_make(admins, "--admins")
    if label:
        label = _clean_label(label)
    elif kr.label_problem(out.stem):
        raise IntakeError("The key file's name cannot serve as its label; give --label.")
    else:
        label = out.stem
    passphrase = new_passphrase(
        passphrase_file, what=str(out), generate=generate_passphrase, context=(out.stem, label)
    )
    _make_public_folder(folder)
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
    _make_public_folder(_public_folder_to_make(keyring, "--keyring"))
    kr.save_keyring(keyring, revised)
    info(
        f"Added {terminal_safe(recipient_id)} "
        f"(fingerprint {kr.fingerprint(recipient.strip())})."
    )
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
            f"Retiring {terminal_safe(recipient_id)} would leave no active recipient and "
            "close the intake; add the new reviewer's key first."
        )
    kr.save_keyring(keyring, revised)
    info(f"Retired {terminal_safe(recipient_id)}; it receives no new reports.")
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
@click.option(
    "--yes",
    is_flag=True,
    help="Sign without asking, even on a terminal (the list is still shown).",
)
def sign(
    admin_key: Path, passphrase_file: Path | None, keyring: Path, admins: Path, yes: bool
) -> None:
    """Sign the keyring with an admin key, after showing what is being signed.

    Shows the version, the dates, the number of active recipients and each
    one's id, fingerprint and label. On a terminal it then asks before signing
    (unless --yes); without a terminal (a script, with --passphrase-file) it
    signs after showing.
    """
    current = kr.load_keyring(keyring)
    registry = kr.load_admins(admins)
    kr.check_signable(current)
    _show_for_signing(current, registry)
    if sys.stdin.isatty() and not yes and not click.confirm(
        "Sign this keyring?", default=False, err=True
    ):
        raise IntakeError("Nothing was signed: the keyring is unchanged.")
    admin = identities.load_admin_key(
        admin_key, passphrase_source(passphrase_file, what=str(admin_key))
    )
    if admin.id not in registry.admins:
        raise IntakeError(
            f"The admin key {admin.id} is not listed in {admins}; its signature would not count."
        )
    if admin.private_key is None:  # load_admin_key always returns one; keep the type exact
        raise IntakeError(f"{admin_key} holds no private key.")
    signed = kr.sign_keyring(current, admin.id, admin.private_key)
    kr.save_keyring(keyring, signed)
    valid = len(kr.valid_signers(signed, registry))
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
            click.echo(
                "\t".join(
                    [
                        terminal_safe(r.id),
                        terminal_safe(r.recipient),
                        kr.fingerprint(r.recipient),
                        terminal_safe(r.label),
                    ]
                )
            )


@keys.command("list")
@keyring_option
def list_keys(keyring: Path) -> None:
    """Show every recipient: id, label, status and a fingerprint to compare aloud."""
    current = kr.load_keyring(keyring)
    active = len(current.active_recipients())
    click.echo(
        f"Keyring version {current.version}, expires {kr.format_time(current.expires_at)}, "
        f"{active} active recipient(s), {len(current.signatures)} signature(s)."
    )
    rows = [("ID", "STATUS", "FINGERPRINT", "LABEL")]
    rows += [
        (terminal_safe(r.id), r.status, kr.fingerprint(r.recipient), terminal_safe(r.label))
        for r in current.recipients
    ]
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
        f"{admins}: admin {terminal_safe(admin_id)} removed; "
        f"{updated.threshold} of {len(updated.admins)} admins must sign each keyring. "
        "Now `intake keys renew`, sign, verify and deploy the keyring and this file together."
    )


@keys.command("threshold")
@click.argument("count", type=click.IntRange(1))
@admins_option
def threshold(count: int, admins: Path) -> None:
    """Require COUNT distinct admin signatures on every keyring from now on."""
    updated = kr.set_threshold(admins, count)
    info(f"{admins}: {updated.threshold} of {len(updated.admins)} admins must sign each keyring.")
