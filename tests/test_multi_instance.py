"""Scaling out: two gunicorn instances on one PostgreSQL database and one data dir.

Reports come in through both instances, by both paths; the form fetched from
one instance is accepted by the other (they share the secret key), an upload
begun on one is finished on the other, and one export collects every report
exactly once. Two admins exporting at the same moment never put a report in
two bundles: the export holds a PostgreSQL advisory lock, and this is tested
from outside (a lock held by another session refuses the export) and by
racing real `intake export` processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import Deployment, gunicorn, server_env, thanked
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
    data: Path, url: str, *args: str, deployment: Deployment | None = None
) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    env.update(INTAKE_DATA_DIR=str(data), INTAKE_DATABASE_URL=url)
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
