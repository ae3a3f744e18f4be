"""Interoperability with the reference age tools (Go age 1.1.1: `age`, `age-keygen`).

A reviewer opens a submission with nothing but ``age -d -i key | tar -x``;
files the Go tool writes must open here; identity files go both ways. These
tests drive the real binaries, so they pin the wire formats rather than our
own reading of them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pexpect
import pyrage
import pytest
from conftest import require_tool
from helpers import STRONG_PASSPHRASE
from pyrage import x25519

from intake.crypto import container, envelope, header, identity
from intake.errors import EnvelopeError
from intake.limits import MAX_AGE_HEADER

AGE_TIMEOUT = 120  # seconds; scrypt at work factor 19 takes a few seconds on a slow runner
PUBLIC_KEY = re.compile(r"^age1[02-9ac-hj-np-z]{58}$")
SECRET_KEY = re.compile(r"^AGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{58}$")
CREATED = re.compile(r"^# created: (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)$")
SAFE_ATTACHMENT_PATH = re.compile(r"^attachments/\d\d-[A-Za-z0-9_-][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Tools:
    age: str
    age_keygen: str
    tar: str


@pytest.fixture
def tools() -> Tools:
    return Tools(
        age=require_tool("age"), age_keygen=require_tool("age-keygen"), tar=require_tool("tar")
    )


def keygen_text(ident: x25519.Identity) -> str:
    return f"# created: 2026-11-28T00:00:00Z\n# public key: {ident.to_public()}\n{ident}\n"


def write_identity(path: Path, ident: x25519.Identity) -> Path:
    path.write_text(keygen_text(ident))
    path.chmod(0o600)
    return path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decrypt_here(ciphertext: bytes, identities: list[x25519.Identity]) -> bytes:
    out = io.BytesIO()
    envelope.decrypt_stream(io.BytesIO(ciphertext), out, identities)
    return out.getvalue()


# --- our submission, opened by `age -d | tar -x` ----------------------------------------------

ARABIC_NAME = "لقطة شاشة الرسالة ١.png"
FIELDS = {
    "summary": "رسالة مشبوهة وصلت عبر واتساب مع رابط",
    "device": "Android 14",
}


@dataclass(frozen=True)
class Submission:
    path: Path
    document: dict
    inputs: dict[str, bytes]  # original name -> bytes given to the container


@pytest.fixture(scope="module")
def submission(tmp_path_factory, reviewer_keys) -> Submission:
    """A report with an Arabic-named 200 003-byte file and an empty one, to two reviewers."""
    inputs = {ARABIC_NAME: os.urandom(200_003), "empty.txt": b""}
    attachments = [
        container.Attachment(
            name=name,
            type="application/octet-stream",
            size=len(data),
            sha256=sha256(data),
            open=lambda data=data: io.BytesIO(data),
        )
        for name, data in inputs.items()
    ]
    reader = container.ContainerReader("ar", FIELDS, attachments)
    path = tmp_path_factory.mktemp("submission") / "report.age"
    with path.open("wb") as dst:
        envelope.encrypt_stream(
            reader, dst, [str(reviewer_keys[0].to_public()), str(reviewer_keys[1].to_public())]
        )
    return Submission(path=path, document=reader.document, inputs=inputs)


def age_into_tar(tools: Tools, key: Path, ciphertext: Path, dest: Path):
    """``age -d -i KEY CIPHERTEXT | tar -x -C DEST``, as two real processes joined by a pipe."""
    dest.mkdir()
    with subprocess.Popen(
        [tools.age, "-d", "-i", str(key), str(ciphertext)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as age:
        tar = subprocess.run(
            [tools.tar, "-x", "-C", str(dest)],
            stdin=age.stdout,
            capture_output=True,
            timeout=AGE_TIMEOUT,
            check=False,
        )
        age.stdout.close()
        age_err = age.stderr.read()
        age.wait(timeout=AGE_TIMEOUT)
    return age.returncode, age_err, tar


def extracted_files(dest: Path) -> dict[str, Path]:
    return {p.relative_to(dest).as_posix(): p for p in dest.rglob("*") if not p.is_dir()}


@pytest.mark.parametrize("reviewer", [0, 1], ids=["first-recipient", "second-recipient"])
def test_age_decrypt_piped_into_tar_recovers_the_report_byte_for_byte(
    tools, submission, reviewer_keys, identity_text_file, tmp_path, reviewer
):
    key = (
        identity_text_file
        if reviewer == 0
        else write_identity(tmp_path / "second.key", reviewer_keys[1])
    )
    dest = tmp_path / "opened"

    age_rc, age_err, tar = age_into_tar(tools, key, submission.path, dest)

    assert age_rc == 0, age_err.decode(errors="replace")
    assert tar.returncode == 0, tar.stderr.decode(errors="replace")
    assert tar.stderr == b"", "tar must not warn about the container (padding, end marker)"
    files = extracted_files(dest)
    listed = [entry["path"] for entry in submission.document["attachments"]]
    assert set(files) == {"report.json", *listed}
    assert all(p.is_file() and not p.is_symlink() for p in files.values())
    assert all(SAFE_ATTACHMENT_PATH.match(path) for path in listed)

    document = json.loads(files["report.json"].read_bytes().decode("utf-8"))
    assert document == submission.document
    assert document["schema"] == container.SCHEMA
    assert document["lang"] == "ar"
    assert document["fields"] == FIELDS
    assert [a["name"] for a in document["attachments"]] == [
        unicodedata.normalize("NFC", name) for name in submission.inputs
    ]
    for entry, data in zip(document["attachments"], submission.inputs.values(), strict=True):
        on_disk = files[entry["path"]].read_bytes()
        assert len(on_disk) == entry["size"] == len(data)
        assert sha256(on_disk) == entry["sha256"] == sha256(data)


def test_age_decrypt_refuses_our_submission_for_an_identity_that_is_not_a_recipient(
    tools, submission, reviewer_keys, tmp_path
):
    outsider = write_identity(tmp_path / "outsider.key", reviewer_keys[2])
    dest = tmp_path / "opened"

    age_rc, _, _ = age_into_tar(tools, outsider, submission.path, dest)

    assert age_rc != 0
    assert extracted_files(dest) == {}


# --- files `age -r` wrote, opened by decrypt_stream -------------------------------------------


def age_encrypt(tools: Tools, plaintext: bytes, recipients: list[str], tmp_path: Path) -> bytes:
    source = tmp_path / "plain.bin"
    target = tmp_path / "plain.bin.age"
    source.write_bytes(plaintext)
    args = [tools.age]
    for recipient in recipients:
        args += ["-r", recipient]
    subprocess.run(
        [*args, "-o", str(target), str(source)], check=True, capture_output=True,
        timeout=AGE_TIMEOUT,
    )
    return target.read_bytes()


@pytest.mark.parametrize("size", [0, 1, 65536, 200_000])
def test_go_age_file_decrypts_byte_identical_with_decrypt_stream(
    tools, reviewer_keys, tmp_path, size
):
    plaintext = os.urandom(size)
    ciphertext = age_encrypt(tools, plaintext, [str(reviewer_keys[0].to_public())], tmp_path)

    assert ciphertext != plaintext
    assert decrypt_here(ciphertext, [reviewer_keys[0]]) == plaintext


def test_go_age_file_to_two_recipients_opens_with_either_identity_and_no_other(
    tools, reviewer_keys, tmp_path
):
    plaintext = os.urandom(100_000)
    recipients = [str(k.to_public()) for k in reviewer_keys[:2]]
    ciphertext = age_encrypt(tools, plaintext, recipients, tmp_path)

    assert decrypt_here(ciphertext, [reviewer_keys[0]]) == plaintext
    assert decrypt_here(ciphertext, [reviewer_keys[1]]) == plaintext
    with pytest.raises(EnvelopeError):
        decrypt_here(ciphertext, [reviewer_keys[2]])


@pytest.mark.parametrize("count", [1, 2])
def test_go_age_header_has_the_shape_the_client_header_check_accepts(
    tools, reviewer_keys, tmp_path, count
):
    recipients = [str(k.to_public()) for k in reviewer_keys[:count]]
    ciphertext = age_encrypt(tools, b"x" * 1000, recipients, tmp_path)

    parsed = header.check_client_header(
        ciphertext[: MAX_AGE_HEADER + 1], expected_recipients=count, total_size=len(ciphertext)
    )
    assert [s.type for s in parsed.stanzas] == ["X25519"] * count
    with pytest.raises(EnvelopeError):
        header.check_client_header(
            ciphertext[: MAX_AGE_HEADER + 1], expected_recipients=count + 1
        )


# --- a reviewer identity written here, opened by `age -i` ---------------------------------------

PASSPHRASE = STRONG_PASSPHRASE


@dataclass(frozen=True)
class ReviewerIdentity:
    path: Path
    public: str
    plaintext: str  # the identity file's content, decrypted once with pyrage
    written_between: tuple[datetime, datetime]
    ciphertext: Path  # a message encrypted here to `public`
    message: bytes


@pytest.fixture(scope="module")
def reviewer_identity(tmp_path_factory) -> ReviewerIdentity:
    """One passphrase-protected identity (two scrypt operations for the whole module)."""
    directory = tmp_path_factory.mktemp("reviewer")
    path = directory / "reviewer.key"
    before = datetime.now(UTC).replace(microsecond=0)
    public = identity.write_reviewer_identity(path, PASSPHRASE)
    after = datetime.now(UTC)
    plaintext = pyrage.passphrase.decrypt(path.read_bytes(), PASSPHRASE).decode("utf-8")
    message = os.urandom(70_000)
    ciphertext = directory / "message.age"
    with ciphertext.open("wb") as dst:
        envelope.encrypt_stream(io.BytesIO(message), dst, [public])
    return ReviewerIdentity(path, public, plaintext, (before, after), ciphertext, message)


def age_decrypt_with_prompt(tools: Tools, key: Path, ciphertext: Path, output: Path, answer: str):
    """Run ``age -d -i KEY -o OUTPUT CIPHERTEXT`` on a terminal and type `answer` at its prompt."""
    child = pexpect.spawn(
        tools.age, ["-d", "-i", str(key), "-o", str(output), str(ciphertext)],
        timeout=AGE_TIMEOUT,
    )
    transcript = io.BytesIO()
    child.logfile_read = transcript
    child.expect(r"(?i)passphrase")
    child.sendline(answer)
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus, transcript.getvalue()


def test_age_opens_a_submission_with_our_passphrase_identity_and_its_passphrase(
    tools, reviewer_identity, tmp_path
):
    output = tmp_path / "message.out"

    status, transcript = age_decrypt_with_prompt(
        tools, reviewer_identity.path, reviewer_identity.ciphertext, output, PASSPHRASE
    )

    assert status == 0, transcript.decode(errors="replace")
    assert b"reviewer.key" in transcript  # the prompt named the identity file it unlocks
    assert output.read_bytes() == reviewer_identity.message


def test_age_refuses_our_passphrase_identity_with_a_wrong_passphrase(
    tools, reviewer_identity, tmp_path
):
    output = tmp_path / "message.out"

    status, transcript = age_decrypt_with_prompt(
        tools, reviewer_identity.path, reviewer_identity.ciphertext, output, PASSPHRASE + "!"
    )

    assert status != 0, transcript.decode(errors="replace")
    assert not output.exists() or output.read_bytes() == b""


def line_shape(line: str) -> str:
    if CREATED.match(line):
        return "created"
    if line.startswith("# public key: ") and PUBLIC_KEY.match(line.removeprefix("# public key: ")):
        return "public"
    if SECRET_KEY.match(line):
        return "secret"
    return f"other: {line[:20]!r}"


def test_reviewer_identity_plaintext_has_exactly_the_age_keygen_shape(
    tools, reviewer_identity, tmp_path
):
    reference = tmp_path / "reference.key"
    subprocess.run([tools.age_keygen, "-o", str(reference)], check=True, capture_output=True)
    text = reviewer_identity.plaintext

    assert text.endswith("\n") and "\r" not in text
    assert [line_shape(line) for line in text.splitlines()] == ["created", "public", "secret"]
    assert [line_shape(line) for line in text.splitlines()] == [
        line_shape(line) for line in reference.read_text().splitlines()
    ]
    created = datetime.strptime(CREATED.match(text.splitlines()[0]).group(1), "%Y-%m-%dT%H:%M:%SZ")
    before, after = reviewer_identity.written_between
    assert before <= created.replace(tzinfo=UTC) <= after + timedelta(seconds=1)
    assert text.splitlines()[1] == f"# public key: {reviewer_identity.public}"


def test_age_keygen_derives_the_returned_public_key_from_the_reviewer_identity(
    tools, reviewer_identity
):
    derived = subprocess.run(
        [tools.age_keygen, "-y"],
        input=reviewer_identity.plaintext.encode(),
        capture_output=True,
        check=True,
    )

    assert PUBLIC_KEY.match(reviewer_identity.public)
    assert derived.stdout.decode().strip() == reviewer_identity.public


# --- an identity age-keygen wrote, used here -------------------------------------------------


def test_age_keygen_identity_loads_here_and_opens_our_output(tools, reviewer_keys, tmp_path):
    key = tmp_path / "keygen.key"
    subprocess.run([tools.age_keygen, "-o", str(key)], check=True, capture_output=True)
    public = subprocess.run(
        [tools.age_keygen, "-y", str(key)], check=True, capture_output=True
    ).stdout.decode().strip()

    def no_passphrase() -> str:
        raise AssertionError("an unencrypted identity file must not ask for a passphrase")

    loaded = identity.load_identities(key, no_passphrase)

    assert [str(i.to_public()) for i in loaded] == [public]
    hello = container.Attachment(
        "a.txt", "text/plain", 5, sha256(b"hello"), lambda: io.BytesIO(b"hello")
    )
    reader = container.ContainerReader("en", {"summary": "test"}, [hello])
    expected = reader.read()
    ciphertext = io.BytesIO()
    envelope.encrypt_stream(
        io.BytesIO(expected), ciphertext, [str(reviewer_keys[0].to_public()), public]
    )
    assert decrypt_here(ciphertext.getvalue(), loaded) == expected
    with pytest.raises(EnvelopeError):
        decrypt_here(ciphertext.getvalue(), [reviewer_keys[2]])
    # The same file also works for the Go tool, so the key really is the one we loaded.
    opened = subprocess.run(
        [tools.age, "-d", "-i", str(key)], input=ciphertext.getvalue(), capture_output=True,
        check=True, timeout=AGE_TIMEOUT,
    )
    assert opened.stdout == expected
