"""Scaling out: two gunicorn instances on one PostgreSQL database.

With the filesystem blob store they share one data dir; with
INTAKE_BLOB_STORE=postgresql each has its own and shares nothing on disk
(the secret key is one file given to both, INTAKE_SECRET_KEY_FILE). Either
way, reports come in through both instances, by both paths; the form fetched
from one instance is accepted by the other, an upload begun on one is
finished on the other, and one export collects every report exactly once
(on PostgreSQL, run from a third place with no data dir, each report opened
by the age tool). Two admins exporting at the same moment never put a report
in two bundles: the export holds a PostgreSQL advisory lock, and this is
tested from outside (a lock held by another session refuses the export) and
by racing real `intake export` processes.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from conftest import require_tool
from followup_support import open_over_http
from helpers import (
    Deployment,
    form_tokens,
    gunicorn,
    receipt_from,
    server_env,
    thanked,
    valid_report,
)
from reliability_support import (
    ApiClient,
    client_ciphertext,
    nojs_submit,
    open_every_blob,
    submission_states,
)
from sqlalchemy import text
from test_storage import clean_postgres

from intake.storage import db

pytestmark = pytest.mark.slow


@pytest.fixture
def postgres_url() -> str:
    url = os.environ.get("INTAKE_TEST_DATABASE_URL")
    if not url:
        pytest.skip("INTAKE_TEST_DATABASE_URL is not set (.ci/run starts PostgreSQL and sets it)")
    clean_postgres(url)
    db.upgrade(url)
    return url


def intake_cli(
    data: Path, url: str, *args: str, deployment: Deployment | None = None, **extra: str
) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    env.update(INTAKE_DATA_DIR=str(data), INTAKE_DATABASE_URL=url, **extra)
    if deployment is not None:  # export encrypts a challenge to each reviewer of the keyring
        env.update(INTAKE_KEYRING=str(deployment.keyring_path),
                   INTAKE_ADMINS=str(deployment.admins_path))
    return subprocess.Popen(
        [sys.executable, "-m", "intake", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def bundle_ids(bundle: Path) -> list[str]:
    with tarfile.open(bundle) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    return [entry["id"] for entry in manifest["submissions"]]


def test_two_instances_share_one_database_and_one_export_takes_everything_once(
    tmp_path, postgres_url
):
    deployment = Deployment(tmp_path / "keys").setup(recipients=1)
    data = tmp_path / "var"
    env = server_env(data, deployment, tmp_path, INTAKE_DATABASE_URL=postgres_url)
    (tmp_path / "tmp").mkdir()
    env["TMPDIR"] = str(tmp_path / "tmp")
    with (
        gunicorn(env, tmp_path / "logs-a", workers=2) as a,
        gunicorn(env, tmp_path / "logs-b", workers=2) as b,
    ):
        assert a != b
        markers = []

        def one(i: int) -> int:
            base = (a, b)[i % 2]
            marker = f"multi-{i}"
            markers.append(marker)
            if i % 4 < 2:
                return nojs_submit(base, marker).status_code
            return ApiClient(base).submit(client_ciphertext(deployment, marker)).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(one, range(40)))
        assert statuses.count(200) == 20 and statuses.count(201) == 20, statuses

        # A form fetched from one instance is accepted by the other, and an upload
        # begun on one instance is finished on the other.
        client = ApiClient(a)
        ciphertext = client_ciphertext(deployment, "crossed")
        upload_id = client.create(len(ciphertext))
        half = len(ciphertext) // 2
        assert client.put(upload_id, 0, ciphertext[:half]).status_code == 200
        client.base = b
        assert client.offset(upload_id) == half
        assert client.put(upload_id, half, ciphertext[half:]).status_code == 200
        assert client.finish(upload_id, len(ciphertext)).status_code == 201
        markers.append("crossed")

    states = submission_states(postgres_url)
    assert len(states) == 41 and set(states.values()) == {"received"}
    narratives = open_every_blob(data / "blobs", deployment)
    assert set(narratives) == set(states)
    assert sorted(n.split(" ")[0] for n in narratives.values()) == sorted(markers)

    out = tmp_path / "out"
    export = intake_cli(data, postgres_url, "export", "--out", str(out), deployment=deployment)
    stdout, stderr = export.communicate(timeout=120)
    assert export.returncode == 0, stderr
    [bundle] = out.glob("*.tar")
    assert sorted(bundle_ids(bundle)) == sorted(states)
    again = intake_cli(data, postgres_url, "export", "--out", str(out), deployment=deployment)
    stdout, stderr = again.communicate(timeout=120)
    assert again.returncode == 0 and "nothing new" in (stdout + stderr).lower()
    assert list(out.glob("*.tar")) == [bundle]


def test_an_export_on_another_host_holding_the_lock_refuses_this_one(tmp_path, postgres_url):
    """The lock is the database's: a different data dir (another host) still sees it."""
    (tmp_path / "elsewhere").mkdir()  # that host's data dir: export never creates one
    engine = db.make_engine(postgres_url)
    try:
        with engine.connect() as other_admin:
            assert other_admin.execute(
                text("SELECT pg_try_advisory_lock(:k)"), {"k": db.EXPORT_LOCK}
            ).scalar()
            run = intake_cli(tmp_path / "elsewhere", postgres_url, "export", "--out",
                             str(tmp_path / "out"))
            stdout, stderr = run.communicate(timeout=120)
            assert run.returncode != 0
            assert "Another export or purge is running" in stderr
            assert "Traceback" not in stderr
            assert not list((tmp_path / "out").glob("*.tar"))
            other_admin.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": db.EXPORT_LOCK})
    finally:
        engine.dispose()
    # Released: the same command goes through (nothing to export here).
    run = intake_cli(tmp_path / "elsewhere", postgres_url, "export", "--out", str(tmp_path / "out"))
    stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 0, stderr


def test_two_admins_racing_never_export_a_report_twice(tmp_path, postgres_url):
    """Rounds of two simultaneous exports from two data dirs sharing the blobs."""
    deployment = Deployment(tmp_path / "keys").setup(recipients=1)
    data = tmp_path / "var"
    env = server_env(data, deployment, tmp_path, INTAKE_DATABASE_URL=postgres_url)
    # The second admin's host mounts the same blob directory, but has its own data
    # dir: its file lock is not the first one's, only the database lock is shared.
    other = tmp_path / "other-host"
    other.mkdir()
    (other / "blobs").symlink_to(data / "blobs", target_is_directory=True)
    exported: list[str] = []
    refusals = 0
    with gunicorn(env, tmp_path / "logs", workers=2) as base:
        for round_ in range(5):
            for i in range(6):
                assert thanked(nojs_submit(base, f"race-{round_}-{i}"))
            runs = [
                intake_cli(where, postgres_url, "export", "--out", str(tmp_path / f"out-{n}"),
                           deployment=deployment)
                for n, where in enumerate((data, other))
            ]
            for run in runs:
                stdout, stderr = run.communicate(timeout=120)
                if run.returncode != 0:
                    assert "Another export or purge is running" in stderr, stderr
                    refusals += 1
    for bundle in tmp_path.glob("out-*/*.tar"):
        exported.extend(bundle_ids(bundle))
    states = submission_states(postgres_url)
    assert len(states) == 30
    assert sorted(exported) == sorted(states), "a report was exported twice, or not at all"
    assert set(states.values()) == {"exported"}
    print(f"{refusals} of 5 races ended with one export refused by the lock")


# -- stateless instances: every report in PostgreSQL, nothing shared on disk ------------------


def shared_secret_key(directory: Path) -> Path:
    """The one secret key file every instance is given (as an operator copies it to each host)."""
    directory.mkdir(parents=True)
    key = directory / "secret_key"
    key.write_text(os.urandom(32).hex())
    key.chmod(0o640)
    return key


def stateless_env(host: Path, deployment: Deployment, url: str, key: Path) -> dict[str, str]:
    (host / "tmp").mkdir(parents=True)
    return server_env(host / "var", deployment, host / "tmp", INTAKE_DATABASE_URL=url,
                      INTAKE_BLOB_STORE="postgresql", INTAKE_SECRET_KEY_FILE=str(key))


def open_with_age(blob: bytes, identity: Path) -> dict:
    """Decrypt one submission with the age command-line tool; its report.json."""
    plain = subprocess.run([require_tool("age"), "-d", "-i", str(identity)], input=blob,
                           capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        return json.load(tar.extractfile("report.json"))


def test_two_instances_with_separate_data_dirs_share_everything_through_postgresql(
    tmp_path, postgres_url
):
    deployment = Deployment(tmp_path / "keys").setup(recipients=1)
    key = shared_secret_key(tmp_path / "etc")
    env_a = stateless_env(tmp_path / "host-a", deployment, postgres_url, key)
    env_b = stateless_env(tmp_path / "host-b", deployment, postgres_url, key)
    markers = []
    with (
        gunicorn(env_a, tmp_path / "logs-a", workers=2) as a,
        gunicorn(env_b, tmp_path / "logs-b", workers=2) as b,
    ):
        def one(i: int) -> int:
            base = (a, b)[i % 2]
            marker = f"stateless-{i}"
            markers.append(marker)
            if i % 4 < 2:
                return nojs_submit(base, marker).status_code
            return ApiClient(base).submit(client_ciphertext(deployment, marker)).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(one, range(24)))
        assert statuses.count(200) == 12 and statuses.count(201) == 12, statuses

        # A form fetched from A is posted to B.
        session = requests.Session()
        tokens = form_tokens(session.get(f"{a}/en/report", timeout=60).text)
        posted = session.post(
            f"{b}/en/report", data={**tokens, **valid_report(narrative="fromA-toB (no JS)")},
            files=[("attachments", ("", b"", "application/octet-stream"))],
            allow_redirects=False, timeout=120,
        )
        assert thanked(posted), posted.status_code
        markers.append("fromA-toB")
        # The receipt B gave opens its mailbox on A: both derive with the one shared file.
        assert open_over_http(a, receipt_from(posted.text)).statuses == ["received"]

        # An upload begun on A: half its chunks there, the rest and the finish on B.
        client = ApiClient(a)
        ciphertext = client_ciphertext(deployment, "crossed", os.urandom(3 * 1024 * 1024))
        upload_id = client.create(len(ciphertext))
        half = len(ciphertext) // 2
        for offset in range(0, half, 256 * 1024):
            end = min(offset + 256 * 1024, half)
            assert client.put(upload_id, offset, ciphertext[offset:end]).status_code == 200
        client.base = b
        assert client.offset(upload_id) == half
        assert client.put(upload_id, half, ciphertext[half:]).status_code == 200
        assert client.finish(upload_id, len(ciphertext)).status_code == 201
        markers.append("crossed")
        # And one sent wholly on A, finished on B.
        whole = ApiClient(a)
        other = client_ciphertext(deployment, "finished-on-B")
        other_id = whole.create(len(other))
        assert whole.put(other_id, 0, other).status_code == 200
        whole.base = b
        assert whole.finish(other_id, len(other)).status_code == 201
        markers.append("finished-on-B")

    states = submission_states(postgres_url)
    assert len(states) == len(markers) == 27 and set(states.values()) == {"received"}
    # Each instance's data dir holds, at most, its spool: no blob, no part, no key, no database.
    for host in ("host-a", "host-b"):
        kept = sorted(p.relative_to(tmp_path / host / "var").as_posix()
                      for p in (tmp_path / host / "var").rglob("*"))
        assert all(k == "spool" or k.startswith("spool/") for k in kept), (host, kept)

    # The admin exports from a third place that has no data dir at all.
    third = tmp_path / "admin-laptop"
    out = third / "usb"
    export = intake_cli(third / "no-such-dir", postgres_url, "export", "--out", str(out),
                        deployment=deployment, INTAKE_BLOB_STORE="postgresql")
    stdout, stderr = export.communicate(timeout=300)
    assert export.returncode == 0, stderr
    assert not (third / "no-such-dir").exists()
    [bundle] = out.glob("*.tar")
    ids = bundle_ids(bundle)
    assert sorted(ids) == sorted(states), "a report missing from the bundle, or in it twice"
    identity = deployment.identity_file(tmp_path / "reviewer.key", 0)
    narratives = []
    with tarfile.open(bundle) as tar:
        for submission_id in ids:
            blob = tar.extractfile(f"submissions/{submission_id}.age").read()
            narratives.append(open_with_age(blob, identity)["fields"]["narrative"])
    assert sorted(n.split(" ")[0] for n in narratives) == sorted(markers)
    assert set(submission_states(postgres_url).values()) == {"exported"}
