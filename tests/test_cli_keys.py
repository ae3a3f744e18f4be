"""`intake keys` as an admin and a reviewer use it: real processes, real files."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pexpect
import pytest
from helpers import STRONG_PASSPHRASE

from intake.crypto import identity
from intake.crypto import keyring as kr

PASSPHRASE = STRONG_PASSPHRASE


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


def test_on_a_terminal_a_new_passphrase_is_asked_twice_and_again_while_weak(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "intake", "keys", "new-identity", "--out", "r.key"],
        cwd=str(tmp_path),
        env=env,
        timeout=60,
        encoding="utf-8",
    )
    child.expect(r"Use this passphrase\? \[y/N\]")
    child.sendline("n")
    child.expect("New passphrase")
    child.sendline("first attempt words")
    child.expect("Repeat it")
    child.sendline("a different one")
    child.expect("do not match")
    child.expect("New passphrase")
    child.sendline("correct horse battery staple")
    child.expect("Repeat it")
    child.sendline("correct horse battery staple")
    child.expect("too easy to guess")
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


# -- issue 10, item 3: a hidden reviewer key must not get past M-of-N signing ----------------


def spawn_intake(cwd: Path, *args: str) -> pexpect.spawn:
    """`intake ARGS` on a pseudo-terminal, as an admin at a keyboard runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    return pexpect.spawn(
        sys.executable, ["-m", "intake", *args], cwd=str(cwd), env=env, timeout=60,
        encoding="utf-8",
    )


def hand_signed(deployment, tmp_path: Path, edit) -> Path:
    """The deployment's keyring edited by `edit` and signed again with admin a.key, the way
    an insider with an admin key would (bypassing `intake keys add`)."""
    root, _ = deployment
    document = json.loads((root / "keys/keyring.json").read_text())
    edit(document)
    document["signatures"] = []
    admin = identity.load_admin_key(root / "a.key", lambda: PASSPHRASE)
    body = {k: v for k, v in document.items() if k != "signatures"}
    signature = admin.private_key.sign(kr.canonical_json(body))
    document["signatures"] = [{"admin": admin.id, "sig": base64.b64encode(signature).decode()}]
    path = tmp_path / "k.json"
    path.write_text(json.dumps(document, ensure_ascii=False))
    return path


HIDDEN_LABELS = [
    pytest.param("\x1b[2K\r", id="erase-line"),
    pytest.param("\u202e", id="bidi-override"),
    pytest.param("x" * 10_000, id="ten-thousand-characters"),
]


@pytest.mark.parametrize("label", HIDDEN_LABELS)
def test_verify_refuses_a_signed_keyring_whose_label_could_hide_a_key(
    deployment, reviewer_keys, tmp_path, label
):
    def add_hidden(document: dict) -> None:
        document["recipients"].append({
            "id": "r-hidden", "recipient": str(reviewer_keys[2].to_public()), "label": label,
            "status": "active", "added_at": document["issued_at"],
        })

    root, _ = deployment
    path = hand_signed(deployment, tmp_path, add_hidden)
    result = intake(root, "keys", "verify", "--keyring", str(path))
    assert_clean_failure(result, "label of recipient r-hidden")
    assert "\x1b" not in result.stderr and "\u202e" not in result.stderr
    assert len(result.stderr) < 400


def test_sign_shows_the_count_and_every_fingerprint_before_signing(
    deployment, reviewer_keys, tmp_path
):
    work = tmp_path / "w"
    (work / "keys").mkdir(parents=True)
    root, first = deployment
    for name in ("keyring.json", "admins.json"):
        (work / "keys" / name).write_bytes((root / "keys" / name).read_bytes())
    keys = [str(k.to_public()) for k in reviewer_keys[1:3]]
    for number, key in enumerate(keys, start=2):
        added = intake(work, "keys", "add", key, "--id", f"r{number}", "--label", f"R {number}")
        assert added.returncode == 0, added.stderr
    assert intake(work, "keys", "retire", "r1").returncode == 0
    signed = intake(
        work, "keys", "sign", "--admin-key", str(root / "a.key"), "--passphrase-file",
        str(root / "p"),
    )
    assert signed.returncode == 0, signed.stderr
    assert "2 active recipient(s)" in signed.stderr
    lines = signed.stderr.splitlines()
    for number, key in enumerate(keys, start=2):
        [row] = [line for line in lines if kr.fingerprint(key) in line]
        assert f"r{number}" in row and "active" in row and f"R {number}" in row
    [retired] = [line for line in lines if kr.fingerprint(first) in line]
    assert "retired" in retired
    assert "Keyring version" in signed.stderr and "expires" in signed.stderr


def test_sign_refuses_an_expired_keyring_in_one_sentence(deployment, tmp_path):
    root, _ = deployment
    current = kr.load_keyring(root / "keys/keyring.json")
    old = kr.renew_keyring(current.document, now=kr.utc_now() - timedelta(days=30), valid_days=1)
    kr.save_keyring(tmp_path / "k.json", old)
    before = (tmp_path / "k.json").read_bytes()
    result = intake(
        root, "keys", "sign", "--admin-key", "a.key", "--passphrase-file", "p",
        "--keyring", str(tmp_path / "k.json"),
    )
    assert_clean_failure(result, "expired on")
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        result.stderr.strip()]
    assert "intake keys renew" in result.stderr
    assert (tmp_path / "k.json").read_bytes() == before


def test_sign_refuses_a_keyring_issued_in_the_future(deployment, tmp_path):
    root, _ = deployment
    current = kr.load_keyring(root / "keys/keyring.json")
    ahead = kr.renew_keyring(current.document, now=kr.utc_now() + timedelta(days=3))
    kr.save_keyring(tmp_path / "k.json", ahead)
    result = intake(
        root, "keys", "sign", "--admin-key", "a.key", "--passphrase-file", "p",
        "--keyring", str(tmp_path / "k.json"),
    )
    assert_clean_failure(result, "in the future")


def test_sign_refuses_a_keyring_changed_after_another_admin_signed_it(deployment, tmp_path):
    root, _ = deployment
    work = with_second_admin(deployment, tmp_path)
    document = json.loads((work / "keys/keyring.json").read_text())
    document["recipients"][0]["label"] = "Mallory"  # edited after admin A signed
    (work / "keys/keyring.json").write_text(json.dumps(document))
    before = (work / "keys/keyring.json").read_bytes()
    result = intake(work, "keys", "sign", "--admin-key", "b.key", "--passphrase-file", "p")
    assert_clean_failure(result, "changed after it was signed")
    assert (work / "keys/keyring.json").read_bytes() == before


def fresh_copy(deployment, tmp_path: Path) -> Path:
    """The deployment's keys with a new, unsigned version, in a folder of their own."""
    root, _ = deployment
    work = tmp_path / "w"
    (work / "keys").mkdir(parents=True)
    for name in ("keyring.json", "admins.json"):
        (work / "keys" / name).write_bytes((root / "keys" / name).read_bytes())
    assert intake(work, "keys", "renew").returncode == 0
    return work


def test_on_a_terminal_sign_asks_after_the_list_and_no_signs_nothing(deployment, tmp_path):
    root, public = deployment
    work = fresh_copy(deployment, tmp_path)
    before = (work / "keys/keyring.json").read_bytes()
    child = spawn_intake(work, "keys", "sign", "--admin-key", str(root / "a.key"))
    child.expect("1 active recipient")
    child.expect(kr.fingerprint(public))
    child.expect(r"Sign this keyring\? \[y/N\]")
    child.sendline("n")
    child.expect("Nothing was signed")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert (work / "keys/keyring.json").read_bytes() == before


def test_on_a_terminal_sign_signs_only_after_yes(deployment, tmp_path):
    root, public = deployment
    work = fresh_copy(deployment, tmp_path)
    child = spawn_intake(work, "keys", "sign", "--admin-key", str(root / "a.key"))
    child.expect(kr.fingerprint(public))
    child.expect(r"Sign this keyring\? \[y/N\]")
    child.sendline("y")
    child.expect("Passphrase for")
    child.sendline(PASSPHRASE)
    child.expect("1 of 1 required")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert intake(work, "keys", "verify").returncode == 0


def test_list_and_verify_show_a_label_only_as_visible_text(deployment, tmp_path, monkeypatch):
    """`terminal_safe` in the display too, should a label ever reach it unchecked."""
    from click.testing import CliRunner

    from intake.cli.keys import keys

    root, _ = deployment
    osc52 = "\x1b]52;c;ZXZpbA==\x07"
    path = hand_signed(deployment, tmp_path, lambda d: d["recipients"][0].update(label=osc52))
    monkeypatch.setattr(kr, "label_problem", lambda label: None)  # a parser that forgot the rule
    runner = CliRunner()
    for command in ("list", "verify"):
        shown = runner.invoke(
            keys, [command, "--keyring", str(path), "--admins", str(root / "keys/admins.json")]
            if command == "verify" else [command, "--keyring", str(path)]
        )
        assert shown.exit_code == 0, shown.output
        assert "\x1b" not in shown.output and "\x07" not in shown.output
        assert "\\x1b]52;c;ZXZpbA==\\x07" in shown.output


# -- issue 10, item 10: passphrases at least as strong as six diceware words -----------------


@pytest.mark.parametrize(
    "weak", ["correct horse battery staple", "a", "abacus abdomen abdominal abide abiding"]
)
def test_a_weak_passphrase_file_is_refused_in_one_sentence_and_nothing_is_made(tmp_path, weak):
    (tmp_path / "p").write_text(weak + "\n")
    result = intake(tmp_path, "keys", "new-identity", "--out", "r.key", "--passphrase-file", "p")
    assert_clean_failure(result, "too easy to guess")
    assert "--generate-passphrase" in result.stderr
    result = intake(tmp_path, "keys", "new-admin", "--out", "a.key", "--passphrase-file", "p")
    assert_clean_failure(result, "too easy to guess")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]


def test_generate_passphrase_prints_seven_eff_words_that_open_the_key(tmp_path):
    from intake.crypto.passphrase import word_list

    made = intake(tmp_path, "keys", "new-identity", "--out", "r.key", "--generate-passphrase")
    assert made.returncode == 0, made.stderr
    assert "EFF large word list" in made.stderr
    [line] = [line.strip() for line in made.stderr.splitlines() if line.startswith("    ")]
    words = line.split(" ")
    assert len(words) == 7 and all(w in word_list() for w in words)
    [ident] = identity.load_identities(tmp_path / "r.key", lambda: line)
    assert str(ident.to_public()) == made.stdout.strip()
    both = intake(tmp_path, "keys", "new-identity", "--out", "s.key", "--generate-passphrase",
                  "--passphrase-file", "r.key")
    assert_clean_failure(both, "not both")


def test_on_a_terminal_the_generated_passphrase_is_offered_and_must_be_typed_back(tmp_path):
    child = spawn_intake(tmp_path, "keys", "new-admin", "--out", "a.key")
    child.expect("EFF large word list")
    child.expect(r"\r\n    ([a-z -]+)\r\n")
    offered = child.match.group(1)
    child.expect(r"Use this passphrase\? \[y/N\]")
    child.sendline("y")
    child.expect("Type it once")
    child.sendline(offered.upper())
    child.expect("not the same passphrase")
    child.expect("Type it once")
    child.sendline(offered)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    loaded = identity.load_admin_key(tmp_path / "a.key", lambda: offered)
    assert loaded.id in (tmp_path / "keys/admins.json").read_text()


# -- issue 10, new user / issue 11: commands that write into keys/ -----------------------------


def test_new_admin_outside_a_checkout_makes_the_keys_folder(tmp_path):
    (tmp_path / "p").write_text(PASSPHRASE + "\n")
    made = intake(tmp_path, "keys", "new-admin", "--out", "a.key", "--passphrase-file", "p")
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "keys").is_dir() and (tmp_path / "keys").stat().st_mode & 0o777 == 0o755
    assert kr.load_admins(tmp_path / "keys/admins.json").threshold == 1
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == ["admins.json"]


def test_add_outside_a_checkout_makes_the_keys_folder(tmp_path, reviewer_keys):
    added = intake(tmp_path, "keys", "add", str(reviewer_keys[0].to_public()), "--id", "r1",
                   "--label", "Reviewer 1")
    assert added.returncode == 0, added.stderr
    assert kr.load_keyring(tmp_path / "keys/keyring.json").version == 1


def test_a_missing_folder_for_a_private_key_is_named_and_nothing_is_made(tmp_path):
    (tmp_path / "p").write_text(PASSPHRASE + "\n")
    for command in ("new-identity", "new-admin"):
        result = intake(tmp_path, "keys", command, "--out", "stick/r.key", "--passphrase-file", "p")
        assert_clean_failure(result, "The folder stick for --out does not exist")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]


def test_a_deeply_missing_keyring_folder_is_named_and_nothing_is_made(tmp_path, reviewer_keys):
    result = intake(tmp_path, "keys", "add", str(reviewer_keys[0].to_public()), "--id", "r1",
                    "--label", "R", "--keyring", "a/b/keyring.json")
    assert_clean_failure(result, "--keyring")
    assert list(tmp_path.iterdir()) == []
