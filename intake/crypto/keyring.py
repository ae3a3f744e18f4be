"""The signed keyring: which reviewer keys receive new reports.

``keys/keyring.json`` lists the reviewers' age recipients; ``keys/admins.json``
pins the admins' Ed25519 public keys and a threshold M. A keyring is trusted
only if `verify_keyring` accepts it:

- it is well formed (``intake-keyring/v1``, unique ids and keys, at least one
  active recipient, at most `MAX_RECIPIENTS`);
- it carries valid signatures by at least M distinct admins of admins.json over
  its canonical JSON (the document without ``signatures``, sorted keys, no
  insignificant white space, UTF-8); a signature by a known admin that does not
  verify, or two by the same admin, refuses it outright;
- it has not expired (and was not issued in the future);
- its version is not below the highest version the caller has accepted before
  (rollback protection: the caller supplies that number and keeps it).

Every change (add, retire, renew) bumps ``version``, refreshes ``issued_at``
and drops all signatures, so that admins must sign again. Retired recipients
stay listed, so reviewers can tell which key opened an old report, but
`Keyring.active_recipients` leaves them out: they receive nothing new.
The admins file is the trust anchor: it is deployed with the server, not
verified by it (see SECURITY.md).
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from intake.crypto.envelope import parse_recipient
from intake.errors import IntakeError, KeyringError
from intake.fsutil import atomic_write
from intake.limits import MAX_RECIPIENTS

KEYRING_FORMAT = "intake-keyring/v1"
ADMINS_FORMAT = "intake-admins/v1"
DEFAULT_VALID_DAYS = 180
#: Tolerated clock difference between the admin who signed and the server.
CLOCK_SKEW = timedelta(days=1)
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise KeyringError(f"The keyring's {what} is missing.")
    try:
        moment = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        raise KeyringError(
            f"The keyring's {what} is not a UTC time like 2026-11-28T00:00:00Z."
        ) from None
    return moment.replace(tzinfo=UTC)


def canonical_json(document: dict[str, Any]) -> bytes:
    """Sorted keys, no insignificant white space, UTF-8."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def fingerprint(recipient: str) -> str:
    """A short fingerprint of a public key to compare aloud: four groups of five digits.

    66 bits of SHA-256 of the key text; digits read the same in every
    language the intake serves.
    """
    digest = hashlib.sha256(recipient.strip().encode("ascii")).digest()
    number = int.from_bytes(digest[:9], "big") % 10**20
    text = f"{number:020d}"
    return " ".join(text[i : i + 5] for i in range(0, 20, 5))


def admin_id_for(public_key: bytes) -> str:
    """The id under which an admin's Ed25519 key signs: derived from the key itself."""
    return "admin-" + hashlib.sha256(public_key).hexdigest()[:16]


@dataclass(frozen=True)
class Recipient:
    id: str
    recipient: str
    label: str
    status: str
    added_at: str


@dataclass(frozen=True)
class Admin:
    id: str
    public_key: Ed25519PublicKey
    label: str


@dataclass(frozen=True)
class Admins:
    threshold: int
    admins: dict[str, Admin]


class Keyring:
    """A parsed keyring document; `verify_keyring` says whether to trust it."""

    def __init__(self, document: dict[str, Any]):
        self.document = document
        if document.get("format") != KEYRING_FORMAT:
            raise KeyringError(f"This is not an intake keyring (format must be {KEYRING_FORMAT}).")
        version = document.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise KeyringError("The keyring's version must be a whole number of at least 1.")
        self.version: int = version
        self.issued_at = parse_time(document.get("issued_at"), "issue time")
        self.expires_at = parse_time(document.get("expires_at"), "expiry time")
        if self.expires_at <= self.issued_at:
            raise KeyringError("The keyring expires before it was issued.")
        self.recipients = self._parse_recipients(document.get("recipients"))
        signatures = document.get("signatures", [])
        if not isinstance(signatures, list) or not all(
            isinstance(s, dict)
            and isinstance(s.get("admin"), str)
            and isinstance(s.get("sig"), str)
            for s in signatures
        ):
            raise KeyringError("The keyring's signatures are malformed.")
        self.signatures: list[dict[str, str]] = signatures

    @staticmethod
    def _parse_recipients(entries: Any) -> list[Recipient]:
        if not isinstance(entries, list):
            raise KeyringError("The keyring has no recipient list.")
        parsed: list[Recipient] = []
        for entry in entries:
            if not isinstance(entry, dict):
                raise KeyringError("The keyring has a malformed recipient entry.")
            fields = {k: entry.get(k) for k in ("id", "recipient", "label", "status", "added_at")}
            if not all(isinstance(v, str) for v in fields.values()):
                raise KeyringError("A keyring recipient lacks its id, key, label, status or date.")
            if not _ID.fullmatch(fields["id"]):
                raise KeyringError(f"The recipient id {fields['id'][:40]!r} is not a simple name.")
            if fields["status"] not in ("active", "retired"):
                raise KeyringError(f"Recipient {fields['id']} has an unknown status.")
            try:
                parse_recipient(fields["recipient"])
            except IntakeError:
                raise KeyringError(
                    f"Recipient {fields['id']} does not have a valid age public key."
                ) from None
            parsed.append(Recipient(**fields))
        if len({r.id for r in parsed}) != len(parsed):
            raise KeyringError("Two keyring recipients share an id.")
        if len({r.recipient for r in parsed}) != len(parsed):
            raise KeyringError("The same public key is listed twice in the keyring.")
        return parsed

    def active_recipients(self) -> list[str]:
        """The age recipients new reports are encrypted to (retired ones left out)."""
        return [r.recipient for r in self.recipients if r.status == "active"]

    def signed_bytes(self) -> bytes:
        body = {k: v for k, v in self.document.items() if k != "signatures"}
        return canonical_json(body)

    def to_json(self) -> bytes:
        """The file's text: the document with its usual key order, for people to read."""
        order = ["format", "version", "issued_at", "expires_at", "recipients", "signatures"]
        ordered = {k: self.document[k] for k in order if k in self.document}
        ordered.update({k: v for k, v in self.document.items() if k not in ordered})
        return (json.dumps(ordered, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def parse_keyring(data: bytes) -> Keyring:
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise KeyringError("The keyring is not valid JSON; it may be damaged or altered.") from None
    if not isinstance(document, dict):
        raise KeyringError("The keyring is not a JSON object.")
    return Keyring(document)


def load_keyring(path: Path) -> Keyring:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise KeyringError(
            f"There is no keyring at {path}; create one with `intake keys add`."
        ) from None
    except OSError as exc:
        raise KeyringError(f"The keyring {path} cannot be read ({exc.strerror}).") from None
    return parse_keyring(data)


def save_keyring(path: Path, keyring: Keyring) -> None:
    atomic_write(Path(path), keyring.to_json(), mode=0o644)


def parse_admins(data: bytes) -> Admins:
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise KeyringError("The admins file is not valid JSON.") from None
    if not isinstance(document, dict) or document.get("format") != ADMINS_FORMAT:
        raise KeyringError(f"This is not an intake admins file (format must be {ADMINS_FORMAT}).")
    entries = document.get("admins")
    threshold = document.get("threshold")
    if not isinstance(entries, list) or not entries:
        raise KeyringError(
            "The admins file lists no admin; create one with `intake keys new-admin`."
        )
    admins: dict[str, Admin] = {}
    for entry in entries:
        try:
            raw = base64.b64decode(entry["public_key"], validate=True)
            key = Ed25519PublicKey.from_public_bytes(raw)
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise KeyringError(
                "The admins file has an entry without a valid Ed25519 public key."
            ) from None
        admin_id = admin_id_for(raw)
        if entry.get("id") != admin_id:
            raise KeyringError(
                f"The admins file's id {str(entry.get('id'))[:40]!r} does not match its key."
            )
        if admin_id in admins:
            raise KeyringError("The admins file lists the same admin twice.")
        admins[admin_id] = Admin(id=admin_id, public_key=key, label=str(entry.get("label", "")))
    if (
        not isinstance(threshold, int)
        or isinstance(threshold, bool)
        or not 1 <= threshold <= len(admins)
    ):
        raise KeyringError(f"The admins file's threshold must be between 1 and {len(admins)}.")
    return Admins(threshold=threshold, admins=admins)


def load_admins(path: Path) -> Admins:
    try:
        return parse_admins(Path(path).read_bytes())
    except FileNotFoundError:
        raise KeyringError(
            f"There is no admins file at {path}; create it with `intake keys new-admin`."
        ) from None


def verify_keyring(
    keyring: Keyring,
    admins: Admins,
    *,
    min_version: int = 0,
    now: datetime | None = None,
) -> Keyring:
    """Return `keyring` if a server may encrypt to it; raise `KeyringError` saying why not."""
    now = now or utc_now()
    active = keyring.active_recipients()
    if not active:
        raise KeyringError("The keyring has no active recipient; add a reviewer's key first.")
    if len(active) > MAX_RECIPIENTS:
        raise KeyringError(f"The keyring has more than {MAX_RECIPIENTS} active recipients.")
    message = keyring.signed_bytes()
    seen: set[str] = set()
    for signature in keyring.signatures:
        admin = admins.admins.get(signature["admin"])
        if admin is None:
            continue  # an admin who has left; their signature no longer counts
        if admin.id in seen:
            raise KeyringError(
                f"The keyring carries two signatures by admin {admin.id}; each admin may sign once."
            )
        seen.add(admin.id)
        try:
            admin.public_key.verify(base64.b64decode(signature["sig"], validate=True), message)
        except (InvalidSignature, ValueError, binascii.Error):
            raise KeyringError(
                f"The signature by admin {admin.id} does not match the keyring's content: "
                "the keyring was changed after it was signed. Do not use it."
            ) from None
    if len(seen) < admins.threshold:
        raise KeyringError(
            f"The keyring has {len(seen)} valid admin signature(s) but needs {admins.threshold}; "
            "ask another admin to run `intake keys sign`."
        )
    if now >= keyring.expires_at:
        raise KeyringError(
            f"The keyring expired on {format_time(keyring.expires_at)}; "
            "an admin must renew and sign it."
        )
    if keyring.issued_at > now + CLOCK_SKEW:
        raise KeyringError("The keyring was issued in the future; check clocks, then sign again.")
    if keyring.version < min_version:
        raise KeyringError(
            f"The keyring's version {keyring.version} is older than version {min_version}, "
            "which was already accepted: this looks like a rollback. "
            "Install the newest signed keyring."
        )
    return keyring


def empty_keyring_document() -> dict[str, Any]:
    return {"format": KEYRING_FORMAT, "version": 0, "recipients": [], "signatures": []}


def _revised(document: dict[str, Any], now: datetime | None, valid_days: int) -> Keyring:
    """Bump the version, refresh the dates and drop every signature."""
    if not 1 <= valid_days <= 3660:
        raise KeyringError("A keyring may be valid for 1 to 3660 days.")
    now = now or utc_now()
    document = copy.deepcopy(document)
    document["version"] = int(document.get("version", 0)) + 1
    document["issued_at"] = format_time(now)
    document["expires_at"] = format_time(now + timedelta(days=valid_days))
    document["signatures"] = []
    return Keyring(document)


def add_recipient(
    document: dict[str, Any],
    recipient: str,
    *,
    recipient_id: str,
    label: str,
    now: datetime | None = None,
    valid_days: int = DEFAULT_VALID_DAYS,
) -> Keyring:
    """A new, unsigned revision of `document` with one more active recipient."""
    if not _ID.fullmatch(recipient_id):
        raise KeyringError(
            "The id must be a simple name of letters, digits, dots, dashes or underscores."
        )
    recipient = recipient.strip()
    parse_recipient(recipient)
    entries = document.get("recipients", [])
    if any(e.get("id") == recipient_id for e in entries):
        raise KeyringError(
            f"The keyring already has a recipient with id {recipient_id}; choose another id."
        )
    if any(e.get("recipient") == recipient for e in entries):
        raise KeyringError("That public key is already in the keyring.")
    if sum(1 for e in entries if e.get("status") == "active") >= MAX_RECIPIENTS:
        raise KeyringError(f"The keyring already has {MAX_RECIPIENTS} active recipients.")
    document = copy.deepcopy(document)
    document.setdefault("recipients", []).append(
        {
            "id": recipient_id,
            "recipient": recipient,
            "label": label,
            "status": "active",
            "added_at": format_time(now or utc_now()),
        }
    )
    return _revised(document, now, valid_days)


def retire_recipient(
    document: dict[str, Any],
    recipient_id: str,
    *,
    now: datetime | None = None,
    valid_days: int = DEFAULT_VALID_DAYS,
) -> Keyring:
    """A new, unsigned revision in which `recipient_id` receives nothing new."""
    document = copy.deepcopy(document)
    for entry in document.get("recipients", []):
        if entry.get("id") == recipient_id:
            if entry.get("status") == "retired":
                raise KeyringError(f"Recipient {recipient_id} is already retired.")
            entry["status"] = "retired"
            entry["retired_at"] = format_time(now or utc_now())
            return _revised(document, now, valid_days)
    raise KeyringError(
        f"The keyring has no recipient with id {recipient_id}; `intake keys list` shows them."
    )


def renew_keyring(
    document: dict[str, Any], *, now: datetime | None = None, valid_days: int = DEFAULT_VALID_DAYS
) -> Keyring:
    """A new, unsigned revision with the same recipients and a later expiry."""
    return _revised(document, now, valid_days)


def sign_keyring(keyring: Keyring, admin_id: str, private_key: Ed25519PrivateKey) -> Keyring:
    """`keyring` with one more signature, by `admin_id`."""
    if any(s["admin"] == admin_id for s in keyring.signatures):
        raise KeyringError(f"Admin {admin_id} has already signed this keyring version.")
    signature = base64.b64encode(private_key.sign(keyring.signed_bytes())).decode("ascii")
    document = copy.deepcopy(keyring.document)
    document.setdefault("signatures", []).append({"admin": admin_id, "sig": signature})
    return Keyring(document)


def register_admin(
    path: Path, admin_id: str, public_key_b64: str, label: str, now: datetime | None = None
) -> Admins:
    """Add an admin's public key to the admins file (created with threshold 1)."""
    path = Path(path)
    if path.exists():
        parse_admins(path.read_bytes())  # refuse to extend a broken file
        document = json.loads(path.read_bytes())
    else:
        document = {"format": ADMINS_FORMAT, "threshold": 1, "admins": []}
    if any(a.get("id") == admin_id for a in document["admins"]):
        raise KeyringError(f"Admin {admin_id} is already listed in {path}.")
    document["admins"].append(
        {
            "id": admin_id,
            "public_key": public_key_b64,
            "label": label,
            "added_at": format_time(now or utc_now()),
        }
    )
    data = (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    admins = parse_admins(data)
    atomic_write(path, data, mode=0o644)
    return admins


def remove_admin(path: Path, admin_id: str) -> Admins:
    """Take an admin off the admins file: their signatures stop counting at once.

    Refused if it would leave fewer admins than the threshold (lower it first)
    or none at all, so the file never becomes one no keyring can satisfy.
    """
    path = Path(path)
    current = load_admins(path)
    if admin_id not in current.admins:
        known = ", ".join(f"{a.id} ({a.label})" for a in current.admins.values())
        raise KeyringError(f"Admin {admin_id} is not listed in {path}; the admins are: {known}.")
    remaining = len(current.admins) - 1
    if remaining == 0:
        raise KeyringError(
            f"Admin {admin_id} is the only admin; register another with "
            "`intake keys new-admin` first."
        )
    if remaining < current.threshold:
        raise KeyringError(
            f"Removing admin {admin_id} would leave {remaining} admin(s) for a threshold of "
            f"{current.threshold}; lower it first with `intake keys threshold {remaining}`."
        )
    document = json.loads(path.read_bytes())
    document["admins"] = [a for a in document["admins"] if a.get("id") != admin_id]
    data = (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    admins = parse_admins(data)
    atomic_write(path, data, mode=0o644)
    return admins


def set_threshold(path: Path, threshold: int) -> Admins:
    """Require `threshold` distinct admin signatures from now on."""
    path = Path(path)
    load_admins(path)
    document = json.loads(path.read_bytes())
    document["threshold"] = threshold
    data = (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    admins = parse_admins(data)
    atomic_write(path, data, mode=0o644)
    return admins
