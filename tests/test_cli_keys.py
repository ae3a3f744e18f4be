"""`intake keys` as an admin and a reviewer use it: real processes, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pexpect
import pytest

from intake.crypto import identity
from intake.crypto import keyring as kr

PASSPHRASE = "correct horse battery staple"


def intake(cwd: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    return subprocess.run(
        [sys.executable, "-m", "intake", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )


def assert_clean_failure(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, "no explanation on stderr"
    assert lines[-1].startswith("intake: "), result.stderr
    assert message in lines[-1], result.stderr


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """The issue's by-hand flow: identity, add, admin, sign, verify."""
    root = tmp_path_factory.mktemp("deploy")
    (root / "keys").mkdir()
    (root / "p").write_text(PASSPHRASE + "\n")
    made = intake(root, "keys", "new-identity", "--out", "r.key", "--passphrase-file", "p")
    assert made.returncode == 0, made.stderr
    public = made.stdout.strip()
    assert public.startswith("age1") and len(public.splitlines()) == 1
    added = intake(root, "keys", "add", public, "--id", "r1", "--label", "Reviewer 1")
    assert added.returncode == 0, added.stderr
    admin = intake(root, "keys", "new-admin", "--out", "a.key", "--passphrase-file", "p")
    assert admin.returncode == 0, admin.stderr
    signed = intake(root, "keys", "sign", "--admin-key", "a.key", "--passphrase-file", "p")
    assert signed.returncode == 0, signed.stderr
    return root, public


def test_the_by_hand_flow_ends_with_verify_printing_ok_and_the_recipients(deployment):
    root, public = deployment
    verified = intake(root, "keys", "verify")
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("OK")
    assert public in verified.stdout and "r1" in verified.stdout


def test_list_shows_id_label_status_and_a_fingerprint_to_read_aloud(deployment):
    root, public = deployment
    listed = intake(root, "keys", "list")
    assert listed.returncode == 0
    row = next(line for line in listed.stdout.splitlines() if line.startswith("r1"))
    assert "active" in row and "Reviewer 1" in row and kr.fingerprint(public) in row


def test_verify_refuses_a_rollback_below_the_highest_version_seen(deployment):
    root, _ = deployment
    assert_clean_failure(intake(root, "keys", "verify", "--min-version", "9"), "rollback")


def test_verify_refuses_a_tampered_keyring(deployment, tmp_path):
    root, _ = deployment
    document = json.loads((root / "keys/keyring.json").read_text())
    document["recipients"][0]["label"] = "Mallory"
    (tmp_path / "k.json").write_text(json.dumps(document))
    result = intake(root, "keys", "verify", "--keyring", str(tmp_path / "k.json"))
    assert_clean_failure(result, "changed after it was signed")


def test_verify_refuses_an_expired_keyring(deployment, tmp_path):
    root, _ = deployment
    current = kr.load_keyring(root / "keys/keyring.json")
    old = kr.renew_keyring(current.document, now=kr.utc_now() - timedelta(days=30), valid_days=1)
    admin = identity.load_admin_key(root / "a.key", lambda: PASSPHRASE)
    kr.save_keyring(tmp_path / "k.json", kr.sign_keyring(old, admin.id, admin.private_key))
    result = intake(root, "keys", "verify", "--keyring", str(tmp_path / "k.json"))
    assert_clean_failure(result, "expired")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00\x01 not json", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b"{}", "not an intake keyring"),
    ],
)
def test_verify_explains_a_file_that_is_not_a_keyring(deployment, tmp_path, content, message):
    root, _ = deployment
    (tmp_path / "k.json").write_bytes(content)
    assert_clean_failure(
        intake(root, "keys", "verify", "--keyring", str(tmp_path / "k.json")), message
    )


def test_a_missing_keyring_says_how_to_make_one(tmp_path):
    assert_clean_failure(intake(tmp_path, "keys", "list"), "intake keys add")


def with_second_admin(deployment, tmp_path: Path) -> Path:
    """A copy of the deployment's keys in its own folder, with admin B (b.key) registered."""
    root, _ = deployment
    work = tmp_path / "work"
    (work / "keys").mkdir(parents=True)
    for name in ("keyring.json", "admins.json"):
        (work / "keys" / name).write_bytes((root / "keys" / name).read_bytes())
    (work / "p").write_text(PASSPHRASE)
    made = intake(work, "keys", "new-admin", "--out", "b.key", "--passphrase-file", "p",
                  "--label", "Admin B")
    assert made.returncode == 0, made.stderr
    return work


def test_a_second_admin_raises_the_bar_and_the_first_signature_no_longer_suffices(
    deployment, tmp_path
):
    work = with_second_admin(deployment, tmp_path)
    assert intake(work, "keys", "threshold", "2").returncode == 0
    assert_clean_failure(intake(work, "keys", "verify"), "needs 2")
    signed = intake(work, "keys", "sign", "--admin-key", "b.key", "--passphrase-file", "p")
    assert signed.returncode == 0, signed.stderr
    assert "2 of 2" in signed.stderr
    assert intake(work, "keys", "verify").returncode == 0
    again = intake(work, "keys", "sign", "--admin-key", "b.key", "--passphrase-file", "p")
    assert_clean_failure(again, "already signed")


def test_a_wrong_passphrase_changes_nothing(deployment, tmp_path):
    root, _ = deployment
    before = (root / "keys/keyring.json").read_bytes()
    (tmp_path / "wrong").write_text("not it\n")
    result = intake(
        root, "keys", "sign", "--admin-key", "a.key", "--passphrase-file", str(tmp_path / "wrong")
    )
    assert_clean_failure(result, "passphrase")
    assert (root / "keys/keyring.json").read_bytes() == before


def test_a_bad_recipient_is_refused_and_the_keyring_kept(deployment):
    root, _ = deployment
    before = (root / "keys/keyring.json").read_bytes()
    result = intake(root, "keys", "add", "age1thisisnotakey", "--id", "r2", "--label", "x")
    assert_clean_failure(result, "not a valid age public key")
    assert (root / "keys/keyring.json").read_bytes() == before


def test_retiring_the_last_active_key_is_refused(deployment):
    root, _ = deployment
    before = (root / "keys/keyring.json").read_bytes()
    assert_clean_failure(intake(root, "keys", "retire", "r1"), "no active recipient")
    assert (root / "keys/keyring.json").read_bytes() == before


def test_add_then_retire_bumps_versions_and_asks_for_signatures(
    deployment, reviewer_keys, tmp_path
):
    root, _ = deployment
    work = tmp_path / "w"
    (work / "keys").mkdir(parents=True)
    for name in ("keyring.json", "admins.json"):
        (work / "keys" / name).write_bytes((root / "keys" / name).read_bytes())
    version = kr.load_keyring(work / "keys/keyring.json").version
    new = str(reviewer_keys[1].to_public())
    assert intake(work, "keys", "add", new, "--id", "r2", "--label", "Reviewer 2").returncode == 0
    assert intake(work, "keys", "retire", "r1").returncode == 0
    after = kr.load_keyring(work / "keys/keyring.json")
    assert after.version == version + 2 and after.signatures == []
    assert after.active_recipients() == [new]
    assert_clean_failure(intake(work, "keys", "verify"), "0 valid admin signature")


def test_new_identity_never_overwrites_and_never_leaves_a_partial_file(deployment, tmp_path):
    root, _ = deployment
    (tmp_path / "r.key").write_bytes(b"keep me")
    result = intake(
        tmp_path, "keys", "new-identity", "--out", "r.key", "--passphrase-file", str(root / "p")
    )
    assert_clean_failure(result, "never overwritten")
    assert (tmp_path / "r.key").read_bytes() == b"keep me"
    (tmp_path / "empty").write_text("")
    result = intake(
        tmp_path, "keys", "new-identity", "--out", "s.key", "--passphrase-file", "empty"
    )
    assert_clean_failure(result, "empty")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "r.key"]


def test_without_a_terminal_or_passphrase_file_the_command_says_what_to_do(tmp_path):
    result = intake(tmp_path, "keys", "new-identity", "--out", "r.key")
    assert_clean_failure(result, "--passphrase-file")
    assert not (tmp_path / "r.key").exists()


def test_on_a_terminal_a_new_passphrase_is_asked_twice(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "intake", "keys", "new-identity", "--out", "r.key"],
        cwd=str(tmp_path),
        env=env,
        timeout=60,
        encoding="utf-8",
    )
    child.expect("New passphrase")
    child.sendline("first attempt words")
    child.expect("Repeat it")
    child.sendline("a different one")
    child.expect("do not match")
    child.expect("New passphrase")
    child.sendline(PASSPHRASE)
    child.expect("Repeat it")
    child.sendline(PASSPHRASE)
    child.expect(r"age1[0-9a-z]+")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    [ident] = identity.load_identities(tmp_path / "r.key", lambda: PASSPHRASE)
    assert str(ident.to_public()).startswith("age1")


def test_usage_errors_are_one_line_without_a_traceback(tmp_path):
    result = intake(tmp_path, "keys", "add", "age1x")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--id" in result.stderr


def test_an_admin_who_leaves_is_removed_and_their_signature_stops_counting(
    deployment, tmp_path
):
    work = with_second_admin(deployment, tmp_path)
    admins = json.loads((work / "keys/admins.json").read_text())["admins"]
    leaving, staying = admins[0]["id"], admins[1]["id"]
    assert intake(work, "keys", "threshold", "2").returncode == 0
    before = (work / "keys/admins.json").read_bytes()
    # Two admins, threshold 2: removing one would leave a file no keyring can satisfy.
    assert_clean_failure(intake(work, "keys", "remove-admin", leaving), "threshold 1")
    assert_clean_failure(intake(work, "keys", "remove-admin", "nobody"), "not listed")
    assert (work / "keys/admins.json").read_bytes() == before
    assert intake(work, "keys", "threshold", "1").returncode == 0
    assert intake(work, "keys", "verify").returncode == 0  # signed by the one who leaves
    removed = intake(work, "keys", "remove-admin", leaving)
    assert removed.returncode == 0, removed.stderr
    assert [a["id"] for a in json.loads((work / "keys/admins.json").read_text())["admins"]] == [
        staying]
    assert_clean_failure(intake(work, "keys", "verify"), "needs 1")
    assert_clean_failure(intake(work, "keys", "remove-admin", staying), "only admin")
    assert intake(work, "keys", "renew").returncode == 0
    signed = intake(work, "keys", "sign", "--admin-key", "b.key", "--passphrase-file", "p")
    assert signed.returncode == 0, signed.stderr
    assert intake(work, "keys", "verify").returncode == 0
