"""A deployment that is set up wrong gets one sentence that says what to do, and nothing made.

Against the real PostgreSQL of INTAKE_TEST_DATABASE_URL: a wrong password, peer
authentication as the wrong system user, the ``postgres://`` scheme, no
password, a database that does not exist. Each one through every place that
first touches the database (`intake db upgrade`, `serve`, `demo`, `export`,
`purge`, the app factory), never with a traceback and never with the
password. And commands that read a deployment (`export`, `purge`) run from the
wrong folder say where they looked, creating nothing.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import Deployment, free_port
from sqlalchemy.engine import URL, make_url

from intake.config import Settings
from intake.storage import db
from intake.web.app import build_app

WRONG_PASSWORD = "Wr0ng-s3cret-never-shown"
SOCKET_DIR = "/var/run/postgresql"


def postgres_url() -> str:
    url = os.environ.get("INTAKE_TEST_DATABASE_URL")
    if not url:
        pytest.skip("INTAKE_TEST_DATABASE_URL is not set (.ci/run starts PostgreSQL and sets it)")
    return url


def case_url(case: str) -> tuple[str, str]:
    """A database URL that fails in the way `case` names, and the words its sentence must say."""
    real = make_url(postgres_url())
    user, database = real.username, real.database
    if case == "wrong-password":
        url = real.set(password=WRONG_PASSWORD)
        return url.render_as_string(hide_password=False), f"refused the password for user {user}"
    if case == "peer-as-wrong-user":
        if getpass.getuser() == user:
            pytest.skip(f"the tests run as system user {user}, whom peer authentication accepts")
        if not Path(SOCKET_DIR).is_dir():
            pytest.skip(f"PostgreSQL's socket folder {SOCKET_DIR} does not exist")
        return (
            f"postgresql+psycopg://{user}@/{database}?host={SOCKET_DIR}",
            "connect over TCP with a password",
        )
    if case == "postgres-scheme":
        url = real.set(drivername="postgres", password=WRONG_PASSWORD)
        return url.render_as_string(hide_password=False), "write postgresql+psycopg://"
    if case == "no-password":
        url = URL.create(real.drivername, real.username, None, real.host, real.port, database)
        return url.render_as_string(hide_password=False), "gives none"
    if case == "missing-database":
        url = real.set(database=f"{database}_missing", password=WRONG_PASSWORD)
        # the password is checked before the database: give the real one
        url = url.set(password=real.password)
        return url.render_as_string(hide_password=False), f"no database named {database}_missing"
    raise AssertionError(case)


CASES = ["wrong-password", "peer-as-wrong-user", "postgres-scheme", "no-password",
         "missing-database"]


def intake(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    return subprocess.run(
        [sys.executable, "-m", "intake", *args],
        cwd=cwd, env={**clean, **env}, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )


def assert_one_sentence(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 1, (result.returncode, result.stderr)
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "report it" not in output, output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("intake: "), result.stderr
    for word in words:
        assert word in lines[-1], result.stderr
    assert WRONG_PASSWORD not in output
    real_password = make_url(postgres_url()).password
    assert real_password is None or f":{real_password}@" not in output


def existing_deployment(root: Path) -> Path:
    """A data folder (as a PostgreSQL deployment has one), and an empty ack file."""
    (root / "var").mkdir()
    (root / "ack.json").write_text(json.dumps({"format": "intake-ack/v1", "submissions": []}))
    return root


@pytest.mark.parametrize("case", CASES)
def test_db_upgrade_explains_a_database_it_cannot_use(tmp_path, case):
    url, words = case_url(case)
    assert_one_sentence(
        intake(tmp_path, "db", "upgrade", INTAKE_DATABASE_URL=url), words, "INTAKE_DATABASE_URL"
    )


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize(
    "command", [["export", "--out", "usb"], ["purge", "--ack", "ack.json"]], ids=["export", "purge"]
)
def test_export_and_purge_explain_a_database_they_cannot_use(tmp_path, case, command):
    url, words = case_url(case)
    root = existing_deployment(tmp_path)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    assert_one_sentence(intake(root, *command, INTAKE_DATABASE_URL=url), words)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_serve_and_demo_explain_a_refused_password_before_serving(tmp_path, command):
    url, words = case_url("wrong-password")
    result = intake(tmp_path, command, "--port", str(free_port()), INTAKE_DATABASE_URL=url)
    assert_one_sentence(result, words)


@pytest.mark.parametrize("case", CASES)
def test_the_app_factory_explains_a_database_it_cannot_use(tmp_path, case):
    url, words = case_url(case)
    deployment = Deployment(tmp_path / "keys").setup(recipients=1)
    settings = Settings(
        data_dir=tmp_path / "var", database_url=url, keyring_path=deployment.keyring_path,
        admins_path=deployment.admins_path, max_upload=8 * 1024 * 1024,
    )
    with pytest.raises(db.DatabaseSetupError, match=re.escape(words)) as refused:
        build_app(settings, {"TESTING": True})
    assert WRONG_PASSWORD not in str(refused.value)


def test_an_unrecognised_connection_failure_keeps_libpq_words_but_not_the_password():
    url = make_url(f"postgresql+psycopg://intake:{WRONG_PASSWORD}@db.example:5432/intake")
    failure = Exception(f"connection failed: odd failure near {WRONG_PASSWORD}\x1b[2K")
    explained = db.explain_connect_failure(failure, url)
    assert explained is not None
    text = str(explained)
    assert "odd failure near ***" in text and WRONG_PASSWORD not in text and "\x1b" not in text
    assert "db.example:5432" in text and "INTAKE_DATABASE_URL" in text


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("mysql://u:p@h/d", "does not support"),
        ("postgresql+psycopg2://u:p@h/d", "driver psycopg2"),
        ("not a url", "not a database URL"),
    ],
)
def test_a_database_url_that_cannot_work_is_explained_before_connecting(tmp_path, url, words):
    assert_one_sentence(intake(tmp_path, "db", "upgrade", INTAKE_DATABASE_URL=url), words)


# -- commands that read a deployment never create one --------------------------------------


@pytest.mark.parametrize(
    "command", [["export", "--out", "usb"], ["purge", "--ack", "ack.json"]], ids=["export", "purge"]
)
def test_export_and_purge_from_the_wrong_folder_create_nothing(tmp_path, command):
    (tmp_path / "ack.json").write_text("{}")
    result = intake(tmp_path, *command)
    assert_one_sentence(result, f"no intake deployment at {tmp_path / 'var'}", "INTAKE_DATA_DIR")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ack.json"]
    elsewhere = intake(tmp_path, *command, INTAKE_DATA_DIR=str(tmp_path / "nope"))
    assert_one_sentence(elsewhere, f"no intake deployment at {tmp_path / 'nope'}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ack.json"]


def test_a_data_folder_without_its_database_is_named_and_left_alone(tmp_path):
    (tmp_path / "var").mkdir()
    result = intake(tmp_path, "export", "--out", "usb")
    assert_one_sentence(result, f"no intake database at {tmp_path / 'var' / 'intake.db'}")
    assert list((tmp_path / "var").iterdir()) == [] and not (tmp_path / "usb").exists()


def test_db_upgrade_still_creates_a_new_deployment(tmp_path):
    made = intake(tmp_path, "db", "upgrade")
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "var" / "intake.db").is_file()
    exported = intake(tmp_path, "export", "--out", "usb")
    assert exported.returncode == 0, exported.stderr
    assert "Nothing new to export" in exported.stderr
