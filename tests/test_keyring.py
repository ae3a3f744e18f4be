"""The signed keyring: what the server trusts, and each way it refuses."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from intake.crypto import keyring as kr
from intake.errors import KeyringError

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


class Admin:
    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        raw = self.key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.public_b64 = base64.b64encode(raw).decode()
        self.id = kr.admin_id_for(raw)

    def sign(self, keyring: kr.Keyring) -> kr.Keyring:
        return kr.sign_keyring(keyring, self.id, self.key)


def admins_file(admins: list[Admin], threshold: int) -> kr.Admins:
    document = {
        "format": kr.ADMINS_FORMAT,
        "threshold": threshold,
        "admins": [{"id": a.id, "public_key": a.public_b64, "label": "x"} for a in admins],
    }
    return kr.parse_admins(json.dumps(document).encode())


@pytest.fixture
def admins() -> list[Admin]:
    return [Admin() for _ in range(3)]


@pytest.fixture
def recipients(reviewer_keys) -> list[str]:
    return [str(k.to_public()) for k in reviewer_keys]


def two_recipient_keyring(recipients: list[str], now: datetime = NOW) -> kr.Keyring:
    first = kr.add_recipient(
        kr.empty_keyring_document(), recipients[0], recipient_id="r-a", label="Reviewer A", now=now
    )
    return kr.add_recipient(
        first.document, recipients[1], recipient_id="r-b", label="Reviewer B", now=now
    )


def test_a_keyring_signed_by_the_threshold_is_accepted(admins, recipients):
    keyring = admins[1].sign(admins[0].sign(two_recipient_keyring(recipients)))
    accepted = kr.verify_keyring(keyring, admins_file(admins, 2), now=NOW)
    assert accepted.active_recipients() == recipients[:2]
    assert accepted.version == 2


def test_the_file_round_trips_and_still_verifies(tmp_path, admins, recipients):
    keyring = admins[0].sign(two_recipient_keyring(recipients))
    kr.save_keyring(tmp_path / "keyring.json", keyring)
    loaded = kr.load_keyring(tmp_path / "keyring.json")
    kr.verify_keyring(loaded, admins_file(admins, 1), now=NOW)
    assert loaded.signed_bytes() == keyring.signed_bytes()


def test_signatures_cover_the_canonical_json_without_signatures(admins, recipients):
    keyring = admins[0].sign(two_recipient_keyring(recipients))
    body = {k: v for k, v in keyring.document.items() if k != "signatures"}
    expected = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    signature = base64.b64decode(keyring.signatures[0]["sig"])
    admins[0].key.public_key().verify(signature, expected)  # raises if not


@pytest.mark.parametrize("field", ["version", "recipient", "label", "status", "expires_at"])
def test_a_change_after_signing_is_refused_as_tampering(admins, recipients, field):
    keyring = admins[0].sign(two_recipient_keyring(recipients))
    document = json.loads(keyring.to_json())
    if field == "version":
        document["version"] += 1
    elif field == "expires_at":
        document["expires_at"] = "2099-01-01T00:00:00Z"
    elif field == "recipient":
        document["recipients"][0]["recipient"] = recipients[2]
    else:
        document["recipients"][0][field] = "retired" if field == "status" else "Someone else"
    with pytest.raises(KeyringError, match="changed after it was signed"):
        kr.verify_keyring(kr.Keyring(document), admins_file(admins, 1), now=NOW)


def test_every_single_byte_flip_is_refused(admins, recipients):
    """Flip each byte of the file in turn: no variant may verify."""
    data = bytearray(admins[0].sign(two_recipient_keyring(recipients)).to_json())
    registry = admins_file(admins, 1)
    for i in range(0, len(data)):
        mutated = bytearray(data)
        mutated[i] ^= 0x01
        try:
            candidate = kr.parse_keyring(bytes(mutated))
            kr.verify_keyring(candidate, registry, now=NOW)
        except KeyringError:
            continue
        # Some flips only change insignificant white space or JSON escapes that decode
        # to the same document; those are the same keyring, not a forgery.
        assert candidate.signed_bytes() == kr.parse_keyring(bytes(data)).signed_bytes(), i


def test_too_few_signatures_are_refused(admins, recipients):
    keyring = admins[0].sign(two_recipient_keyring(recipients))
    with pytest.raises(KeyringError, match="1 valid admin signature.* needs 2"):
        kr.verify_keyring(keyring, admins_file(admins, 2), now=NOW)


def test_an_unsigned_keyring_is_refused(admins, recipients):
    with pytest.raises(KeyringError, match="0 valid admin signature"):
        kr.verify_keyring(two_recipient_keyring(recipients), admins_file(admins, 1), now=NOW)


def test_the_same_admin_signing_twice_is_refused(admins, recipients):
    keyring = admins[0].sign(two_recipient_keyring(recipients))
    with pytest.raises(KeyringError, match="already signed"):
        admins[0].sign(keyring)
    document = json.loads(keyring.to_json())
    document["signatures"].append(dict(document["signatures"][0]))
    with pytest.raises(KeyringError, match="two signatures by admin"):
        kr.verify_keyring(kr.Keyring(document), admins_file(admins, 2), now=NOW)


def test_a_signature_by_an_unknown_admin_does_not_count(admins, recipients):
    outsider = Admin()
    keyring = outsider.sign(admins[0].sign(two_recipient_keyring(recipients)))
    kr.verify_keyring(keyring, admins_file(admins, 1), now=NOW)
    with pytest.raises(KeyringError, match="1 valid admin signature"):
        kr.verify_keyring(keyring, admins_file(admins, 2), now=NOW)


def test_an_expired_keyring_is_refused(admins, recipients):
    keyring = admins[0].sign(two_recipient_keyring(recipients, now=NOW - timedelta(days=200)))
    with pytest.raises(KeyringError, match="expired on"):
        kr.verify_keyring(keyring, admins_file(admins, 1), now=NOW)


def test_a_keyring_from_the_future_is_refused(admins, recipients):
    keyring = admins[0].sign(two_recipient_keyring(recipients, now=NOW + timedelta(days=3)))
    with pytest.raises(KeyringError, match="issued in the future"):
        kr.verify_keyring(keyring, admins_file(admins, 1), now=NOW)


def test_a_rolled_back_version_is_refused_and_the_same_version_accepted(admins, recipients):
    keyring = admins[0].sign(two_recipient_keyring(recipients))
    registry = admins_file(admins, 1)
    kr.verify_keyring(keyring, registry, now=NOW, min_version=keyring.version)
    with pytest.raises(KeyringError, match="rollback"):
        kr.verify_keyring(keyring, registry, now=NOW, min_version=keyring.version + 1)


def test_each_refusal_has_its_own_message(admins, recipients):
    registry = admins_file(admins, 2)
    good = admins[1].sign(admins[0].sign(two_recipient_keyring(recipients)))
    tampered = json.loads(good.to_json())
    tampered["version"] = 99
    doubled = json.loads(admins[0].sign(two_recipient_keyring(recipients)).to_json())
    doubled["signatures"].append(dict(doubled["signatures"][0]))
    expired = admins[1].sign(
        admins[0].sign(two_recipient_keyring(recipients, NOW - timedelta(days=400)))
    )
    cases = {
        "tampered": (kr.Keyring(tampered), 0),
        "threshold": (admins[0].sign(two_recipient_keyring(recipients)), 0),
        "twice": (kr.Keyring(doubled), 0),
        "expired": (expired, 0),
        "rollback": (good, good.version + 1),
    }
    messages = {}
    for name, (keyring, floor) in cases.items():
        with pytest.raises(KeyringError) as info:
            kr.verify_keyring(keyring, registry, now=NOW, min_version=floor)
        messages[name] = str(info.value)
    assert len(set(messages.values())) == len(messages), messages


def test_every_change_bumps_the_version_and_drops_signatures(admins, recipients):
    signed = admins[0].sign(two_recipient_keyring(recipients))
    for revised in (
        kr.retire_recipient(signed.document, "r-a", now=NOW),
        kr.add_recipient(signed.document, recipients[2], recipient_id="r-c", label="C", now=NOW),
        kr.renew_keyring(signed.document, now=NOW + timedelta(days=1)),
    ):
        assert revised.version == signed.version + 1
        assert revised.signatures == []
        with pytest.raises(KeyringError, match="0 valid"):
            kr.verify_keyring(revised, admins_file(admins, 1), now=NOW + timedelta(days=1))


def test_retired_recipients_stay_listed_but_receive_nothing_new(admins, recipients):
    revised = admins[0].sign(
        kr.retire_recipient(two_recipient_keyring(recipients).document, "r-a", now=NOW)
    )
    accepted = kr.verify_keyring(revised, admins_file(admins, 1), now=NOW)
    assert [r.id for r in accepted.recipients] == ["r-a", "r-b"]
    assert accepted.active_recipients() == [recipients[1]]
    assert accepted.recipients[0].status == "retired"


def test_a_keyring_with_no_active_recipient_is_refused(admins, recipients):
    first = kr.add_recipient(
        kr.empty_keyring_document(), recipients[0], recipient_id="r-a", label="A", now=NOW
    )
    retired = admins[0].sign(kr.retire_recipient(first.document, "r-a", now=NOW))
    with pytest.raises(KeyringError, match="no active recipient"):
        kr.verify_keyring(retired, admins_file(admins, 1), now=NOW)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format="intake-keyring/v0"), "not an intake keyring"),
        (lambda d: d.update(version="7"), "whole number"),
        (lambda d: d.update(expires_at="tomorrow"), "UTC time"),
        (lambda d: d["recipients"][1].update(id="r-a"), "share an id"),
        (
            lambda d: d["recipients"][1].update(recipient=d["recipients"][0]["recipient"]),
            "listed twice",
        ),
        (lambda d: d["recipients"][0].update(recipient="age1notakey"), "valid age public key"),
        (lambda d: d["recipients"][0].update(status="paused"), "unknown status"),
        (lambda d: d.update(signatures="none"), "signatures are malformed"),
    ],
)
def test_malformed_keyrings_are_refused_with_a_reason(recipients, mutate, message):
    document = json.loads(two_recipient_keyring(recipients).to_json())
    mutate(document)
    with pytest.raises(KeyringError, match=message):
        kr.Keyring(document)


def test_adding_a_duplicate_id_or_key_is_refused(recipients):
    keyring = two_recipient_keyring(recipients)
    with pytest.raises(KeyringError, match="already has a recipient with id"):
        kr.add_recipient(keyring.document, recipients[2], recipient_id="r-a", label="x", now=NOW)
    with pytest.raises(KeyringError, match="already in the keyring"):
        kr.add_recipient(keyring.document, recipients[0], recipient_id="r-z", label="x", now=NOW)


def test_an_admins_file_whose_id_does_not_match_its_key_is_refused(admins):
    document = {
        "format": kr.ADMINS_FORMAT,
        "threshold": 1,
        "admins": [{"id": admins[0].id, "public_key": admins[1].public_b64, "label": "x"}],
    }
    with pytest.raises(KeyringError, match="does not match its key"):
        kr.parse_admins(json.dumps(document).encode())


@pytest.mark.parametrize("threshold", [0, 4, "2"])
def test_an_impossible_threshold_is_refused(admins, threshold):
    document = {
        "format": kr.ADMINS_FORMAT,
        "threshold": threshold,
        "admins": [{"id": a.id, "public_key": a.public_b64, "label": "x"} for a in admins],
    }
    with pytest.raises(KeyringError, match="threshold"):
        kr.parse_admins(json.dumps(document).encode())


def test_fingerprints_are_four_groups_of_five_digits_and_differ(recipients):
    prints = [kr.fingerprint(r) for r in recipients]
    for value in prints:
        groups = value.split(" ")
        assert len(groups) == 4 and all(len(g) == 5 and g.isascii() and g.isdigit() for g in groups)
    assert len(set(prints)) == len(prints)
    assert kr.fingerprint(recipients[0]) == kr.fingerprint(recipients[0] + "\n")


# -- hostile keyrings: ids and labels that could hide a key from the admins who sign ----------
# Each entry is an input and the outcome it must get. A keyring is signed by hand, as an
# insider holding an admin key could, so that only the label rule stands in the way.

HOSTILE_LABELS = [
    pytest.param("\x1b[2K\r", "U\\+001B", id="erase-line-and-return"),
    pytest.param("\u202e", "U\\+202E", id="bidi-override"),
    pytest.param("x" * 10_000, "longer than 80", id="ten-thousand-characters"),
    pytest.param("x" * 81, "longer than 80", id="eighty-one-characters"),
    pytest.param("", "blank", id="empty"),
    pytest.param("   ", "blank", id="spaces"),
    pytest.param("Reviewer\u200bA", "U\\+200B", id="zero-width-space"),
    pytest.param("\u3164", "U\\+3164", id="hangul-filler"),
    pytest.param("\u2800\u2800", "U\\+2800", id="braille-blank"),
    pytest.param("A\u2028B", "U\\+2028", id="line-separator"),
    pytest.param("A\x85B", "U\\+0085", id="c1-next-line"),
    pytest.param("\x9b2K", "U\\+009B", id="c1-csi"),
    pytest.param("\ue000", "U\\+E000", id="private-use"),
    pytest.param("\ufeffA", "U\\+FEFF", id="byte-order-mark"),
]


def hand_signed(document: dict, admin: Admin) -> bytes:
    body = {k: v for k, v in document.items() if k != "signatures"}
    signature = base64.b64encode(admin.key.sign(kr.canonical_json(body))).decode()
    return json.dumps({**body, "signatures": [{"admin": admin.id, "sig": signature}]}).encode()


@pytest.mark.parametrize(("label", "reason"), HOSTILE_LABELS)
def test_a_signed_keyring_with_a_label_that_could_hide_a_key_is_refused(
    admins, recipients, label, reason
):
    document = json.loads(two_recipient_keyring(recipients).to_json())
    document["recipients"][1]["label"] = label
    data = hand_signed(document, admins[0])
    with pytest.raises(KeyringError, match=f"label of recipient r-b .*{reason}"):
        kr.verify_keyring(kr.parse_keyring(data), admins_file(admins, 1), now=NOW)


@pytest.mark.parametrize(("label", "reason"), HOSTILE_LABELS)
def test_adding_a_label_that_could_hide_a_key_is_refused(recipients, label, reason):
    with pytest.raises(KeyringError, match=reason):
        kr.add_recipient(kr.empty_keyring_document(), recipients[0], recipient_id="r-a",
                         label=label, now=NOW)


@pytest.mark.parametrize(
    "label", ["Reviewer A", "مراجع أ", "مُراجِع", "Équipe 2", "審查員", "x" * 80, "r\u00a02"]
)
def test_printable_labels_in_any_script_are_accepted(admins, recipients, label):
    document = json.loads(two_recipient_keyring(recipients).to_json())
    document["recipients"][0]["label"] = label
    accepted = kr.verify_keyring(
        kr.parse_keyring(hand_signed(document, admins[0])), admins_file(admins, 1), now=NOW
    )
    assert accepted.recipients[0].label == label


@pytest.mark.parametrize("bad_id", ["r-a\n", "r\u0661", "-r", "r a", "r" * 65, "", "r\x1b"])
def test_ids_are_simple_ascii_names_with_nothing_after_them(admins, recipients, bad_id):
    document = json.loads(two_recipient_keyring(recipients).to_json())
    document["recipients"][0]["id"] = bad_id
    with pytest.raises(KeyringError, match="not a simple name"):
        kr.parse_keyring(hand_signed(document, admins[0]))
    with pytest.raises(KeyringError, match="simple name"):
        kr.add_recipient(kr.empty_keyring_document(), recipients[0], recipient_id=bad_id,
                         label="A", now=NOW)


@pytest.mark.parametrize(("label", "reason"), HOSTILE_LABELS)
def test_an_admins_file_with_a_hidden_label_is_refused(admins, label, reason):
    document = {
        "format": kr.ADMINS_FORMAT,
        "threshold": 1,
        "admins": [{"id": admins[0].id, "public_key": admins[0].public_b64, "label": label}],
    }
    with pytest.raises(KeyringError, match=f"label for {admins[0].id} .*{reason}"):
        kr.parse_admins(json.dumps(document).encode())


def test_an_admins_file_entry_without_a_label_is_refused(admins):
    document = {
        "format": kr.ADMINS_FORMAT,
        "threshold": 1,
        "admins": [{"id": admins[0].id, "public_key": admins[0].public_b64}],
    }
    with pytest.raises(KeyringError, match="not text"):
        kr.parse_admins(json.dumps(document).encode())


def test_registering_an_admin_with_a_hidden_label_writes_nothing(tmp_path, admins):
    path = tmp_path / "admins.json"
    with pytest.raises(KeyringError, match="U\\+001B"):
        kr.register_admin(path, admins[0].id, admins[0].public_b64, "\x1b[1A\x1b[2K")
    assert not path.exists()


def test_signing_is_refused_for_an_expired_or_future_keyring(recipients):
    keyring = two_recipient_keyring(recipients)
    kr.check_signable(keyring, now=NOW)
    with pytest.raises(KeyringError, match="expired on .*intake keys renew"):
        kr.check_signable(keyring, now=keyring.expires_at)
    with pytest.raises(KeyringError, match="in the future"):
        kr.check_signable(keyring, now=NOW - kr.CLOCK_SKEW - timedelta(seconds=1))
    kr.check_signable(keyring, now=NOW - kr.CLOCK_SKEW)


def test_valid_signers_lists_the_admins_whose_signatures_hold(admins, recipients):
    keyring = admins[2].sign(Admin().sign(admins[0].sign(two_recipient_keyring(recipients))))
    assert kr.valid_signers(keyring, admins_file(admins, 1)) == [admins[0].id, admins[2].id]
    tampered = json.loads(keyring.to_json())
    tampered["version"] += 1
    with pytest.raises(KeyringError, match="changed after it was signed"):
        kr.valid_signers(kr.Keyring(tampered), admins_file(admins, 1))
