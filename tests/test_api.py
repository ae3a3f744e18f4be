"""The resumable upload API: only well-formed age ciphertext for the current
keyring is filed, exactly once, however the chunks arrive."""

from __future__ import annotations

import io
import os
import re
import subprocess

import pytest
from conftest import require_tool
from helpers import Deployment, make_settings
from sqlalchemy import update

from intake.config import Settings
from intake.crypto.envelope import decrypt_stream, encrypt_bytes
from intake.storage import db
from intake.storage.models import Submission, Upload
from intake.web.app import build_app

MiB = 1024 * 1024


@pytest.fixture
def deployment(tmp_path) -> Deployment:
    return Deployment(tmp_path / "keys").setup(recipients=2)


@pytest.fixture
def settings(tmp_path, deployment) -> Settings:
    return make_settings(tmp_path / "var", deployment, max_upload=16 * MiB)


@pytest.fixture
def client(settings):
    client = build_app(settings, {"TESTING": True}).test_client()
    page = client.get("/en/report").get_data(as_text=True)
    client.csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    return client


def age_encrypt(deployment: Deployment, data: bytes, recipients: int | None = None) -> bytes:
    """Ciphertext as the browser makes it: age with X25519 stanzas only (no grease)."""
    age = require_tool("age")
    keys = deployment.current().active_recipients()[:recipients]
    args = [age, *sum((["-r", r] for r in keys), [])]
    return subprocess.run(args, input=data, capture_output=True, check=True).stdout


def call(client, method: str, url: str, **kwargs):
    headers = kwargs.pop("headers", {"X-CSRFToken": client.csrf})
    return client.open(url, method=method, headers=headers, **kwargs)


def create(client, size: int, version: int):
    return call(client, "POST", "/api/v1/uploads", json={"size": size, "keyring_version": version})


def send(client, upload_id: str, data: bytes, offset: int):
    return call(client, "PUT", f"/api/v1/uploads/{upload_id}?offset={offset}", data=data,
                content_type="application/octet-stream")


def upload_all(client, deployment, ciphertext: bytes, chunk: int = 100_000) -> str:
    created = create(client, len(ciphertext), deployment.current().version)
    assert created.status_code == 201, created.json
    upload_id = created.json["id"]
    for offset in range(0, len(ciphertext), chunk):
        assert send(client, upload_id, ciphertext[offset:offset + chunk], offset).status_code == 200
    return upload_id


def stored(settings) -> list:
    return sorted(settings.blob_dir.glob("*.age"))


def rows(settings):
    with db.make_session_factory(db.make_engine(settings.database_url))() as session:
        return session.query(Submission).all()


def test_an_upload_in_chunks_is_filed_once_and_decrypts(client, settings, deployment):
    plaintext = os.urandom(MiB + 12345)
    ciphertext = age_encrypt(deployment, plaintext)
    created = create(client, len(ciphertext), deployment.current().version)
    body = created.json
    assert created.status_code == 201
    assert len(body["id"]) == 32 and body["chunk_size"] > 0 and body["max_size"] == 16 * MiB
    upload_id = body["id"]
    for offset in range(0, len(ciphertext), 300_000):
        response = send(client, upload_id, ciphertext[offset:offset + 300_000], offset)
        assert response.json["offset"] == min(offset + 300_000, len(ciphertext))
    assert call(client, "GET", f"/api/v1/uploads/{upload_id}").json["offset"] == len(ciphertext)
    assert call(client, "POST", f"/api/v1/uploads/{upload_id}/finish").status_code == 201
    [blob] = stored(settings)
    assert blob.read_bytes() == ciphertext
    out = io.BytesIO()
    with blob.open("rb") as fh:
        decrypt_stream(fh, out, [deployment.identities[1]])
    assert out.getvalue() == plaintext
    [row] = rows(settings)
    assert row.id == blob.stem != upload_id and row.size == len(ciphertext)
    assert list(settings.upload_dir.iterdir()) == []


def test_a_chunk_sent_again_is_harmless_and_a_gap_says_where_to_resume(client, deployment,
                                                                        settings):
    ciphertext = age_encrypt(deployment, os.urandom(500_000))
    upload_id = create(client, len(ciphertext), deployment.current().version).json["id"]
    assert send(client, upload_id, ciphertext[:200_000], 0).json["offset"] == 200_000
    assert send(client, upload_id, ciphertext[:200_000], 0).json["offset"] == 200_000
    gap = send(client, upload_id, ciphertext[300_000:], 300_000)
    assert gap.status_code == 409 and gap.json == {
        "error": "offset_mismatch", "message": gap.json["message"], "offset": 200_000}
    assert send(client, upload_id, ciphertext[150_000:], 150_000).json["offset"] == len(ciphertext)
    assert call(client, "POST", f"/api/v1/uploads/{upload_id}/finish").status_code == 201
    assert stored(settings)[0].read_bytes() == ciphertext


def test_finishing_twice_files_one_submission(client, deployment, settings):
    upload_id = upload_all(client, deployment, age_encrypt(deployment, b"report"))
    assert call(client, "POST", f"/api/v1/uploads/{upload_id}/finish").status_code == 201
    again = call(client, "POST", f"/api/v1/uploads/{upload_id}/finish")
    assert again.status_code == 200 and again.json["status"] == "stored"
    assert len(stored(settings)) == 1 and len(rows(settings)) == 1


def test_finishing_an_incomplete_upload_says_where_to_resume(client, deployment, settings):
    ciphertext = age_encrypt(deployment, os.urandom(300_000))
    upload_id = create(client, len(ciphertext), deployment.current().version).json["id"]
    send(client, upload_id, ciphertext[:100_000], 0)
    response = call(client, "POST", f"/api/v1/uploads/{upload_id}/finish")
    assert response.status_code == 409 and response.json["offset"] == 100_000
    assert stored(settings) == []


@pytest.mark.parametrize("kind", ["junk", "grease", "too_few_recipients", "passphrase"])
def test_ciphertext_of_the_wrong_shape_is_refused_and_dropped(client, deployment, settings, kind):
    import pyrage

    ciphertext = {
        "junk": lambda: os.urandom(5000),
        "grease": lambda: encrypt_bytes(b"r", deployment.current().active_recipients()),
        "too_few_recipients": lambda: age_encrypt(deployment, b"r", recipients=1),
        "passphrase": lambda: pyrage.passphrase.encrypt(b"r", "pw"),
    }[kind]()
    upload_id = upload_all(client, deployment, ciphertext)
    response = call(client, "POST", f"/api/v1/uploads/{upload_id}/finish")
    assert response.status_code == 422 and response.json["error"] == "bad_ciphertext"
    assert response.json["message"]
    assert stored(settings) == [] and rows(settings) == []
    assert list(settings.upload_dir.iterdir()) == []


def test_a_keyring_change_before_finishing_is_refused_with_the_new_keyring(
    client, deployment, settings
):
    upload_id = upload_all(client, deployment, age_encrypt(deployment, b"report"))
    deployment.rotate()
    response = call(client, "POST", f"/api/v1/uploads/{upload_id}/finish")
    assert response.status_code == 409 and response.json["error"] == "keyring_changed"
    fresh = response.json["keyring"]
    assert fresh["version"] == deployment.current().version and len(fresh["recipients"]) == 3
    assert stored(settings) == []
    stale = create(client, 1000, fresh["version"] - 1)
    assert stale.status_code == 409 and stale.json["error"] == "keyring_changed"


def test_the_keyring_endpoint_lists_active_recipients_with_fingerprints(client, deployment):
    body = call(client, "GET", "/api/v1/keyring").json
    assert body["version"] == deployment.current().version
    assert [r["recipient"] for r in body["recipients"]] == deployment.current().active_recipients()
    assert all(re.fullmatch(r"(\d{5} ){3}\d{5}", r["fingerprint"]) for r in body["recipients"])


def test_state_changing_calls_need_the_csrf_header(client, deployment):
    response = call(client, "POST", "/api/v1/uploads", headers={},
                    json={"size": 100, "keyring_version": deployment.current().version})
    assert response.status_code == 400 and response.json["error"] == "csrf"


@pytest.mark.parametrize("upload_id", ["A" * 32, "../../etc/passwd", "x"])
def test_unknown_uploads_are_404(client, upload_id):
    assert call(client, "GET", f"/api/v1/uploads/{upload_id}").status_code == 404
    assert send(client, upload_id, b"x", 0).status_code == 404


def test_sizes_over_the_limits_are_413(client, deployment):
    version = deployment.current().version
    assert create(client, 17 * MiB, version).status_code == 413
    upload_id = create(client, 1000, version).json["id"]
    assert send(client, upload_id, b"x" * 1001, 0).status_code == 413


@pytest.mark.parametrize("body", [None, [], {"size": "10", "keyring_version": 1},
                                  {"size": -1, "keyring_version": 1}, {"size": 10}])
def test_malformed_requests_are_400_not_500(client, body):
    response = call(client, "POST", "/api/v1/uploads", json=body)
    assert response.status_code == 400


def test_expired_uploads_are_deleted_without_a_cron_job(client, deployment, settings):
    ciphertext = age_encrypt(deployment, b"report")
    upload_id = create(client, len(ciphertext), deployment.current().version).json["id"]
    send(client, upload_id, ciphertext[:50], 0)
    engine = db.make_engine(settings.database_url)
    with engine.begin() as connection:
        connection.execute(update(Upload).values(expires_hour=0))
    state = client.application.extensions["intake"]
    state.last_cleanup = float("-inf")
    call(client, "GET", "/api/v1/keyring")  # any API call runs the cleanup now and then
    assert list(settings.upload_dir.iterdir()) == []
    assert call(client, "GET", f"/api/v1/uploads/{upload_id}").status_code == 404


@pytest.mark.parametrize("offset", ["", " 0", "0_0", "٠", "-1", "1e3", "0x0", "9" * 16])
def test_an_offset_is_plain_ascii_digits_or_400(client, deployment, offset):
    upload_id = create(client, 1000, deployment.current().version).json["id"]
    response = call(client, "PUT", f"/api/v1/uploads/{upload_id}?offset={offset}", data=b"x",
                    content_type="application/octet-stream")
    assert response.status_code == 400 and response.json["error"] == "bad_offset"


def test_a_chunk_without_a_length_is_411(client, deployment):
    upload_id = create(client, 1000, deployment.current().version).json["id"]
    # Chunked transfer encoding: no Content-Length.
    response = call(client, "PUT", f"/api/v1/uploads/{upload_id}?offset=0",
                    input_stream=io.BytesIO(b"x"), content_type="application/octet-stream",
                    headers={"X-CSRFToken": client.csrf, "Transfer-Encoding": "chunked"},
                    environ_base={"wsgi.input_terminated": True})
    assert response.status_code == 411 and response.json["error"] == "length_required"


@pytest.mark.parametrize(("method", "url", "status"), [
    ("GET", "/api/v1/nothing-here", 404),
    ("DELETE", "/api/v1/uploads", 405),
    ("GET", "/api/v1/uploads/x/finish", 405),
])
def test_routing_errors_under_the_api_answer_json(client, method, url, status):
    response = call(client, method, url)
    assert response.status_code == status
    assert response.is_json and set(response.json) == {"error", "message"}


# -- a finish interrupted by a crash ----------------------------------------------------------
# A worker killed while filing leaves the upload "finishing" and no lock (the kernel drops
# a dead process's flock). Each stage it can die in is rebuilt here by hand.


def _interrupted(client, deployment, settings, stage: str) -> tuple[str, bytes, str | None]:
    from datetime import UTC, datetime

    from intake.storage.blobs import BlobStore
    from intake.storage.submissions import new_submission_id, record_submission
    from intake.storage.uploads import UploadStore

    ciphertext = age_encrypt(deployment, b"filed once")
    upload_id = upload_all(client, deployment, ciphertext)
    factory = db.make_session_factory(db.make_engine(settings.database_url))
    uploads, store = UploadStore(settings.upload_dir, factory), BlobStore(settings.blob_dir)
    uploads.set_state(upload_id, "finishing")  # claimed, then the worker died
    submission_id = None
    if stage in ("linked", "recorded"):
        submission_id = new_submission_id()
        store.adopt(uploads.path(upload_id), submission_id, datetime.now(UTC).date())
    if stage == "recorded":
        record_submission(factory, store, submission_id=submission_id,
                          day=datetime.now(UTC).date(),
                          keyring_version=deployment.current().version)
    return upload_id, ciphertext, submission_id


@pytest.mark.parametrize("stage", ["claimed", "linked", "recorded"])
def test_a_finish_interrupted_at_any_stage_is_completed_once_by_the_next(
    client, deployment, settings, stage
):
    upload_id, ciphertext, submission_id = _interrupted(client, deployment, settings, stage)
    response = call(client, "POST", f"/api/v1/uploads/{upload_id}/finish")
    assert response.status_code == 201, response.json
    [blob] = stored(settings)
    [row] = rows(settings)
    assert blob.read_bytes() == ciphertext and row.id == blob.stem
    if submission_id is not None:
        assert row.id == submission_id  # the blob already made was completed, not a second one
    assert list(settings.upload_dir.iterdir()) == []
    assert call(client, "POST", f"/api/v1/uploads/{upload_id}/finish").status_code == 200


def test_a_finish_still_running_elsewhere_is_not_taken_over(client, deployment, settings):
    from intake.storage.uploads import UploadStore

    upload_id = upload_all(client, deployment, age_encrypt(deployment, b"report"))
    uploads = UploadStore(settings.upload_dir,
                          db.make_session_factory(db.make_engine(settings.database_url)))
    with uploads.claim(upload_id) as held:  # another live request, filing it right now
        assert held is not None
        response = call(client, "POST", f"/api/v1/uploads/{upload_id}/finish")
        assert response.status_code == 409 and response.json["error"] == "in_progress"
    assert stored(settings) == []
    assert call(client, "POST", f"/api/v1/uploads/{upload_id}/finish").status_code == 201


def test_the_cleanup_never_takes_the_file_of_an_upload_being_created(settings):
    """Seen under load: an upload created while the cleanup ran lost its part file."""
    import threading

    from intake.storage.uploads import UploadStore

    uploads = UploadStore(settings.upload_dir,
                          db.make_session_factory(db.make_engine(settings.database_url)))
    done = threading.Event()

    def clean() -> None:
        while not done.is_set():
            uploads.cleanup()

    cleaner = threading.Thread(target=clean)
    cleaner.start()
    try:
        made = [uploads.create(100, 1) for _ in range(300)]
    finally:
        done.set()
        cleaner.join()
    missing = [u for u in made if not uploads.path(u).exists()]
    assert missing == [], f"{len(missing)} of 300 part files deleted by the cleanup"
