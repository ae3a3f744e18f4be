"""The no-JavaScript form through Flask's test client: headers, cookies,
validation that keeps what was typed, limits, and the keyring gate."""

from __future__ import annotations

import io
import json
import os
import re
from datetime import date
from pathlib import Path

import pytest
from helpers import Deployment, form_tokens, make_settings, receipt_from, thanked, valid_report

from intake import schema
from intake.config import Settings
from intake.crypto import keyring as kr
from intake.crypto.container import extract_container
from intake.crypto.envelope import decrypt_stream
from intake.storage import db
from intake.web.app import build_app
from intake.web.security import SECURITY_HEADERS

MiB = 1024 * 1024


@pytest.fixture
def deployment(tmp_path) -> Deployment:
    return Deployment(tmp_path / "keys").setup(recipients=2)


@pytest.fixture
def settings(tmp_path, deployment) -> Settings:
    return make_settings(tmp_path / "var", deployment)


@pytest.fixture
def app(settings):
    return build_app(settings, {"TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


def blobs(settings: Settings) -> list[Path]:
    return sorted(settings.blob_dir.glob("*.age"))


def open_report(settings: Settings, deployment: Deployment, blob: Path, dest: Path):
    plain = io.BytesIO()
    with blob.open("rb") as fh:
        decrypt_stream(fh, plain, [deployment.identities[0]])
    plain.seek(0)
    return extract_container(plain, dest)


def post(
    client,
    data: dict,
    files: list[tuple[str, bytes]] | None = None,
    lang: str = "en",
    tokens: bool = True,
):
    page = client.get(f"/{lang}/report")
    payload = dict(form_tokens(page.get_data(as_text=True))) if tokens else {}
    payload.update(data)
    payload["attachments"] = [(io.BytesIO(content), name) for name, content in files or []]
    return client.post(f"/{lang}/report", data=payload, content_type="multipart/form-data")


# -- every response --------------------------------------------------------------------------


def _urls(app) -> list[tuple[str, str]]:
    urls = []
    for rule in app.url_map.iter_rules():
        url = rule.rule.replace("<lang>", "en").replace("<path:filename>", "intake.css")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            urls.append((method, url))
    return urls + [("GET", "/en/no-such-page"), ("GET", "/xx/report"), ("DELETE", "/en/report")]


def test_every_route_and_error_answers_with_the_security_headers(app, client):
    urls = _urls(app)
    assert ("POST", "/en/report") in urls and ("GET", "/static/intake.css") in urls
    for method, url in urls:
        response = client.open(url, method=method)
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (method, url, name)
        assert "Server" not in response.headers


def test_the_csp_forbids_inline_code_and_other_origins(client):
    csp = client.get("/en/report").headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "http" not in csp


def test_no_page_loads_anything_from_another_origin(client):
    for url in ("/en/", "/en/report", "/en/thanks"):
        html = client.get(url).get_data(as_text=True)
        for attr in re.findall(r'(?:src|action|href)="([^"]*)"', html):
            if attr.startswith("http"):
                assert 'class="quick-exit"' in html and attr == "https://www.wikipedia.org/", attr


def test_only_the_session_cookie_is_ever_set_and_it_is_strict(client):
    assert "Set-Cookie" not in client.get("/en/").headers
    cookies = client.get("/en/report").headers.getlist("Set-Cookie")
    assert len(cookies) == 1
    cookie = cookies[0]
    assert cookie.startswith("session=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # plain HTTP (an onion service)


def test_the_session_cookie_is_secure_over_https(app):
    client = app.test_client()
    cookie = client.get("/en/report", base_url="https://intake.example").headers["Set-Cookie"]
    assert "Secure" in cookie


def test_the_root_chooses_a_language_and_unknown_ones_are_404(client):
    assert client.get("/").status_code == 302
    assert client.get("/xx/").status_code == 404


# -- a good report ---------------------------------------------------------------------------


def test_a_report_is_stored_only_as_ciphertext_and_decrypts_to_what_was_sent(
    client, settings, deployment, tmp_path
):
    narrative = "رسالة مشبوهة وصلت عبر واتساب https://example.com/x?a=1 ثم توقف الهاتف"
    attachment = bytes(range(256)) * 4096  # 1 MiB
    response = post(
        client,
        valid_report(narrative=narrative),
        files=[("لقطة شاشة.png", attachment), ("empty.txt", b"")],
    )
    # The answer to the POST itself is the thank-you page with the receipt: no redirect.
    assert thanked(response) and "Location" not in response.headers
    [blob] = blobs(settings)
    raw = blob.read_bytes()
    assert raw.startswith(b"age-encryption.org/v1\n")
    assert narrative.encode() not in raw and attachment[:4096] not in raw
    report = open_report(settings, deployment, blob, tmp_path / "case")
    assert report.document["fields"]["narrative"] == narrative
    assert report.document["lang"] == "en"
    names = [a["name"] for a in report.document["attachments"]]
    assert names == ["لقطة شاشة.png", "empty.txt"]
    stored = report.directory / report.document["attachments"][0]["path"]
    assert stored.read_bytes() == attachment
    assert list(settings.spool_dir.iterdir()) == []


def test_the_thank_you_page_shows_nothing_that_identifies_the_report(client, settings):
    response = post(client, valid_report())
    page = response.get_data(as_text=True)
    [blob] = blobs(settings)
    assert blob.stem not in page
    assert "Thank you" in page
    # The receipt is the one thing on it, and only in the page: never in a header.
    receipt = receipt_from(page)
    assert receipt and all(receipt not in v for v in response.headers.values())
    assert response.headers["Cache-Control"] == "no-store"


def test_the_row_keeps_only_the_day_size_version_and_state(client, settings, deployment):
    post(client, valid_report())
    from intake.storage.models import Submission

    factory = db.make_session_factory(db.make_engine(settings.database_url))
    with factory() as session:
        [row] = session.query(Submission).all()
    [blob] = blobs(settings)
    assert row.id == blob.stem and row.size == blob.stat().st_size
    assert row.keyring_version == deployment.current().version and row.state == "received"


def test_hostile_file_names_are_neutralised_inside_and_kept_only_in_report_json(
    client, settings, deployment, tmp_path
):
    names = ["../../etc/passwd", "invoice\u202efdp.exe", "\u200bhidden.txt"]
    post(client, valid_report(), files=[(n, b"x") for n in names])
    report = open_report(settings, deployment, blobs(settings)[0], tmp_path / "case")
    paths = [a["path"] for a in report.document["attachments"]]
    assert all(re.fullmatch(r"attachments/\d\d-[A-Za-z0-9._-]+", p) for p in paths), paths
    assert paths[1].endswith(".exe")
    assert [a["name"] for a in report.document["attachments"]] == [
        "passwd",
        "invoicefdp.exe",
        "hidden.txt",
    ]


# -- bad input keeps what was typed ----------------------------------------------------------


def test_errors_name_the_field_and_keep_everything_typed(client, settings):
    typed = valid_report(narrative="ما حدث <script>alert(1)</script>", contact_handle="@someone.42")
    del typed["country"]
    typed["categories"] = []
    response = post(client, typed, files=[("a.png", b"png")])
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "ما حدث &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'value="@someone.42"' in html
    summary = html.split('id="error-summary"')[1].split("</div>")[0]
    assert 'href="#country"' in summary and 'href="#categories"' in summary
    assert 'aria-describedby="country-error"' in html or "country-error" in html
    assert "choose them again" in html
    assert blobs(settings) == []


def test_an_empty_report_is_a_400_page_not_a_500(client, settings):
    response = post(client, {})
    assert response.status_code == 400
    assert "Please correct the following" in response.get_data(as_text=True)
    assert blobs(settings) == []


def test_a_missing_csrf_token_keeps_the_text_and_asks_to_send_again(client, settings):
    response = post(client, valid_report(narrative="keep this text"), tokens=False)
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "keep this text" in html and "expired" in html
    assert blobs(settings) == []
    tokens = form_tokens(html)  # the page carries a fresh token: sending again works
    again = client.post(
        "/en/report",
        data={**valid_report(narrative="keep this text"), **tokens},
        content_type="multipart/form-data",
    )
    assert thanked(again)


def test_invalid_utf8_is_a_400_that_keeps_the_form(client, settings):
    page = client.get("/en/report").get_data(as_text=True)
    tokens = form_tokens(page)
    boundary = "xyzzy"
    parts = []
    for name, value in {**tokens, **valid_report()}.items():
        for item in value if isinstance(value, list) else [value]:
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
                + (item.encode() if name != "narrative" else b"bad \xff\xfe")
                + b"\r\n"
            )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    response = client.post(
        "/en/report", data=body, content_type=f"multipart/form-data; boundary={boundary}"
    )
    assert response.status_code == 400
    assert "could not be read" in response.get_data(as_text=True)
    assert blobs(settings) == []


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_a_wrong_content_type_is_a_415(client, settings, content_type):
    response = client.post("/en/report", data=json.dumps(valid_report()), content_type=content_type)
    assert response.status_code == 415
    assert blobs(settings) == []


def test_a_truncated_multipart_body_is_a_4xx(client, settings):
    tokens = form_tokens(client.get("/en/report").get_data(as_text=True))
    body = (
        f'--b\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{tokens["csrf_token"]}'
        '\r\n--b\r\nContent-Disposition: form-data; name="attachments"; filename="a.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\nhalf a fi"
    ).encode()
    response = client.post("/en/report", data=body, content_type="multipart/form-data; boundary=b")
    assert 400 <= response.status_code < 500
    assert blobs(settings) == [] and list(settings.spool_dir.glob("*")) == []


def test_a_request_over_the_size_limit_is_a_413_page(client, settings):
    response = post(client, valid_report(), files=[("big.bin", b"\0" * (9 * MiB))])
    assert response.status_code == 413
    assert "too large" in response.get_data(as_text=True)
    assert blobs(settings) == []


def test_too_many_files_keep_the_text(client, settings):
    from intake.limits import MAX_ATTACHMENTS

    files = [(f"f{i}.txt", b"x") for i in range(MAX_ATTACHMENTS + 1)]
    response = post(client, valid_report(narrative="still here"), files=files)
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "still here" in html and f"at most {MAX_ATTACHMENTS} files" in html
    assert blobs(settings) == []


def test_a_text_over_its_limit_is_refused_with_the_limit_named(client, settings):
    from intake import schema

    limit = schema.FIELDS["narrative"].max_length
    response = post(client, valid_report(narrative="a" * (limit + 1)))
    assert response.status_code == 400
    assert f"{limit} characters" in response.get_data(as_text=True)
    assert blobs(settings) == []


# -- the keyring gate ------------------------------------------------------------------------


def test_an_invalid_keyring_closes_the_intake_and_a_newer_valid_one_reopens_it(
    client, settings, deployment, caplog
):
    assert client.get("/en/report").status_code == 200
    good = deployment.keyring_path.read_bytes()
    deployment.keyring_path.write_bytes(good.replace(b"Reviewer 0", b"Mallory"))
    closed = client.get("/en/report")
    assert closed.status_code == 503
    html = closed.get_data(as_text=True)
    assert "temporarily closed" in html and "signature" not in html
    assert any("changed after it was signed" in r.getMessage() for r in caplog.records)
    refused = client.post("/en/report", data=valid_report(), content_type="multipart/form-data")
    assert refused.status_code == 503
    deployment.keyring_path.write_bytes(good)
    deployment.rotate()
    assert client.get("/en/report").status_code == 200
    assert thanked(post(client, valid_report()))


def test_a_signed_keyring_with_a_hidden_label_closes_the_intake(client, deployment, caplog):
    """An insider with an admin key signs a recipient whose label erases its own line."""
    import base64

    from pyrage import x25519

    assert client.get("/en/report").status_code == 200
    document = json.loads(deployment.keyring_path.read_text())
    document["version"] += 1
    document["recipients"].append({
        "id": "r-hidden", "recipient": str(x25519.Identity.generate().to_public()),
        "label": "\x1b[2K\r", "status": "active", "added_at": document["issued_at"],
    })
    body = {k: v for k, v in document.items() if k != "signatures"}
    signature = base64.b64encode(deployment.admin.sign(kr.canonical_json(body))).decode()
    document["signatures"] = [{"admin": deployment.admin_id, "sig": signature}]
    deployment.keyring_path.write_text(json.dumps(document))
    assert client.get("/en/report").status_code == 503
    assert any("label of recipient r-hidden" in r.getMessage() for r in caplog.records)


def test_an_older_keyring_is_refused_as_a_rollback(client, deployment, caplog):
    old = deployment.keyring_path.read_bytes()
    deployment.rotate()
    assert client.get("/en/report").status_code == 200
    deployment.keyring_path.write_bytes(old)
    assert client.get("/en/report").status_code == 503
    assert any("rollback" in r.getMessage() for r in caplog.records)


def test_an_expired_or_missing_keyring_closes_the_intake(client, deployment):
    deployment.keyring_path.unlink()
    assert client.get("/en/report").status_code == 503


def test_a_stale_form_after_a_keyring_change_keeps_the_text_then_goes_through(
    client, settings, deployment, tmp_path
):
    page = client.get("/en/report").get_data(as_text=True)
    tokens = form_tokens(page)
    deployment.rotate()
    data = {**tokens, **valid_report(narrative="written before the rotation")}
    response = client.post("/en/report", data=data, content_type="multipart/form-data")
    html = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "written before the rotation" in html and "changed" in html
    again = client.post(
        "/en/report", data={**data, **form_tokens(html)}, content_type="multipart/form-data"
    )
    assert thanked(again)
    [blob] = blobs(settings)
    # encrypted to the new keyring: the newest reviewer can open it
    plain = io.BytesIO()
    with blob.open("rb") as fh:
        decrypt_stream(fh, plain, [deployment.identities[-1]])
    assert b"written before the rotation" in plain.getvalue()


def test_the_form_lists_the_readers_with_their_fingerprints(client, deployment):
    html = client.get("/en/report").get_data(as_text=True)
    for recipient in deployment.current().recipients:
        assert recipient.label in html and kr.fingerprint(recipient.recipient) in html


def test_an_unsigned_keyring_is_never_used(tmp_path, settings, deployment):
    deployment.write(kr.renew_keyring(deployment.current().document), sign=False)
    client = build_app(settings, {"TESTING": True}).test_client()
    assert client.get("/en/report").status_code == 503


def test_postgresql_stores_reports_the_same_way(tmp_path, deployment):
    url = os.environ.get("INTAKE_TEST_DATABASE_URL")
    if not url:
        pytest.skip("INTAKE_TEST_DATABASE_URL is not set (.ci/run sets it)")
    from test_storage import clean_postgres

    clean_postgres(url)
    db.upgrade(url)
    engine = db.make_engine(url)
    settings = Settings(
        data_dir=tmp_path / "pg",
        database_url=url,
        keyring_path=deployment.keyring_path,
        admins_path=deployment.admins_path,
        max_upload=8 * MiB,
        keyring_check_seconds=0,
    )
    client = build_app(settings, {"TESTING": True}).test_client()
    assert thanked(post(client, valid_report(narrative="on postgres")))
    from intake.storage.models import Submission

    with db.make_session_factory(engine)() as session:
        [row] = session.query(Submission).all()
    [blob] = blobs(settings)
    assert row.id == blob.stem and row.keyring_version == deployment.current().version
    engine.dispose()


def test_the_secret_key_is_made_once_with_mode_0600(settings, app):
    mode = settings.secret_key_path.stat().st_mode & 0o777
    assert mode == 0o600
    key = settings.secret_key_path.read_bytes()
    build_app(settings, {"TESTING": True})
    assert settings.secret_key_path.read_bytes() == key


def test_orphans_are_reported_at_start_and_half_written_blobs_removed(settings, caplog):
    from intake.storage.blobs import FilesystemBlobStore

    store = FilesystemBlobStore(settings.blob_dir)
    with store.writer("ab" * 16, date(2026, 11, 28)) as fh:
        fh.write(b"a blob whose row never came")
    (settings.blob_dir / ".tmp-00000000deadbeef").write_bytes(b"half")
    build_app(settings, {"TESTING": True})
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "1 blob(s) without a row" in messages and "temp file(s) removed" in messages
    assert store.temp_files() == [] and store.exists("ab" * 16)


@pytest.mark.parametrize("part", [
    # A file under a text field's name, and text under the file input's name.
    b'Content-Disposition: form-data; name="contact_handle"; filename="\\x00"\r\n\r\nfile',
    b'Content-Disposition: form-data; name="narrative"; filename="a.txt"\r\n\r\nfile',
    b'Content-Disposition: form-data; name="attachments"\r\n\r\nnot a file',
])
def test_parts_of_the_wrong_kind_are_a_clear_answer_not_a_500(client, part):
    tokens = form_tokens(client.get("/en/report").get_data(as_text=True))
    fields = "".join(
        f'--0\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in [*tokens.items(), *_flat(valid_report())]
    ).encode()
    body = fields + b"--0\r\n" + part + b"\r\n--0--\r\n"
    response = client.post("/en/report", data=body,
                           content_type="multipart/form-data; boundary=0")
    assert response.status_code in (200, 400), response.status_code


def _flat(report: dict) -> list[tuple[str, str]]:
    return [(k, item) for k, v in report.items()
            for item in (v if isinstance(v, list) else [v])]


def test_line_breaks_are_stored_as_the_browser_path_stores_them(client, settings, deployment,
                                                                 tmp_path):
    """A form posts CRLF; the page's script reads LF: the report holds LF either way."""
    assert thanked(post(client, valid_report(narrative="first\r\nsecond\rthird\n")))
    report = open_report(settings, deployment, blobs(settings)[0], tmp_path / "case")
    assert report.document["fields"]["narrative"] == "first\nsecond\nthird\n"


@pytest.mark.parametrize("field, value", [
    ("risk_now", "catastrophic"),               # a radio
    ("device_type", "toaster"),                 # a select
    ("country", "XX"),                          # the country list
    ("categories", ["phishing", "telepathy"]),  # a multiselect, one answer of two unknown
    ("categories", ["phishing "]),              # a known value with a space added
])
def test_an_answer_outside_the_schemas_choices_is_refused_by_name(client, settings, field, value):
    """Choices are checked against frozen sets of the schema's values (intake.web.forms):
    anything else still gets WTForms' own check, its message next to the field."""
    response = post(client, valid_report(**{field: value}))
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    summary = html.split('id="error-summary"')[1].split("</div>")[0]
    assert f'href="#{field}"' in summary
    assert "valid choice" in html
    assert blobs(settings) == []


def test_every_choice_of_the_schema_is_accepted(client, settings):
    """The other side of the frozen sets: no value the schema offers is refused."""
    for name, field in schema.FIELDS.items():
        if field.kind not in ("radio", "select", "country") and field.kind not in (
            schema.MULTI_KINDS
        ):
            continue
        choices = schema.country_choices() if field.kind == "country" else field.choices
        values = [c.value for c in choices]
        # What the schema's conditional rules ask for once some answers are given.
        context = {"subject_agreed": "y", "contact_handle": "@someone"}
        for answer in [values] if field.kind in schema.MULTI_KINDS else values:
            response = post(client, valid_report(**context, **{name: answer}))
            assert thanked(response), (name, answer)
