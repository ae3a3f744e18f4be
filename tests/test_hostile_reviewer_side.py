"""The whole reviewer side against generated hostile submissions (issue 10).

Each example is one export bundle as an adversary could shape it: reports
with hostile answers (script tags, bidi controls, escape sequences, formulas,
wrong types, values at their bounds), hand-made containers from the hostile
container generator (sparse and PAX members, links, wrong sizes, report.json
anywhere or nowhere, cut short), junk age files, reports for somebody else,
and sometimes a bundle cut off like a USB stick pulled out too early. The
reviewer side then runs on it exactly as a reviewer would: `review import`,
`list`, `show` of every case, `stats`, `related`, and every export.

Three properties hold for every example:
- nothing crashes: every command ends with one of its documented exit
  statuses (never 70, the internal error), and what reaches the terminal is
  inert;
- nothing is written outside the cases folder (and the one output file each
  export is told to write);
- nothing on disk outgrows what arrived: the case folders together hold no
  more bytes than the bundle had, and the case store's database stays within
  a fixed multiple of it.
"""

from __future__ import annotations

import hashlib
import os
import string
from pathlib import Path

import pytest
from hostile.bundles import Kit, container, junk_age_file
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_hostile_containers import generated_containers
from test_review_cli import assert_terminal_inert, run

from intake import schema
from intake.crypto.envelope import encrypt_bytes

pytestmark = pytest.mark.slow

#: `review import`'s exit statuses (docs/reviewers.md): all filed; some not for these
#: identities; some quarantined or refused; a bad bundle or an identity that opens nothing.
IMPORT_STATUSES = {0, 1, 3, 4}

HOSTILE_TEXT = [
    "<script>alert(document.cookie)</script>",
    "\u202eexe.gnp",
    "\x1b[2K\r\x1b]52;c;cHduZWQ=\x07\x1b]0;owned\x07",
    "\x9b2J",
    "see below;=HYPERLINK(\"http://evil.example\",\"x\")",
    "=cmd|' /C calc'!A0",
    "+1 (555) 010-2000\thxxps://evil[.]example/login?a=1",
    "مُحَمَّد\u200b أحمد ی ک",
    "{{7*7}} {% raw %}",
]
# (A lone surrogate cannot come through the server's writer, which refuses undecodable text;
# report.json with one, as a browser's JSON.stringify writes it, is in the hand-made
# containers of tests/hostile/containers.py.)


def _choice_values(name: str) -> list[str]:
    field = schema.FIELDS[name]
    choices = schema.country_choices() if field.kind == "country" else field.choices
    return [c.value for c in choices]


@st.composite
def hostile_fields(draw) -> dict[str, object]:
    """Answers as a tampered browser could send them: right or wrong types, any text."""
    text = st.sampled_from(HOSTILE_TEXT) | st.text(max_size=60)
    fields: dict[str, object] = {}
    for name, field in schema.FIELDS.items():
        if field.kind == "files" or not draw(st.booleans()):
            continue
        if field.kind in schema.MULTI_KINDS:
            good = st.lists(st.sampled_from(_choice_values(name)), max_size=3, unique=True)
        elif field.kind in ("radio", "select", "country"):
            good = st.sampled_from(_choice_values(name))
        elif field.kind == "checkbox":
            good = st.booleans()
        elif field.kind == "partial_date":
            good = st.sampled_from(["2026", "2026-03", "2026-03-14"])
        else:
            limit = min(field.max_length or schema.DEFAULT_MAX_TEXT, 3000)
            good = st.lists(text, max_size=4).map("\n".join).map(lambda t, n=limit: t[:n])
        wrong = st.integers() | st.none() | st.lists(text, max_size=2) | text
        fields[name] = draw(good if draw(st.integers(0, 4)) else wrong)
    if draw(st.booleans()):
        fields[draw(st.sampled_from(["shell", "attachments", ""]))] = draw(text)
    return fields


@st.composite
def hostile_blob(draw, kit: Kit) -> bytes:
    """One submission's ciphertext, as an adversary could make it."""
    kind = draw(st.sampled_from(["report", "report", "container", "junk", "stranger"]))
    if kind == "junk":
        return junk_age_file(draw(st.integers(0, 3000)))
    if kind == "container":
        return kit.sealed(draw(generated_containers()))
    files = {
        draw(st.sampled_from(["photo.jpg", "\u202egpj.exe", "a/../../b.txt", "x\n.pdf"])):
        draw(st.binary(max_size=2000))
        for _ in range(draw(st.integers(0, 2)))
    }
    lang = draw(st.sampled_from(["ar", "en", "fr", "fa", "xx"]))
    plaintext = container(draw(hostile_fields()), files, lang=lang)
    to = [str(kit.stranger.to_public())] if kind == "stranger" else None
    return encrypt_bytes(plaintext, to or [kit.recipient(0), kit.recipient(1)])


def disk_usage(root: Path) -> dict[str, int]:
    """Every file under `root` and the bytes it really occupies on disk (sparse or not)."""
    return {
        str(path.relative_to(root)): max(path.stat().st_size, path.stat().st_blocks * 512)
        for path in root.rglob("*")
        if path.is_file()
    }


def allocated(path: Path) -> int:
    """Bytes of data a file really holds (a sparse file's holes do not count)."""
    return min(path.stat().st_size, path.stat().st_blocks * 512)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_no_hostile_bundle_crashes_escapes_or_outgrows_what_arrived(
    tmp_path_factory, capsys, data
):
    root = tmp_path_factory.mktemp("reviewer")
    kit = Kit(root / "keys")
    kit.directory.mkdir()
    identity = kit.identity_file()
    blobs = data.draw(st.lists(hostile_blob(kit), min_size=1, max_size=4), label="blobs")
    bundle = kit.bundle(blobs)
    if data.draw(st.booleans(), label="cut short"):
        raw = bundle.read_bytes()
        bundle.write_bytes(raw[: data.draw(st.integers(0, len(raw)), label="cut at")])
    arrived = bundle.stat().st_size
    bundle_digest = hashlib.sha256(bundle.read_bytes()).hexdigest()
    cases = root / "cases"
    outputs = root / "out"
    outputs.mkdir()
    before = set(disk_usage(root))

    code, out, err = run(capsys, "review", "import", str(bundle), "--identity", str(identity),
                         "--cases", str(cases))
    assert code in IMPORT_STATUSES, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert_terminal_inert(out)
    assert_terminal_inert(err.replace("\r", ""))

    ids = sorted(p.name for p in cases.iterdir() if p.is_dir() and len(p.name) == 32
                 and set(p.name) <= set(string.hexdigits.lower())) if cases.is_dir() else []
    commands = [["list"], ["list", "--group-by-indicator"], ["stats"], ["stats", "--lang", "ar"],
                ["list", "--search", "محمد"]]
    for case_id in ids:
        commands += [["show", case_id], ["show", case_id, "--lang", "fa"], ["related", case_id]]
        commands.append(["show", case_id, "--html", "--lang", "ar",
                         "--out", str(outputs / f"{case_id}.html")])
    commands += [
        ["export", "--format", "csv", "--out", str(outputs / "cases.csv"),
         "--codebook", str(outputs / "codebook.csv")],
        ["export", "--format", "csv", "--codes", "--out", str(outputs / "codes.csv")],
        ["export", "--format", "stix2", "--out", str(outputs / "cases.stix2")],
        ["export", "--format", "html", "--lang", "fa", "--out", str(outputs / "report.html")],
    ]
    for command in commands:
        code, out, err = run(capsys, "review", *command, "--cases", str(cases))
        # 0, or 1 with one sentence when the import left no case store at all.
        assert code == 0 or (code == 1 and not ids and "case store" in err), (command, err)
        assert "Traceback" not in err and "internal error" not in err, (command, err)
        assert_terminal_inert(out)
        assert_terminal_inert(err.replace("\r", ""))

    # Nothing outside the cases folder but the outputs asked for; the bundle untouched.
    after = disk_usage(root)
    written_outside = {
        path for path in set(after) - before
        if not path.startswith(("cases/", "out/"))
    }
    assert written_outside == set()
    assert hashlib.sha256(bundle.read_bytes()).hexdigest() == bundle_digest

    # Nothing outgrows what arrived: the case folders and the quarantine hold at most the
    # bundle's bytes; the database (an index of their text) a fixed multiple of them.
    if cases.is_dir():
        records = [path for path in cases.rglob("*") if path.is_file()
                   and not path.name.startswith("cases.db")
                   and ".bundles" not in path.parts]
        assert sum(allocated(path) for path in records) <= arrived
        database = sum(allocated(path) for path in cases.glob("cases.db*"))
        assert database <= 4 * arrived + 4 * 1024 * 1024
        assert not list(cases.glob(".import-*")), "a staging folder was left behind"
    for output in outputs.iterdir():
        assert allocated(output) <= 16 * arrived + 2 * 1024 * 1024, output.name
    assert os.listdir(kit.directory) == ["reviewer.key"] or set(os.listdir(kit.directory)) == {
        "reviewer.key", "bundle.tar"}
