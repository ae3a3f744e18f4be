"""Every hostile sequence of upload API calls (tests/hostile/api.py) gets exactly its answers.

Each sequence runs against a fresh app on SQLite with a keyring of two
recipients; the upload store's clock is a hand-moved one, so that a step can
let 15 minutes pass without sleeping. After the last step, the number of
submissions filed (blobs and rows alike) and of uploads still open must be
the ones the corpus gives.
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from helpers import Deployment, make_settings
from hostile.api import CORPUS, RECIPIENTS, Sequence, Step

from intake.storage import db
from intake.storage.models import Submission
from intake.web.app import build_app

START = 1_800_000_000.0  # a whole minute: "15 to 16 minutes" is then exactly 16


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def token(client) -> str:
    page = client.get("/en/report").get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


def fill(value, version: int, ids: list[str]):
    if value == "$version":
        return version
    if isinstance(value, dict):
        return {k: fill(v, version, ids) for k, v in value.items()}
    return value


def path_for(step: Step, ids: list[str]) -> str:
    return step.path.replace("{id}", ids[-1] if ids else "none").replace(
        "{first}", ids[0] if ids else "none")


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=[pytest.mark.slow] if s.slow else []) for n, s in
             CORPUS.items()])
def test_each_hostile_sequence_gets_exactly_its_answers(tmp_path, name):
    sequence: Sequence = CORPUS[name]
    deployment = Deployment(tmp_path / "keys").setup(recipients=RECIPIENTS)
    settings = make_settings(tmp_path / "var", deployment, max_upload=64 * 1024 * 1024)
    app = build_app(settings, {"TESTING": True})
    state = app.extensions["intake"]
    clock = Clock()
    state.uploads.clock = clock
    if sequence.budget:
        state.uploads.budget = replace(state.uploads.budget, **sequence.budget)
    client = app.test_client()
    csrf = token(client)
    version = deployment.current().version
    ids: list[str] = []
    for number, step in enumerate(sequence.steps, start=1):
        clock.now += step.advance
        for _ in range(step.times):
            if step.fresh_token:
                csrf = token(client)
            kwargs = {"headers": {"X-CSRFToken": csrf}}
            if step.json is not None:
                kwargs["json"] = fill(step.json, version, ids)
            if step.data is not None:
                kwargs["data"] = step.data
                kwargs["content_type"] = "application/octet-stream"
            response = client.open(path_for(step, ids), method=step.method, **kwargs)
            body = response.get_json()
            got = (response.status_code, body.get("error") if step.error else None)
            assert got == (step.status, step.error), (name, number, step.method, step.path,
                                                      body)
            if step.method == "POST" and step.path == "/api/v1/uploads" and step.status == 201:
                ids.append(body["id"])
    blobs = sorted(settings.blob_dir.glob("*.age"))
    with db.make_session_factory(db.make_engine(settings.database_url))() as session:
        filed = session.query(Submission).count()
    assert (len(blobs), filed) == (sequence.filed, sequence.filed), name
    assert state.uploads.usage().uploads == sequence.open_uploads, name


def test_the_corpus_covers_items_6_and_7_of_issue_10():
    names = " ".join(CORPUS)
    for attack in ("500 creates of size 1", "stalls for 15 minutes", "readable plaintext",
                   "the identity", "empty last chunk", "Padmé", "finish without a size",
                   "random bytes of a valid length"):
        assert attack in names, attack
