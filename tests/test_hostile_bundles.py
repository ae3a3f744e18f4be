"""Hostile bundles and return files get exactly the outcome the corpus gives them.

The reviewer's side: every bundle of `hostile.bundles.BUNDLES` is imported
with the real command; the exit status, the sentence, the counts, what is
filed and what is set aside are pinned, nothing is written outside the case
store, and nothing on disk outgrows what arrived. The exit-status table of
`intake review import` is tested row by row, and kept the same in --help and
docs/reviewers.md.

The server's side: a real export (SQLite), real imports by two reviewers,
then every return file of `hostile.bundles.ACKS` fed to `intake purge`:
forged, lifted and unknown proofs purge nothing; the quorum waits for
distinct proven reviewers; a file fed twice counts once.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import secrets
import sqlite3
import tarfile
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from helpers import ROOT, Deployment, make_settings
from hostile.bundles import (
    ACKS,
    BUNDLES,
    AckWorld,
    Kit,
    Member,
    container,
    gnu_sparse_bundle,
    junk_age_file,
    raw_container,
    tar_bytes,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, event, insert, select
from test_storage import clean_postgres, postgres_url_or_skip

from intake.cli import main
from intake.crypto.envelope import encrypt_bytes
from intake.errors import IntakeError
from intake.review.importer import import_bundle
from intake.storage import db
from intake.storage.blobs import FilesystemBlobStore
from intake.storage.models import Base, ExportChallenge, Submission, SubmissionAck
from intake.storage.submissions import record_submission
from intake.transfer.ackfile import Opening
from intake.transfer.server_side import export_bundles

DAY = date(2026, 11, 28)


# -- running the command in this process ------------------------------------------------------


@pytest.fixture
def intake(monkeypatch, capsys):
    """Run `intake ARGS` in-process with `env` as its only INTAKE_* settings."""

    def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        for name in [k for k in os.environ if k.startswith("INTAKE_")]:
            monkeypatch.delenv(name)
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main(list(args))
        captured = capsys.readouterr()
        return exited.value.code, captured.out, captured.err

    return run


#: What the case store's database takes before it holds a case: its schema (about 128 KiB
#: since schema 3 added the follow-up channel's tables), and a page or two beyond.
DATABASE_ALLOWANCE = 160 * 1024


def disk_usage(path: Path) -> int:
    """Bytes the file system really holds for `path` (allocated blocks, as du counts)."""
    if not path.exists():
        return 0
    total = 0
    for item in [path, *path.rglob("*")]:
        total += item.lstat().st_blocks * 512
    return total


def case_dirs(cases: Path) -> list[Path]:
    if not cases.exists():
        return []
    return [p for p in cases.iterdir() if re.fullmatch(r"[0-9a-f]{32}", p.name)]


def set_aside(cases: Path) -> list[Path]:
    quarantine = cases / ".quarantine"
    return sorted(quarantine.glob("*.age")) if quarantine.exists() else []


def everything_outside(root: Path, cases: Path) -> set[Path]:
    """Every path under `root` but the case store and what it holds."""
    return {p for p in root.rglob("*") if p != cases and cases not in p.parents}


@pytest.fixture
def kit(tmp_path) -> Kit:
    (tmp_path / "kit").mkdir()
    return Kit(tmp_path / "kit")


# -- the reviewer's side: every hostile bundle -------------------------------------------------


@pytest.mark.parametrize("name", list(BUNDLES))
def test_each_hostile_bundle_gets_its_exact_outcome(name, kit, tmp_path, intake):
    build, expect = BUNDLES[name]
    bundle = build(kit)
    identity = kit.identity_file(kit.stranger if expect.identity == "stranger" else None)
    cases = tmp_path / "cases"
    before = everything_outside(tmp_path, cases)

    status, out, err = intake(
        "review", "import", str(bundle), "--identity", str(identity), "--cases", str(cases)
    )

    assert status == expect.exit_status, err
    assert expect.message in err, err
    assert "Traceback" not in err and "internal error" not in err
    assert "\x1b" not in err and "\x07" not in err  # hostile text reaches the terminal escaped
    assert len(err.strip().splitlines()) >= 1 and out == ""
    assert len(case_dirs(cases)) == (expect.added if expect.cases is None else expect.cases)
    assert len(set_aside(cases)) == expect.quarantined + expect.refused
    if status == 1:
        assert "intake: " in err and len(err.strip().splitlines()) == 1
        assert not case_dirs(cases) and not set_aside(cases)
    else:
        assert f"{expect.added} added" in err
        assert f"{expect.not_for_these_identities} not for these identities" in err
        assert f"{expect.quarantined} quarantined, {expect.refused} refused" in err
    # Nothing was written outside the case store, and nothing there outgrew what arrived.
    assert everything_outside(tmp_path, cases) == before
    assert disk_usage(cases) <= (2 * bundle.stat().st_size + 64 * 1024 * expect.added
                                 + DATABASE_ALLOWANCE)
    # What is kept aside is the ciphertext exactly as it arrived, and a note of why.
    for kept in set_aside(cases):
        with tarfile.open(bundle) as tar:
            arrived = tar.extractfile(f"submissions/{kept.name}").read()
        assert kept.read_bytes() == arrived
        assert kept.with_suffix(".txt").read_text().strip()


def test_a_junk_submission_first_in_the_bundle_blocks_none_of_the_reports(kit, tmp_path, intake):
    """Issue 10, item 1: it used to stop the import at its first blob, with nothing imported."""
    bundle = kit.bundle([junk_age_file(), kit.report("first real"), kit.report("second real")])
    cases = tmp_path / "cases"
    status, _, err = intake(
        "review", "import", str(bundle), "--identity", str(kit.identity_file()),
        "--cases", str(cases),
    )
    assert status == 3, err
    assert "2 added, 0 already in the case store, 1 not for these identities" in err
    narratives = sorted(
        json.loads((case / "report.json").read_text())["fields"]["narrative"]
        for case in case_dirs(cases)
    )
    assert narratives == ["first real", "second real"]
    assert not (cases / ".quarantine").exists()  # nothing of the junk was copied


def test_a_2_5_kb_bundle_with_a_sparse_member_of_200_mib_leaves_nothing_large(
    kit, tmp_path, intake
):
    """Issue 10, item 2: the member's expanded size used to be written to .quarantine."""
    bundle = gnu_sparse_bundle(kit)
    assert bundle.stat().st_size == 2560
    cases = tmp_path / "cases"
    status, _, err = intake(
        "review", "import", str(bundle), "--identity", str(kit.identity_file()),
        "--cases", str(cases),
    )
    assert status == 1 and "sparse" in err
    assert disk_usage(cases) < 64 * 1024
    assert disk_usage(tmp_path) < 1024 * 1024


def test_what_an_identity_cannot_open_is_not_copied_even_when_large(kit, tmp_path):
    """A junk blob of 20 MiB (past the in-memory bound) leaves no spill file behind."""
    bundle = kit.bundle([junk_age_file(20 * 1024 * 1024), kit.report("real")])
    cases = tmp_path / "cases"
    result = import_bundle(bundle, [kit.reviewers[0]], cases)
    assert len(result.added) == 1 and len(result.not_for_these_identities) == 1
    assert disk_usage(cases) < 96 * 1024 + DATABASE_ALLOWANCE


# -- the exit-status table ---------------------------------------------------------------------

EXIT_ROWS = {
    0: "every submission was imported, or was already in the case store",
    1: "nothing was imported",
    2: "the command line is wrong",
    3: "some submissions are not for these identities",
    4: "some submissions were quarantined (damaged) or refused (broke the rules)",
}


@pytest.mark.parametrize("row", ["0 all imported", "0 already there", "1 bad bundle",
                                 "1 nothing openable", "2 usage", "3 not for these identities",
                                 "4 quarantined", "4 refused", "4 over 3"])
def test_every_row_of_the_import_exit_table(row, kit, tmp_path, intake):
    cases = tmp_path / "cases"
    reviewer = kit.identity_file()
    args = ["--identity", str(reviewer), "--cases", str(cases)]
    if row.startswith("0 all"):
        bundle = kit.bundle([kit.report("a"), kit.report("b")])
    elif row.startswith("0 already"):
        bundle = kit.bundle([kit.report("a")])
        assert intake("review", "import", str(bundle), *args)[0] == 0
    elif row == "1 bad bundle":
        bundle = BUNDLES["cut inside a blob"][0](kit)
    elif row == "1 nothing openable":
        bundle = kit.bundle([kit.report("a")])
        args[1] = str(kit.identity_file(kit.stranger, "stranger.key"))
    elif row == "2 usage":
        bundle = kit.bundle([kit.report("a")])
        args = ["--cases", str(cases)]  # no --identity
    elif row.startswith("3"):
        bundle = kit.bundle([junk_age_file(), kit.report("a")])
    elif row == "4 quarantined":
        bundle = BUNDLES["a hash that changed"][0](kit)
    elif row == "4 refused":
        bundle = BUNDLES["categories is a number"][0](kit)
    else:  # junk and a damaged one: the more serious outcome wins
        manifest, members = kit.parts([junk_age_file(), kit.report("a"), kit.report("b")])
        manifest["submissions"][1]["sha256"] = "0" * 64
        bundle = kit.write(manifest, members)
    status, _, err = intake("review", "import", str(bundle), *args)
    assert status == int(row[0]), err
    assert "Traceback" not in err


def test_the_exit_table_is_the_same_in_help_and_in_the_reviewers_guide(intake):
    status, out, _ = intake("review", "import", "--help")
    assert status == 0
    guide = (ROOT / "docs" / "reviewers.md").read_text()
    help_text = " ".join(out.split())
    for code, meaning in EXIT_ROWS.items():
        assert f"{code} {meaning}" in help_text, (code, out)
        assert re.search(rf"\| *`?{code}`? *\| *{re.escape(meaning)}", guide), code


# -- quarantine stays bounded ------------------------------------------------------------------


def test_a_later_intact_import_removes_what_the_quarantine_kept(kit, tmp_path):
    blob = kit.report("arrived damaged, then intact")
    manifest, members = kit.parts([blob])
    manifest["submissions"][0]["sha256"] = "0" * 64
    damaged = kit.write(manifest, members, name="damaged.tar")
    cases = tmp_path / "cases"
    first = import_bundle(damaged, [kit.reviewers[0]], cases)
    [(submission_id, _)] = first.quarantined
    assert {p.name for p in (cases / ".quarantine").iterdir()} == {
        f"{submission_id}.age", f"{submission_id}.txt"}

    manifest["submissions"][0]["sha256"] = hashlib.sha256(blob).hexdigest()
    intact = kit.write(manifest, members, name="intact.tar")
    second = import_bundle(intact, [kit.reviewers[0]], cases)
    assert second.added == [submission_id]
    assert list((cases / ".quarantine").iterdir()) == []


def test_the_same_damaged_submission_twice_is_kept_once(kit, tmp_path):
    bundle = BUNDLES["a payload altered"][0](kit)
    cases = tmp_path / "cases"
    import_bundle(bundle, [kit.reviewers[0]], cases)
    once = disk_usage(cases / ".quarantine")
    import_bundle(bundle, [kit.reviewers[0]], cases)
    assert disk_usage(cases / ".quarantine") == once and len(set_aside(cases)) == 1


# -- a property: any cut or flipped byte ------------------------------------------------------


@pytest.fixture(scope="module")
def sample_bundle(tmp_path_factory) -> tuple[bytes, Kit]:
    kit = Kit(tmp_path_factory.mktemp("sample"))
    bundle = kit.bundle([kit.report("one", files={"a.bin": os.urandom(3000)}),
                         junk_age_file(500), kit.report("two")])
    return bundle.read_bytes(), kit


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_cut_or_flipped_byte_ends_in_a_sentence_or_an_import_and_stays_small(
    data, sample_bundle, tmp_path
):
    original, kit = sample_bundle
    mutated = bytearray(original)
    if data.draw(st.booleans(), label="cut"):
        mutated = mutated[: data.draw(st.integers(0, len(mutated) - 1), label="at")]
    for _ in range(data.draw(st.integers(0, 3), label="flips")):
        if mutated:
            where = data.draw(st.integers(0, len(mutated) - 1), label="where")
            mutated[where] ^= data.draw(st.integers(1, 255), label="xor")
    work = tmp_path / secrets.token_hex(4)
    work.mkdir()
    bundle = work / "bundle.tar"
    bundle.write_bytes(bytes(mutated))
    cases = work / "cases"
    try:
        result = import_bundle(bundle, [kit.reviewers[0]], cases)
    except IntakeError as exc:
        assert "\n" not in str(exc).strip()
    else:
        assert len(result.added) <= 2
    assert everything_outside(work, cases) == {bundle}
    assert disk_usage(cases) <= 2 * len(mutated) + 2 * 64 * 1024 + DATABASE_ALLOWANCE


# -- the server's side: proofs, quorum, forged and replayed return files ----------------------


class Server:
    """A deployment with two reviewers (r0, r1), SQLite, and reports put in as blobs."""

    def __init__(self, tmp: Path, database_url: str | None = None):
        self.deployment = Deployment(tmp / "keys").setup(recipients=2)
        self.settings = make_settings(tmp / "var", self.deployment, database_url=database_url)
        self.store = FilesystemBlobStore(self.settings.blob_dir)
        self.sessions = db.make_session_factory(db.make_engine(self.settings.database_url))
        self.tmp = tmp

    @property
    def env(self) -> dict[str, str]:
        return {
            "INTAKE_DATA_DIR": str(self.settings.data_dir),
            "INTAKE_DATABASE_URL": self.settings.database_url,
            "INTAKE_KEYRING": str(self.deployment.keyring_path),
            "INTAKE_ADMINS": str(self.deployment.admins_path),
        }

    def receive(self, narrative: str) -> str:
        from hostile.bundles import container

        submission_id = secrets.token_hex(16)
        blob = encrypt_bytes(container({"narrative": narrative}),
                             self.deployment.current().active_recipients())
        with self.store.writer(submission_id, DAY) as fh:
            fh.write(blob)
        record_submission(self.sessions, self.store, submission_id=submission_id, day=DAY,
                          keyring_version=self.deployment.current().version)
        return submission_id

    def export(self, everything: bool = False) -> Path:
        out = self.tmp / f"usb-{secrets.token_hex(3)}"
        [(path, _)] = export_bundles(self.settings, out, everything=everything).bundles
        return path

    def identity(self, index: int) -> Path:
        return self.deployment.identity_file(self.tmp / f"r{index}.key", index)

    def rows(self) -> dict[str, str]:
        with self.sessions() as session:
            return {r.id: r.state for r in session.scalars(select(Submission))}

    def acks(self) -> set[tuple[str, str]]:
        with self.sessions() as session:
            return set(session.execute(select(SubmissionAck.submission_id,
                                              SubmissionAck.recipient_id)).all())


def manifest_of(bundle: Path) -> dict:
    with tarfile.open(bundle) as tar:
        return json.load(tar.extractfile("manifest.json"))


def opening(cases: Path, bundle_id: str, recipient_id: str) -> Opening:
    record = json.loads((cases / ".bundles" / f"{bundle_id}.json").read_text())
    [entry] = [o for o in record["openings"] if o["recipient_id"] == recipient_id]
    return Opening(bundle_id, recipient_id, base64.b64decode(entry["challenge"]))


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request, tmp_path) -> Server:
    """On SQLite always; on PostgreSQL when INTAKE_TEST_DATABASE_URL is set."""
    if request.param == "sqlite":
        return Server(tmp_path)
    return Server(tmp_path, clean_postgres(postgres_url_or_skip()))


@pytest.fixture
def ack_world(server, intake) -> AckWorld:
    """Two reports exported in one bundle, imported by r0 and by r1; a second bundle too."""
    server.receive("one")
    server.receive("two")
    bundle = server.export()
    for index in (0, 1):
        status, _, err = intake("review", "import", str(bundle), "--identity",
                                str(server.identity(index)), "--cases",
                                str(server.tmp / f"cases-r{index}"))
        assert status == 0, err
    manifest = manifest_of(bundle)
    server.receive("three")
    other = manifest_of(server.export())["bundle"]
    return AckWorld(
        manifest=manifest,
        openings={f"r{i}": opening(server.tmp / f"cases-r{i}", manifest["bundle"], f"r{i}")
                  for i in (0, 1)},
        other_bundle=other,
    )


@pytest.mark.parametrize("name", list(ACKS))
def test_each_hostile_return_file_gets_its_exact_outcome(name, server, ack_world, intake):
    build, expect = ACKS[name]
    ack = server.tmp / "ack.json"
    ack.write_text(json.dumps(build(ack_world)))
    args = ["purge", "--ack", str(ack), "--quorum", str(expect.quorum)]
    if expect.accept_unproven:
        args.append("--accept-unproven")
    status, _, err = intake(*args, env=server.env)
    assert status == expect.exit_status, err
    assert expect.message in err, err
    assert "Traceback" not in err and "\x1b" not in err
    bundle_ids = {e["id"] for e in ack_world.manifest["submissions"]}
    assert len(bundle_ids - set(server.rows())) == expect.deleted
    assert not any(server.store.exists(i) for i in bundle_ids - set(server.rows()))
    assert {s for s, _ in server.acks()} <= set(server.rows())  # acks go with their submission


def test_a_forged_ack_with_the_hashes_of_the_manifest_purges_nothing(server, ack_world, intake):
    forged = {"format": "intake-ack/v2", "reviewer": "r0", "proofs": [], "replies": [],
              "submissions": [{"id": e["id"], "sha256": e["sha256"]}
                              for e in ack_world.manifest["submissions"]]}
    ack = server.tmp / "forged.json"
    ack.write_text(json.dumps(forged))
    before = server.rows()
    status, _, err = intake("purge", "--ack", str(ack), env=server.env)
    assert status == 1 and "no valid reviewer proof" in err and "nothing was purged" in err
    assert server.rows() == before and server.acks() == set()
    assert all(server.store.exists(i) for i in before)


def test_quorum_two_keeps_the_blob_until_a_second_reviewer_proves_an_ack(
    server, ack_world, intake
):
    ids = [e["id"] for e in ack_world.manifest["submissions"]]
    from_a = server.tmp / "ack-a.json"
    from_b = server.tmp / "ack-b.json"
    for cases, path in ((server.tmp / "cases-r0", from_a), (server.tmp / "cases-r1", from_b)):
        bundle = next(b for b in (server.tmp).glob("usb-*/*.tar")
                      if manifest_of(b)["bundle"] == ack_world.manifest["bundle"])
        status, _, err = intake("review", "ack", str(bundle), "--cases", str(cases),
                                "--out", str(path))
        assert status == 0, err

    env = {**server.env, "INTAKE_ACK_QUORUM": "2"}
    status, _, err = intake("purge", "--ack", str(from_a), env=env)
    assert status == 0, err
    assert "0 deleted, 2 waiting for more reviewers, 0 kept" in err
    assert f"waiting {ids[0]}: acked by 1 of 2 reviewers" in err
    assert all(server.rows()[i] == "exported" and server.store.exists(i) for i in ids)
    # The same reviewer again is the same reviewer: still one.
    status, _, err = intake("purge", "--ack", str(from_a), env=env)
    assert status == 0 and "2 waiting for more reviewers" in err
    assert server.acks() == {(i, "r0") for i in ids}

    status, _, export_err = intake("export", "--out", str(server.tmp / "again"), env=env)
    assert status == 0, export_err
    assert "Still on the server: 3 exported and not yet purged" in export_err
    assert "2 need 1 more reviewer ack(s)" in export_err
    assert "1 need 2 more reviewer ack(s)" in export_err
    assert "1 not yet acked by r0" in export_err and "3 not yet acked by r1" in export_err

    status, _, err = intake("purge", "--ack", str(from_b), env=env)
    assert status == 0, err
    assert "2 deleted, 0 waiting for more reviewers, 0 kept" in err
    assert not any(i in server.rows() or server.store.exists(i) for i in ids)
    assert not any(s in ids for s, _ in server.acks())


def test_the_quorum_flag_wins_over_the_environment_and_bad_values_get_a_sentence(
    server, ack_world, intake
):
    ack = server.tmp / "ack.json"
    ack.write_text(json.dumps(ack_world.signed("r0")))
    for value in ("0", "two", "65"):
        status, _, err = intake("purge", "--ack", str(ack), "--quorum", value, env=server.env)
        assert status == 1 and "ack quorum must be a whole number from 1 to 64" in err
        status, _, err = intake("purge", "--ack", str(ack),
                                env={**server.env, "INTAKE_ACK_QUORUM": value})
        assert status == 1 and "INTAKE_ACK_QUORUM" in err
    status, _, err = intake("export", "--out", str(server.tmp / "o"),
                            env={**server.env, "INTAKE_ACK_QUORUM": "3"})
    assert status == 0 and "the quorum is 3 but the keyring has only 2 active" in err
    status, _, err = intake("purge", "--ack", str(ack), "--quorum", "1",
                            env={**server.env, "INTAKE_ACK_QUORUM": "3"})
    assert status == 0 and "2 deleted" in err


def test_an_ack_without_a_bundle_acks_nothing_and_still_proves_who_wrote_it(
    server, ack_world, intake
):
    status, out, err = intake("review", "ack", "--cases", str(server.tmp / "cases-r1"))
    assert status == 0, err
    document = json.loads(out)
    assert document["submissions"] == [] and document["replies"] == []
    assert document["reviewer"] == "r1"
    ack = server.tmp / "empty.json"
    ack.write_text(out)
    before = server.rows()
    status, _, err = intake("purge", "--ack", str(ack), env=server.env)
    assert status == 0 and "Proven reviewers: r1." in err and "0 deleted" in err
    assert server.rows() == before


def test_the_server_keeps_no_challenge_only_its_public_key(server, ack_world):
    with server.sessions() as session:  # every value of every row, as text
        stored = "\n".join(
            repr(tuple(row))
            for table in Base.metadata.sorted_tables
            for row in session.execute(select(table))
        ).encode()
    if server.settings.database_url.startswith("sqlite:///"):  # and the files themselves
        database = Path(server.settings.database_url.removeprefix("sqlite:///"))
        stored += b"".join(p.read_bytes() for p in database.parent.glob("intake.db*"))
    for opened in ack_world.openings.values():
        for form in (opened.challenge, opened.challenge.hex().encode(),
                     base64.b64encode(opened.challenge)):
            assert form not in stored
    with server.sessions() as session:
        rows = session.scalars(select(ExportChallenge)).all()
    today = datetime.now(UTC).date()
    assert {(r.recipient_id, r.exported_on == today) for r in rows} <= {
        ("r0", True), ("r1", True)} and len(rows) == 4  # two bundles, two reviewers each


def test_the_manifest_holds_nothing_that_links_two_submissions(server, ack_world):
    manifest = ack_world.manifest
    assert set(manifest) == {"format", "bundle", "submissions", "challenges"}
    assert all(set(e) == {"id", "received_on", "size", "sha256", "keyring_version"}
               for e in manifest["submissions"])
    assert {c["recipient_id"] for c in manifest["challenges"]} == {"r0", "r1"}
    assert all(set(c) == {"recipient_id", "ciphertext"} for c in manifest["challenges"])


# -- export --all, and an export of 50,000 waiting rows ---------------------------------------


def test_export_all_exports_again_what_was_exported_and_not_purged(server, intake):
    first_id = server.receive("lost on a USB stick")
    server.export()
    second_id = server.receive("new")
    status, _, err = intake("export", "--out", str(server.tmp / "all"), "--all", env=server.env)
    assert status == 0, err
    [bundle] = (server.tmp / "all").glob("*.tar")
    assert {e["id"] for e in manifest_of(bundle)["submissions"]} == {first_id, second_id}
    assert set(server.rows().values()) == {"exported"}
    status, _, err = intake("export", "--out", str(server.tmp / "none"), env=server.env)
    assert status == 0 and "Nothing new to export" in err and "--all" in err


@pytest.fixture
def sqlite_default_variable_limit():
    """SQLite's own default bound on variables per statement (32,766), on every connection.

    Debian builds SQLite with a far higher bound (250,000), which would hide
    a statement that breaks on other systems.
    """

    def limit(connection, _record) -> None:
        if isinstance(connection, sqlite3.Connection):
            connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32_766)

    event.listen(Engine, "connect", limit)
    yield
    event.remove(Engine, "connect", limit)


@pytest.mark.slow
def test_export_of_50000_waiting_rows_stays_within_sqlite_s_variable_limit(
    tmp_path, intake, sqlite_default_variable_limit
):
    server = Server(tmp_path)
    count = 50_000
    ids = [secrets.token_hex(16) for _ in range(count)]
    blob = junk_age_file(100)
    for submission_id in ids:  # tiny blobs, written directly: the export is what is tested
        server.store.path(submission_id).write_bytes(blob)
    with server.sessions() as session, session.begin():
        session.execute(insert(Submission), [
            {"id": i, "received_on": DAY, "size": len(blob), "keyring_version": 1,
             "state": "received"} for i in ids])
    status, _, err = intake("export", "--out", str(server.tmp / "usb"), env=server.env)
    assert status == 0, err
    [bundle] = (server.tmp / "usb").glob("*.tar")
    assert len(manifest_of(bundle)["submissions"]) == count
    assert set(server.rows().values()) == {"exported"} and len(server.rows()) == count


def test_hand_made_members_really_are_what_they_claim(tmp_path):
    """The corpus's tar builder: a guard that the attacks are the attacks."""
    data = tar_bytes([Member("a", b"x" * 10), Member("b", type=tarfile.SYMTYPE, linkname="/x")])
    path = tmp_path / "t.tar"
    path.write_bytes(data)
    with tarfile.open(path) as tar:
        a, b = tar.getmembers()
    assert a.isreg() and a.size == 10 and b.issym() and b.linkname == "/x"


@pytest.mark.parametrize("kind", ["fifo", "device", "folder", "missing"])
def test_a_bundle_path_that_is_no_file_gets_a_sentence_and_never_blocks(kind, kit, tmp_path,
                                                                         intake):
    path = {"fifo": tmp_path / "fifo.tar", "device": Path("/dev/zero"),
            "folder": tmp_path, "missing": tmp_path / "nowhere.tar"}[kind]
    if kind == "fifo":
        os.mkfifo(path)  # opening it for reading would wait for a writer forever
    status, _, err = intake("review", "import", str(path), "--identity",
                            str(kit.identity_file()), "--cases", str(tmp_path / "cases"))
    if kind == "folder":  # click refuses it first, as a usage error
        assert status == 2 and "is a directory" in err
        return
    assert status == 1 and len(err.strip().splitlines()) == 1
    assert {"fifo": "not a regular file", "device": "not a regular file",
            "missing": "There is no bundle"}[kind] in err


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under `root`, by relative path (the store's database aside)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith("cases.db")}


def test_decrypting_in_worker_processes_files_exactly_what_one_process_files(kit, tmp_path):
    """Every kind of outcome, interleaved, in a bundle large enough for the pool: the same
    result lists in the same order, the same case folders byte for byte, the same set aside."""
    stranger = str(kit.stranger.to_public())
    altered = bytearray(kit.report("altered", files={"big.bin": os.urandom(100_000)}))
    altered[-200] ^= 1
    link = Member("attachments/01-x", type=tarfile.SYMTYPE, linkname="/etc/passwd")
    odd = [
        junk_age_file(),
        kit.report("theirs", to=[stranger]),
        bytes(altered),
        kit.sealed(raw_container({"schema": "intake-report/v1", "lang": "en", "fields": {},
                                  "attachments": []}, [link])),
        encrypt_bytes(container({"categories": 5}), [kit.recipient(0)]),
    ]
    blobs = []
    for i in range(24):
        blobs.append(kit.report(f"report {i}", files={f"note{i}.txt": f"file {i}".encode()}))
        if i % 5 == 0:
            blobs.append(odd[i // 5])
    bundle = kit.bundle(blobs)
    results = {}
    for workers in (1, 2):
        cases = tmp_path / f"cases-{workers}"
        results[workers] = import_bundle(bundle, [kit.reviewers[0]], cases, workers=workers)
        assert not list(cases.glob(".import-*")), "a staging folder was left behind"
    serial, parallel = results[1], results[2]
    assert len(serial.added) == 24 and len(serial.set_aside) == 3
    assert len(serial.not_for_these_identities) == 2
    assert parallel == serial
    assert _tree(tmp_path / "cases-2") == _tree(tmp_path / "cases-1")


def test_an_error_half_way_through_a_parallel_import_leaves_no_plaintext_behind(
    kit, tmp_path, monkeypatch
):
    """The workers build cases ahead of the main process; when it stops on an error, every
    staging folder they built is removed with the rest, and no case is filed."""
    from intake.review import importer

    bundle = kit.bundle([kit.report(f"report {i}") for i in range(20)])
    calls = []
    original = importer._opened

    def opened_then_fail(*args, **kwargs):
        with original(*args, **kwargs) as outcomes:
            def failing():
                for n, item in enumerate(outcomes):
                    calls.append(n)
                    if n == 10:
                        raise OSError(28, "No space left on device")
                    yield item
            yield failing()

    monkeypatch.setattr(importer, "_opened", contextlib.contextmanager(opened_then_fail))
    cases = tmp_path / "cases"
    with pytest.raises(OSError):
        import_bundle(bundle, [kit.reviewers[0]], cases, workers=2)
    assert calls and max(calls) == 10
    assert case_dirs(cases) == []
    assert [p for p in cases.iterdir() if p.name.startswith(".import-")] == []
