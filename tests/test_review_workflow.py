"""Export → import → ack → purge, end to end, with reports made through the server."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import require_tool
from helpers import Deployment, form_tokens, make_settings, receipt_from, thanked, valid_report

from intake.config import Settings
from intake.crypto.envelope import encrypt_bytes
from intake.storage import db
from intake.storage.models import Submission
from intake.web.app import build_app

MiB = 1024 * 1024


@pytest.fixture
def world(tmp_path):
    deployment = Deployment(tmp_path / "keys").setup(recipients=2)
    settings = make_settings(tmp_path / "var", deployment)
    client = build_app(settings, {"TESTING": True}).test_client()
    identity = deployment.identity_file(tmp_path / "reviewer.key", 0)
    return deployment, settings, client, identity, tmp_path


def submit(client, files=(), **fields):
    tokens = form_tokens(client.get("/en/report").get_data(as_text=True))
    data = {
        **tokens,
        **valid_report(**fields),
        "attachments": [(io.BytesIO(content), name) for name, content in files],
    }
    response = client.post("/en/report", data=data, content_type="multipart/form-data")
    assert thanked(response)
    return receipt_from(response.get_data(as_text=True))


def intake(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    env.update(
        INTAKE_DATA_DIR=str(settings.data_dir),
        INTAKE_DATABASE_URL=settings.database_url,
        INTAKE_KEYRING=str(settings.keyring_path),
        INTAKE_ADMINS=str(settings.admins_path),
    )
    return subprocess.run(
        [sys.executable, "-m", "intake", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def rows(settings):
    with db.make_session_factory(db.make_engine(settings.database_url))() as session:
        return {r.id: r.state for r in session.query(Submission).all()}


def export(settings, out: Path) -> Path:
    result = intake(settings, "export", "--out", str(out))
    assert result.returncode == 0, result.stderr
    [bundle] = sorted(out.glob("intake-export-*.tar"))
    return bundle


def test_the_whole_air_gap_cycle(world):
    deployment, settings, client, identity, tmp = world
    submit(client, narrative="first", files=[("شاشة.png", b"\x89PNG" + os.urandom(5000))])
    submit(client, narrative="second", country="IR")
    submit(client, narrative="third")
    bundle = export(settings, tmp / "usb")
    assert set(rows(settings).values()) == {"exported"}
    again = intake(settings, "export", "--out", str(tmp / "usb"))
    assert again.returncode == 0 and "Nothing new" in again.stderr
    assert len(list((tmp / "usb").glob("*.tar"))) == 1

    with tarfile.open(bundle) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())
    assert names[0] == "manifest.json" and manifest["format"] == "intake-export/v1"
    # Each report came with a receipt: which source sent what is in threads.age, encrypted.
    assert names[1] == "threads.age" and set(manifest["threads"]) == {"size", "sha256"}
    assert sorted(names[2:]) == sorted(
        f"submissions/{e['id']}.age" for e in manifest["submissions"]
    )

    cases = tmp / "cases"
    imported = intake(
        settings,
        "review",
        "import",
        str(bundle),
        "--identity",
        str(identity),
        "--cases",
        str(cases),
    )
    assert imported.returncode == 0, imported.stderr
    assert "3 added" in imported.stderr
    reimported = intake(
        settings,
        "review",
        "import",
        str(bundle),
        "--identity",
        str(identity),
        "--cases",
        str(cases),
    )
    assert "0 added, 3 already" in reimported.stderr
    case_dirs = sorted(p for p in cases.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(case_dirs) == 3
    for case in case_dirs:
        assert {p.name for p in case.iterdir()} >= {"report.json", "case.json"}

    listed = intake(settings, "review", "list", "--cases", str(cases))
    assert listed.returncode == 0 and len(listed.stdout.strip().splitlines()) == 4
    only_iran = intake(settings, "review", "list", "--cases", str(cases), "--country", "IR")
    assert len(only_iran.stdout.strip().splitlines()) == 2
    with_file = next(c for c in case_dirs if (c / "attachments").exists())
    shown = intake(settings, "review", "show", with_file.name, "--cases", str(cases))
    assert "may be malware" in shown.stdout and "Dangerzone" in shown.stdout
    assert "شاشة.png" in shown.stdout

    for fmt in ("csv", "stix2", "html"):
        out = tmp / f"export.{fmt}"
        exported = intake(settings, "review", "export", "--format", fmt, "--cases", str(cases),
                          "--out", str(out))
        assert exported.returncode == 0, exported.stderr
    assert len(list(csv.DictReader(io.StringIO((tmp / "export.csv").read_text())))) == 3
    assert json.loads((tmp / "export.stix2").read_text())["type"] == "bundle"
    report = (tmp / "export.html").read_text()
    assert "<svg" in report and "<script" not in report
    stats = intake(settings, "review", "stats", "--cases", str(cases))
    assert stats.returncode == 0 and "Cases: 3" in stats.stdout

    ack_path = tmp / "usb" / "ack.json"
    acked = intake(
        settings, "review", "ack", str(bundle), "--cases", str(cases), "--out", str(ack_path)
    )
    assert acked.returncode == 0, acked.stderr
    ack = json.loads(ack_path.read_text())
    assert ack["format"] == "intake-ack/v2" and len(ack["submissions"]) == 3
    assert ack["reviewer"] == "r0" and [p["recipient_id"] for p in ack["proofs"]] == ["r0"]
    assert ack["replies"] == []
    purged = intake(settings, "purge", "--ack", str(ack_path))
    assert purged.returncode == 0, purged.stderr
    assert "3 deleted, 0 waiting for more reviewers, 0 kept" in purged.stderr
    assert "Proven reviewers: r0." in purged.stderr
    assert rows(settings) == {} and list(settings.blob_dir.glob("*.age")) == []
    twice = intake(settings, "purge", "--ack", str(ack_path))
    assert twice.returncode == 1
    assert "0 deleted, 0 waiting for more reviewers, 3 kept" in twice.stderr


def test_the_age_tool_still_opens_an_exported_submission(world):
    """Interoperability holds through export: `age -d -i KEY blob | tar -x` gives the report."""
    age = require_tool("age")
    _, settings, client, identity, tmp = world
    submit(client, narrative="read me with age", files=[("note.txt", b"plain words")])
    bundle = export(settings, tmp / "usb")
    with tarfile.open(bundle) as tar:
        [member] = [m for m in tar.getmembers() if m.name.startswith("submissions/")]
        blob = tar.extractfile(member).read()
    (tmp / "blob.age").write_bytes(blob)
    opened = subprocess.run(
        [age, "-d", "-i", str(identity), str(tmp / "blob.age")], capture_output=True, timeout=60
    )
    assert opened.returncode == 0, opened.stderr
    with tarfile.open(fileobj=io.BytesIO(opened.stdout)) as container:
        files = {m.name: container.extractfile(m).read() for m in container.getmembers()}
    report = json.loads(files["report.json"])
    assert report["fields"]["narrative"] == "read me with age"
    [path] = [name for name in files if name.startswith("attachments/")]
    assert files[path] == b"plain words"


def test_purge_never_deletes_what_was_not_exported_or_does_not_match(world):
    _, settings, client, _, tmp = world
    submit(client)
    [submission_id] = rows(settings)
    sha = "0" * 64
    ack = tmp / "ack.json"
    ack.write_text(
        json.dumps(
            {"format": "intake-ack/v1", "submissions": [{"id": submission_id, "sha256": sha}]}
        )
    )
    result = intake(settings, "purge", "--ack", str(ack), "--accept-unproven")
    assert result.returncode == 1 and "not exported" in result.stderr
    export(settings, tmp / "usb")
    result = intake(settings, "purge", "--ack", str(ack), "--accept-unproven")
    assert result.returncode == 1 and "hash does not match" in result.stderr
    assert rows(settings) == {submission_id: "exported"}


def rewrite_bundle(bundle: Path, target: Path, change) -> Path:
    with tarfile.open(bundle) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    members = change(members)
    with tarfile.open(target, "w") as out:
        for member, data in members:
            member.size = len(data)
            out.addfile(member, io.BytesIO(data))
    return target


def test_a_changed_byte_is_quarantined_and_the_rest_imported(world):
    _, settings, client, identity, tmp = world
    submit(client, narrative="one")
    submit(client, narrative="two")
    bundle = export(settings, tmp / "usb")

    def flip(members):
        member, data = members[-1]  # a submission (members[1] is threads.age)
        members[-1] = (member, data[:-100] + bytes([data[-100] ^ 1]) + data[-99:])
        return members

    bad = rewrite_bundle(bundle, tmp / "bad.tar", flip)
    result = intake(
        settings,
        "review",
        "import",
        str(bad),
        "--identity",
        str(identity),
        "--cases",
        str(tmp / "cases"),
    )
    assert (
        result.returncode == 4 and "1 added" in result.stderr and "1 quarantined" in result.stderr
    )
    assert len(list((tmp / "cases" / ".quarantine").glob("*.age"))) == 1


@pytest.mark.parametrize("damage", ["missing", "extra"])
def test_a_bundle_with_a_missing_or_extra_file_is_refused_whole(world, damage):
    _, settings, client, identity, tmp = world
    submit(client)
    submit(client)
    bundle = export(settings, tmp / "usb")

    def change(members):
        if damage == "missing":
            return members[:-1]
        extra = tarfile.TarInfo("submissions/" + "f" * 32 + ".age")
        return [*members, (extra, b"junk")]

    bad = rewrite_bundle(bundle, tmp / "bad.tar", change)
    result = intake(
        settings,
        "review",
        "import",
        str(bad),
        "--identity",
        str(identity),
        "--cases",
        str(tmp / "cases"),
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert ("lacks" if damage == "missing" else "does not list") in result.stderr
    assert not (tmp / "cases").exists() or not any(
        p for p in (tmp / "cases").iterdir() if not p.name.startswith(".")
    )


def test_a_wrong_identity_imports_nothing(world, reviewer_keys):
    _, settings, client, _, tmp = world
    submit(client)
    bundle = export(settings, tmp / "usb")
    stranger = tmp / "stranger.key"
    stranger.write_text(f"{reviewer_keys[2]}\n")
    result = intake(
        settings,
        "review",
        "import",
        str(bundle),
        "--identity",
        str(stranger),
        "--cases",
        str(tmp / "cases"),
    )
    assert result.returncode == 1 and "cannot open" in result.stderr
    assert not any(p for p in (tmp / "cases").iterdir() if not p.name.startswith("."))


def hostile_tar(kind: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        report = json.dumps(
            {"schema": "intake-report/v1", "lang": "en", "fields": {}, "attachments": []}
        ).encode()
        info = tarfile.TarInfo("report.json")
        info.size = len(report)
        tar.addfile(info, io.BytesIO(report))
        if kind == "traversal":
            evil = tarfile.TarInfo("attachments/../../evil")
            evil.size = 4
            tar.addfile(evil, io.BytesIO(b"evil"))
        elif kind == "symlink":
            link = tarfile.TarInfo("attachments/01-x")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(link)
        else:
            for i in range(10_000):
                tar.addfile(tarfile.TarInfo(f"attachments/{i:05d}"), io.BytesIO(b""))
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["traversal", "symlink", "many"])
def test_hostile_containers_are_quarantined_and_nothing_escapes(world, kind):
    deployment, settings, client, identity, tmp = world
    submit(client, narrative="good one")
    bundle = export(settings, tmp / "usb")
    blob = encrypt_bytes(hostile_tar(kind), deployment.current().active_recipients())

    def add_hostile(members):
        manifest_member, manifest = members[0]
        document = json.loads(manifest)
        import hashlib

        hostile_id = "e" * 32
        document["submissions"].append(
            {
                "id": hostile_id,
                "received_on": "2026-11-28",
                "size": len(blob),
                "keyring_version": 1,
                "sha256": hashlib.sha256(blob).hexdigest(),
            }
        )
        members[0] = (manifest_member, json.dumps(document).encode())
        return [*members, (tarfile.TarInfo(f"submissions/{hostile_id}.age"), blob)]

    bad = rewrite_bundle(bundle, tmp / "hostile.tar", add_hostile)
    cases = tmp / "cases"
    result = intake(
        settings, "review", "import", str(bad), "--identity", str(identity), "--cases", str(cases)
    )
    assert result.returncode == 4 and "1 added" in result.stderr and "1 refused" in result.stderr
    assert not (tmp / "evil").exists() and not (cases / "evil").exists()
    assert not (cases / ("e" * 32)).exists()


def test_report_html_escapes_scripts_and_shows_bidi_controls(world):
    _, settings, client, identity, tmp = world
    hostile = "<script>alert(1)</script> \u202egnp.exe <img src=x onerror=alert(2)>"
    submit(
        client,
        narrative=hostile,
        contact_handle="\u202e@evil",
        notification_text=hostile,
        files=[("<b>x<i>\u202egpj.exe", b"MZ")],
    )
    bundle = export(settings, tmp / "usb")
    cases = tmp / "cases"
    assert (
        intake(
            settings,
            "review",
            "import",
            str(bundle),
            "--identity",
            str(identity),
            "--cases",
            str(cases),
        ).returncode
        == 0
    )
    [case] = [p for p in cases.iterdir() if not p.name.startswith(".") and p.is_dir()]
    page = tmp / "case.html"
    shown = intake(settings, "review", "show", case.name[:8], "--html", "--out", str(page),
                   "--cases", str(cases))
    assert shown.returncode == 0, shown.stderr
    html = page.read_text()
    assert "<script" not in html.lower().replace("&lt;script", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    assert "\u202e" not in html and "[U+202E]" in html
    assert '<dd dir="ltr" class="ltr">[U+202E]@evil</dd>' in html  # contact handle, left to right
    assert html.count('<dd dir="auto">') >= 10
    assert "&lt;b&gt;x&lt;i&gt;gpj.exe" in html  # the name, escaped, its U+202E stripped
