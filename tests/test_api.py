"""The resumable upload API: only well-formed age ciphertext for the current
keyring is filed, exactly once, however the chunks arrive; sizes no report can
have are refused at create; a flood of creates cannot shut the path; a stalled
upload expires after 15 minutes; a filed upload's row keeps no size."""

from __future__ import annotations

import io
import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import require_tool
from helpers import Deployment, make_settings
from sqlalchemy import update

from intake.config import Settings
from intake.crypto.container import padme
from intake.crypto.envelope import decrypt_stream, encrypt_bytes
from intake.storage import db
from intake.storage.models import Submission, Upload
from intake.storage.uploads import Budget
from intake.web.app import build_app

MiB = 1024 * 1024
#: The smallest report container: a report.json header and block, and the end-of-archive marker.
SMALLEST_CONTAINER = 4 * 512


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


def container_plaintext(at_least: int = 0) -> bytes:
    """Random bytes as long as a padded report container of at least `at_least` bytes.

    The server never sees the plaintext; only its length (a multiple of 512,
    padded with Padmé) shows through the ciphertext's length.
    """
    blocks = -(-max(at_least, SMALLEST_CONTAINER) // 512) * 512
    return os.urandom(padme(blocks))


def age_encrypt(deployment: Deployment, data: bytes, recipients: int | None = None) -> bytes:
    """Ciphertext as the age tool makes it: X25519 stanzas only (no grease stanza)."""
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


def finish(client, upload_id: str, size: int | None):
    body = {} if size is None else {"size": size}
    return call(client, "POST", f"/api/v1/uploads/{upload_id}/finish", json=body)


def upload_all(client, deployment, ciphertext: bytes, chunk: int = 100_000) -> str:
    created = create(client, len(ciphertext), deployment.current().version)
    assert created.status_code == 201, created.json
    upload_id = created.json["id"]
    for offset in range(0, len(ciphertext), chunk):
        assert send(client, upload_id, ciphertext[offset:offset + chunk], offset).status_code == 200
    return upload_id


def valid_size(deployment: Deployment) -> int:
    """A ciphertext size the API accepts at create: the smallest report's."""
    return len(age_encrypt(deployment, container_plaintext()))


def upload_rows(settings) -> list[Upload]:
    with db.make_session_factory(db.make_engine(settings.database_url))() as session:
        return session.query(Upload).all()


class Clock:
    """The upload store's clock, moved by hand: 15 minutes pass without a sleep."""

    def __init__(self, start: float):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    @classmethod
    def install(cls, client, start: float = 1_800_000_000.0) -> Clock:
        clock = cls(start)
        client.application.extensions["intake"].uploads.clock = clock
        return clock


def stored(settings) -> list:
    return sorted(settings.blob_dir.glob("*.age"))


def rows(settings):
    with db.make_session_factory(db.make_engine(settings.database_url))() as session:
        return session.query(Submission).all()


def test_an_upload_in_chunks_is_filed_once_and_decrypts(client, settings, deployment):
    plaintext = container_plaintext(MiB + 12345)
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
    assert finish(client, upload_id, len(ciphertext)).status_code == 201
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
    ciphertext = age_encrypt(deployment, container_plaintext(500_000))
    upload_id = create(client, len(ciphertext), deployment.current().version).json["id"]
    assert send(client, upload_id, ciphertext[:200_000], 0).json["offset"] == 200_000
    assert send(client, upload_id, ciphertext[:200_000], 0).json["offset"] == 200_000
    gap = send(client, upload_id, ciphertext[300_000:], 300_000)
    assert gap.status_code == 409 and gap.json == {
        "error": "offset_mismatch", "message": gap.json["message"], "offset": 200_000}
    assert send(client, upload_id, ciphertext[150_000:], 150_000).json["offset"] == len(ciphertext)
    assert finish(client, upload_id, len(ciphertext)).status_code == 201
    assert stored(settings)[0].read_bytes() == ciphertext


def test_finishing_twice_files_one_submission(client, deployment, settings):
    ciphertext = age_encrypt(deployment, container_plaintext())
    upload_id = upload_all(client, deployment, ciphertext)
    assert finish(client, upload_id, len(ciphertext)).status_code == 201
    again = finish(client, upload_id, len(ciphertext))
    assert again.status_code == 200 and again.json["status"] == "stored"
    assert len(stored(settings)) == 1 and len(rows(settings)) == 1
    # The filed upload's row answers the retry without knowing its size any more.
    assert call(client, "GET", f"/api/v1/uploads/{upload_id}").json == {"state": "finished"}
    [row] = upload_rows(settings)
    assert (row.state, row.size, row.received, row.keyring_version, row.expires_minute) == (
        "finished", None, None, None, None)


def test_finish_needs_the_size_it_was_created_with(client, deployment, settings):
    ciphertext = age_encrypt(deployment, container_plaintext())
    upload_id = upload_all(client, deployment, ciphertext)
    missing = finish(client, upload_id, None)
    assert missing.status_code == 400 and missing.json["error"] == "bad_size"
    other = finish(client, upload_id, len(ciphertext) + 512)
    assert other.status_code == 409 and other.json["error"] == "size_mismatch"
    assert other.json["size"] == len(ciphertext) and "size" in other.json["message"]
    assert stored(settings) == []
    assert finish(client, upload_id, len(ciphertext)).status_code == 201


def test_finishing_an_incomplete_upload_says_where_to_resume(client, deployment, settings):
    ciphertext = age_encrypt(deployment, container_plaintext(300_000))
    upload_id = create(client, len(ciphertext), deployment.current().version).json["id"]
    send(client, upload_id, ciphertext[:100_000], 0)
    response = finish(client, upload_id, len(ciphertext))
    assert response.status_code == 409 and response.json["offset"] == 100_000
    assert stored(settings) == []


@pytest.mark.parametrize("kind", ["junk", "too_few_recipients", "passphrase"])
def test_ciphertext_of_the_wrong_shape_is_refused_and_dropped(client, deployment, settings, kind):
    """Refused when it is announced if its size already gives it away, else when finished."""
    import pyrage

    container = container_plaintext()
    right_size = len(age_encrypt(deployment, container))
    ciphertext = {
        "junk": lambda: os.urandom(right_size),
        "too_few_recipients": lambda: age_encrypt(deployment, container, recipients=1),
        "passphrase": lambda: pyrage.passphrase.encrypt(container, "pw"),
    }[kind]()
    created = create(client, len(ciphertext), deployment.current().version)
    if kind in ("too_few_recipients", "passphrase"):  # headers of another length
        assert created.status_code == 422 and created.json["error"] == "impossible_size"
    else:
        assert created.status_code == 201
        upload_id = created.json["id"]
        assert send(client, upload_id, ciphertext, 0).status_code == 200
        response = finish(client, upload_id, len(ciphertext))
        assert response.status_code == 422 and response.json["error"] == "bad_ciphertext"
        assert response.json["message"]
    assert stored(settings) == [] and rows(settings) == []
    assert list(settings.upload_dir.iterdir()) == []


def test_a_keyring_change_before_finishing_is_refused_with_the_new_keyring(
    client, deployment, settings
):
    ciphertext = age_encrypt(deployment, container_plaintext())
    upload_id = upload_all(client, deployment, ciphertext)
    deployment.rotate()
    response = finish(client, upload_id, len(ciphertext))
    assert response.status_code == 409 and response.json["error"] == "keyring_changed"
    fresh = response.json["keyring"]
    assert fresh["version"] == deployment.current().version and len(fresh["recipients"]) == 3
    assert stored(settings) == []
    stale = create(client, len(ciphertext), fresh["version"] - 1)
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
    size = valid_size(deployment)
    upload_id = create(client, size, version).json["id"]
    assert send(client, upload_id, b"x" * (size + 1), 0).status_code == 413


@pytest.mark.parametrize("body", [None, [], {"size": "10", "keyring_version": 1},
                                  {"size": -1, "keyring_version": 1}, {"size": 10}])
def test_malformed_requests_are_400_not_500(client, body):
    response = call(client, "POST", "/api/v1/uploads", json=body)
    assert response.status_code == 400


def test_expired_uploads_are_deleted_without_a_cron_job(client, deployment, settings):
    clock = Clock.install(client)
    ciphertext = age_encrypt(deployment, container_plaintext())
    upload_id = create(client, len(ciphertext), deployment.current().version).json["id"]
    send(client, upload_id, ciphertext[:50], 0)
    clock.advance(16 * 60)
    state = client.application.extensions["intake"]
    state.last_cleanup = float("-inf")
    call(client, "GET", "/api/v1/keyring")  # any API call runs the cleanup now and then
    assert list(settings.upload_dir.iterdir()) == [] and upload_rows(settings) == []
    assert call(client, "GET", f"/api/v1/uploads/{upload_id}").status_code == 404


@pytest.mark.parametrize("offset", ["", " 0", "0_0", "٠", "-1", "1e3", "0x0", "9" * 16])
def test_an_offset_is_plain_ascii_digits_or_400(client, deployment, offset):
    upload_id = create(client, valid_size(deployment), deployment.current().version).json["id"]
    response = call(client, "PUT", f"/api/v1/uploads/{upload_id}?offset={offset}", data=b"x",
                    content_type="application/octet-stream")
    assert response.status_code == 400 and response.json["error"] == "bad_offset"


def test_a_chunk_without_a_length_is_411(client, deployment):
    upload_id = create(client, valid_size(deployment), deployment.current().version).json["id"]
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

    from intake.storage.blobs import FilesystemBlobStore
    from intake.storage.submissions import new_submission_id, record_submission
    from intake.storage.uploads import FilesystemUploadStore

    ciphertext = age_encrypt(deployment, container_plaintext())
    upload_id = upload_all(client, deployment, ciphertext)
    factory = db.make_session_factory(db.make_engine(settings.database_url))
    uploads = FilesystemUploadStore(settings.upload_dir, factory)
    store = FilesystemBlobStore(settings.blob_dir)
    with factory() as session, session.begin():  # claimed, then the worker died
        session.execute(update(Upload).where(Upload.id == upload_id).values(state="finishing"))
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
    response = finish(client, upload_id, len(ciphertext))
    assert response.status_code == 201, response.json
    [blob] = stored(settings)
    [row] = rows(settings)
    assert blob.read_bytes() == ciphertext and row.id == blob.stem
    if submission_id is not None:
        assert row.id == submission_id  # the blob already made was completed, not a second one
    assert list(settings.upload_dir.iterdir()) == []
    assert finish(client, upload_id, len(ciphertext)).status_code == 200


def test_a_finish_still_running_elsewhere_is_not_taken_over(client, deployment, settings):
    from intake.storage.uploads import FilesystemUploadStore

    ciphertext = age_encrypt(deployment, container_plaintext())
    upload_id = upload_all(client, deployment, ciphertext)
    uploads = FilesystemUploadStore(settings.upload_dir,
                          db.make_session_factory(db.make_engine(settings.database_url)))
    with uploads.claim(upload_id) as held:  # another live request, filing it right now
        assert held is not None
        response = finish(client, upload_id, len(ciphertext))
        assert response.status_code == 409 and response.json["error"] == "in_progress"
    assert stored(settings) == []
    assert finish(client, upload_id, len(ciphertext)).status_code == 201


def test_the_cleanup_never_takes_the_file_of_an_upload_being_created(settings):
    """Seen under load: an upload created while the cleanup ran lost its part file."""
    import threading

    from intake.storage.uploads import FilesystemUploadStore

    uploads = FilesystemUploadStore(settings.upload_dir,
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


# -- the flood that shut the JavaScript path for a day (issue 10, item 6) ----------------------


def a_real_source_files_a_report(client, deployment, settings) -> None:
    """Create, upload and finish, as the page does; exactly one more submission."""
    before = len(rows(settings))
    ciphertext = age_encrypt(deployment, container_plaintext(300_000))
    created = create(client, len(ciphertext), deployment.current().version)
    assert created.status_code == 201, created.json
    upload_id = created.json["id"]
    assert send(client, upload_id, ciphertext, 0).status_code == 200
    assert finish(client, upload_id, len(ciphertext)).status_code == 201
    assert len(rows(settings)) == before + 1


def fresh_token(client) -> None:
    """Fetch the form again: each of the attacker's creates came with a fresh CSRF token."""
    page = client.get("/en/report").get_data(as_text=True)
    client.csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


@pytest.mark.slow  # 500 requests, each with a fresh form and token
def test_five_hundred_creates_of_size_one_are_refused_and_lock_no_one_out(
    client, deployment, settings
):
    version = deployment.current().version
    answers = []
    for _ in range(500):
        fresh_token(client)
        answers.append(create(client, 1, version))
    assert {(a.status_code, a.json["error"]) for a in answers} == {(422, "impossible_size")}
    assert upload_rows(settings) == [] and list(settings.upload_dir.iterdir()) == []
    a_real_source_files_a_report(client, deployment, settings)


@pytest.mark.slow  # 500 requests, each with a fresh form and token
def test_five_hundred_creates_of_the_smallest_valid_size_lock_no_one_out(
    client, deployment, settings
):
    version = deployment.current().version
    smallest = valid_size(deployment)
    # 22 (version line) + 2 x 98 (X25519 stanzas) + 48 (MAC) + 16 (nonce) + 2048 + 16 (tag).
    assert smallest == 2346
    assert create(client, smallest - 512, version).json["error"] == "impossible_size"
    for _ in range(500):
        fresh_token(client)
        assert create(client, smallest, version).status_code == 201
    state = client.application.extensions["intake"]
    assert state.uploads.usage().uploads == 500
    a_real_source_files_a_report(client, deployment, settings)


def test_a_stalled_upload_expires_after_fifteen_minutes_and_progress_keeps_it_alive(
    client, deployment, settings
):
    clock = Clock.install(client)
    ciphertext = age_encrypt(deployment, container_plaintext(300_000))
    upload_id = create(client, len(ciphertext), deployment.current().version).json["id"]
    status = f"/api/v1/uploads/{upload_id}"
    # Each chunk 14 minutes and 59 seconds after the one before: never stalled long enough.
    for offset in range(0, 200_000, 50_000):
        clock.advance(15 * 60 - 1)
        chunk = ciphertext[offset:offset + 50_000]
        assert send(client, upload_id, chunk, offset).status_code == 200
    # Sending a chunk again is not progress: it does not move the deadline.
    clock.advance(10 * 60)
    assert send(client, upload_id, ciphertext[:50_000], 0).status_code == 200
    clock.advance(5 * 60 - 1)
    assert call(client, "GET", status).json["offset"] == 200_000
    # Fifteen minutes (and at most one more) since the last progress: gone.
    clock.advance(60 + 1)
    assert call(client, "GET", status).status_code == 404
    late = send(client, upload_id, ciphertext[200_000:], 200_000)
    assert late.status_code == 404 and late.json["error"] == "unknown_upload"
    state = client.application.extensions["intake"]
    assert state.uploads.usage().uploads == 0  # no longer counted, even before the cleanup
    assert state.uploads.cleanup() == 1
    assert list(settings.upload_dir.iterdir()) == [] and upload_rows(settings) == []


def test_the_budget_counts_bytes_reserved_and_says_busy_only_when_they_are_all_taken(
    client, deployment, settings
):
    state = client.application.extensions["intake"]
    window = 64 * 1024
    state.uploads.budget = Budget(bytes=10 * window, uploads=1000, window=window)
    version = deployment.current().version
    big = age_encrypt(deployment, container_plaintext(3 * window))
    small = valid_size(deployment)
    # Small uploads reserve their size only: fifty fit where ten windows do.
    for _ in range(50):
        assert create(client, small, version).status_code == 201
    assert state.uploads.usage().reserved == 50 * small < 10 * window - window
    # Each large upload reserves one window until its bytes arrive.
    held = [create(client, len(big), version).json["id"] for _ in range(8)]
    assert state.uploads.usage().reserved == 50 * small + 8 * window
    busy = create(client, len(big), version)
    assert busy.status_code == 503 and busy.json["error"] == "busy"
    # An upload already admitted is never refused a chunk for the budget's sake...
    assert send(client, held[0], big, 0).status_code == 200
    assert state.uploads.usage().reserved == 50 * small + 7 * window + len(big)
    # ...and once filed it frees what it held.
    assert finish(client, held[0], len(big)).status_code == 201
    assert state.uploads.usage().reserved == 50 * small + 7 * window
    assert create(client, len(big), version).status_code == 201


def test_the_number_of_open_uploads_is_bounded_too(client, deployment):
    state = client.application.extensions["intake"]
    state.uploads.budget = Budget(uploads=3)
    version, size = deployment.current().version, valid_size(deployment)
    assert [create(client, size, version).status_code for _ in range(4)] == [201, 201, 201, 503]


def test_the_default_budget_holds_five_hundred_twenty_mebibyte_uploads_and_room_to_spare():
    from intake.storage.uploads import STALL_MINUTES

    budget = Budget()
    twenty_mib_report = padme(20 * MiB + 4 * 512)  # the container of a 20 MiB file, padded
    assert twenty_mib_report == 20 * MiB + 512 * 1024
    assert budget.uploads >= 10 * 500
    assert 500 * twenty_mib_report + 1500 * budget.window <= budget.bytes
    # The numbers the operators' and the threat model's documents give are these.
    root = Path(__file__).resolve().parent.parent
    for document in ("SECURITY.md", "deploy/README.md"):
        text = " ".join((root / document).read_text().split())
        assert f"{budget.bytes // 1024**3} GiB" in text and f"{budget.uploads:,}" in text
        assert f"{budget.window // MiB} MiB" in text and f"{STALL_MINUTES} minutes" in text


#: For two recipients: a 266-byte header, a 16-byte nonce, then 64 KiB chunks with 16-byte tags.
#: A grease stanza may add 13 to 190 bytes to the header, so a size is impossible only when no
#: header length explains it (a full chunk and an empty one is a one-chunk report with 16
#: bytes of grease, for instance: that one is refused at finish, tests/hostile/api.py).
IMPOSSIBLE_SIZES = {
    "empty": 0,
    "one byte": 1,
    "header and one empty chunk": 266 + 16 + 16,
    "smallest container less one": 2345,
    "smallest container plus one": 2347,
    "a container not of whole blocks, even with grease": 266 + 16 + 2048 + 200 + 16,
    "a header longer than any grease makes it": 266 + 191 + 16 + 2048 + 16,
    "1 MiB + 512, not a Padme length": 266 + 16 + (MiB + 512) + 17 * 16,
    "over the limit": 10**15,
}


@pytest.mark.parametrize("size", IMPOSSIBLE_SIZES.values(), ids=IMPOSSIBLE_SIZES.keys())
def test_sizes_no_report_can_have_are_refused_at_create(client, deployment, settings, size):
    response = create(client, size, deployment.current().version)
    expected = 413 if size > 16 * MiB else 422
    assert response.status_code == expected
    if expected == 422:
        assert response.json["error"] == "impossible_size" and "size" in response.json["message"]
    assert upload_rows(settings) == []


# -- what a key-less check can still refuse (issue 10, item 7) ---------------------------------


def header_for(deployment: Deployment) -> bytes:
    """A real age header for the deployment's recipients (the age tool's), payload cut off."""
    from intake.crypto.header import parse_header

    ciphertext = age_encrypt(deployment, container_plaintext())
    return ciphertext[: parse_header(ciphertext).length]


def test_a_readable_payload_behind_a_valid_header_is_refused(client, deployment, settings):
    header = header_for(deployment)
    version = deployment.current().version
    # The report as it was filed with 201 before: any length.
    naive = header + b"PLAINTEXT: my phone was seized at the border and they quoted my chats."
    refused = create(client, len(naive), version)
    assert refused.status_code == 422 and refused.json["error"] == "impossible_size"
    # The same text padded to a length age and a padded container can have.
    text = b"PLAINTEXT: my phone was seized at the border and they quoted my chats.\n"
    payload = (text * 100)[: 16 + SMALLEST_CONTAINER + 16]
    framed = header + payload
    assert len(framed) == valid_size(deployment)
    upload_id = create(client, len(framed), version).json["id"]
    assert send(client, upload_id, framed, 0).status_code == 200
    response = finish(client, upload_id, len(framed))
    assert response.status_code == 422 and response.json["error"] == "bad_ciphertext"
    assert "not encrypted" in response.json["message"]
    assert stored(settings) == [] and rows(settings) == []
    assert list(settings.upload_dir.iterdir()) == []


def test_a_low_order_share_is_refused_at_finish(client, deployment, settings):
    import base64

    ciphertext = age_encrypt(deployment, container_plaintext())
    share = ciphertext.split(b"-> X25519 ", 2)[1][:43]
    zero = base64.b64encode(bytes(32)).rstrip(b"=")
    forged = ciphertext.replace(share, zero, 1)
    assert len(forged) == len(ciphertext) and forged != ciphertext
    upload_id = upload_all(client, deployment, forged)
    response = finish(client, upload_id, len(forged))
    assert response.status_code == 422 and "low-order" in response.json["message"]
    assert stored(settings) == []


def test_ciphertext_with_rage_s_grease_stanza_is_filed_like_any(client, deployment, settings):
    """The browser adds a grease stanza drawn as rage draws it, so that its files have the
    shape (and the spread of lengths) of the server path's: the API must accept one."""
    for _ in range(3):
        ciphertext = encrypt_bytes(container_plaintext(), deployment.current().active_recipients())
        created = create(client, len(ciphertext), deployment.current().version)
        assert created.status_code == 201, created.json
        upload_id = created.json["id"]
        assert send(client, upload_id, ciphertext, 0).status_code == 200
        assert finish(client, upload_id, len(ciphertext)).status_code == 201
    assert len(stored(settings)) == 3
