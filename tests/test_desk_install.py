"""The desk runs from a reviewer's install: Flask and Werkzeug, no server libraries,
and it refuses to start without its compiled catalogues rather than fall back to English."""

from __future__ import annotations

import subprocess
import sys

import pytest
from desk_support import desk_env, write_case
from helpers import free_port

from intake.errors import IntakeError
from intake.review.desk.app import missing_files
from intake.review.desk.server import serve_desk
from intake.web.i18n import LANGUAGES

#: What only the server needs (the `server` extra) and what the desk must not import.
SERVER_ONLY = ("sqlalchemy", "alembic", "psycopg", "nacl", "gunicorn")

PROGRAM = """
import importlib.abc, sys
from pathlib import Path

blocked = set(sys.argv[2].split(","))
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"{name} is not installed here")
sys.meta_path.insert(0, Refuse())

from intake.review.desk import create_desk_app
import intake.review.desk.server

cases = Path(sys.argv[1])
app = create_desk_app(cases, port=8999)
client = app.test_client()
client.get(app.extensions["desk"].guard.login_url)
case_id = next(p.name for p in cases.iterdir() if len(p.name) == 32)  # not cases.db
root = "http://127.0.0.1:8999" + app.extensions["desk"].guard.path_prefix
for path in ("/ar/", f"/ar/cases/{case_id}", f"/ar/cases/{case_id}/attachments/1"):
    assert client.get(root + path).status_code == 200, path
print(sorted(m for m in sys.modules if m.split(".")[0] in blocked))
"""


def test_the_desk_needs_none_of_the_servers_libraries(tmp_path):
    cases = tmp_path / "cases"
    write_case(cases, {"narrative": "نص"}, files=[("a.txt", b"text\n", "text/plain")])
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(cases), ",".join(SERVER_ONLY)],
        capture_output=True, text=True, timeout=120, env=desk_env(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("which", ["DESK_CATALOGUES", "REVIEW_TRANSLATIONS", "INTAKE_CATALOGUES"])
def test_the_desk_refuses_to_start_without_its_compiled_catalogues(tmp_path, monkeypatch, which):
    from intake.review.desk import app as desk_app

    assert missing_files() == []  # this checkout: `make translations` has run
    cases = tmp_path / "cases"
    cases.mkdir()
    monkeypatch.setattr(desk_app, which, tmp_path / "translations")  # an install without them
    assert len(missing_files()) == len(LANGUAGES)
    with pytest.raises(IntakeError, match=r"lacks 4 of its files .*messages\.mo"):
        serve_desk(cases, port=free_port())
