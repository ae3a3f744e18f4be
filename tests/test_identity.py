"""Key files: passphrase-protected, never overwritten, never half-written."""

from __future__ import annotations

import os
import stat

import pyrage
import pytest
from helpers import STRONG_PASSPHRASE

from intake.crypto import envelope, identity
from intake.errors import IdentityError

PASSPHRASE = STRONG_PASSPHRASE


@pytest.fixture(scope="module")
def reviewer(tmp_path_factory):
    path = tmp_path_factory.mktemp("reviewer") / "reviewer.key"
    public = identity.write_reviewer_identity(path, PASSPHRASE)
    return path, public


def test_a_reviewer_identity_is_encrypted_private_and_opens_with_its_passphrase(reviewer):
    path, public = reviewer
    data = path.read_bytes()
    assert data.startswith(b"age-encryption.org/v1\n-> scrypt ")
    assert b"AGE-SECRET-KEY" not in data
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    [ident] = identity.load_identities(path, lambda: PASSPHRASE)
    assert str(ident.to_public()) == public
    assert envelope.decrypt_bytes(envelope.encrypt_bytes(b"report", [public]), [ident]) == b"report"


def test_a_wrong_passphrase_is_one_clear_error(reviewer):
    path, _ = reviewer
    with pytest.raises(IdentityError, match="passphrase .* is wrong"):
        identity.load_identities(path, lambda: "not the passphrase")


def test_the_passphrase_is_asked_only_for_an_encrypted_file(tmp_path, reviewer_keys):
    plain = tmp_path / "plain.key"
    plain.write_text(f"# public key: {reviewer_keys[0].to_public()}\n{reviewer_keys[0]}\n")

    def never() -> str:
        raise AssertionError("asked for a passphrase")

    [ident] = identity.load_identities(plain, never)
    assert str(ident) == str(reviewer_keys[0])


def test_an_existing_key_file_is_never_overwritten(tmp_path):
    path = tmp_path / "r.key"
    path.write_bytes(b"precious")
    with pytest.raises(IdentityError, match="never overwritten"):
        identity.write_reviewer_identity(path, PASSPHRASE)
    with pytest.raises(IdentityError, match="never overwritten"):
        identity.write_admin_key(path, PASSPHRASE)
    assert path.read_bytes() == b"precious"


def test_an_empty_passphrase_is_refused_and_nothing_is_written(tmp_path):
    with pytest.raises(IdentityError, match="empty"):
        identity.write_reviewer_identity(tmp_path / "r.key", "")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "weak",
    [
        "x",
        "correct horse battery staple",
        "Tr0ub4dor&3",
        "abacus abdomen abdominal abide abiding",  # five EFF words: 64.6 bits
        "reviewer reviewer reviewer reviewer reviewer reviewer",
    ],
)
def test_a_passphrase_weaker_than_six_diceware_words_is_refused_and_nothing_is_written(
    tmp_path, weak
):
    with pytest.raises(IdentityError, match="too easy to guess.*seven random words"):
        identity.write_reviewer_identity(tmp_path / "r.key", weak)
    with pytest.raises(IdentityError, match="too easy to guess"):
        identity.write_admin_key(tmp_path / "a.key", weak)
    assert list(tmp_path.iterdir()) == []


def test_the_key_file_name_counts_as_a_word_an_attacker_tries_first(tmp_path):
    from intake.crypto.passphrase import estimate_bits

    phrase = "quixotic-zeppelin"
    assert estimate_bits(phrase, ("quixotic-zeppelin",)) < estimate_bits(phrase)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "no AGE-SECRET-KEY"),
        (b"# only a comment\n", "no AGE-SECRET-KEY"),
        (b"AGE-SECRET-KEY-1NOTAKEY\n", "not an age secret key"),
        (b"\xff\xfe binary", "not an age identity file"),
        (b"x" * (identity.MAX_KEY_FILE + 10), "far too large"),
    ],
)
def test_files_that_are_not_identities_are_refused(tmp_path, content, message):
    path = tmp_path / "wrong.key"
    path.write_bytes(content)
    with pytest.raises(IdentityError, match=message):
        identity.load_identities(path, lambda: PASSPHRASE)


def test_a_missing_identity_file_is_named(tmp_path):
    with pytest.raises(IdentityError, match="There is no identity file at"):
        identity.load_identities(tmp_path / "nope.key", lambda: PASSPHRASE)


def test_an_admin_key_round_trips_and_its_id_is_derived_from_the_key(tmp_path):
    path = tmp_path / "admin.key"
    created = identity.write_admin_key(path, PASSPHRASE)
    data = path.read_bytes()
    assert data.startswith(b"age-encryption.org/v1\n") and b"PRIVATE KEY" not in data
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    loaded = identity.load_admin_key(path, lambda: PASSPHRASE)
    assert (loaded.id, loaded.public_key_b64) == (created.id, created.public_key_b64)
    plaintext = pyrage.passphrase.decrypt(data, PASSPHRASE).decode()
    assert f"# admin id: {created.id}" in plaintext
    with pytest.raises(IdentityError, match="wrong"):
        identity.load_admin_key(path, lambda: "guess")


def test_a_reviewer_identity_is_not_an_admin_key(reviewer):
    path, _ = reviewer
    with pytest.raises(IdentityError, match="not an intake admin key"):
        identity.load_admin_key(path, lambda: PASSPHRASE)
