"""Hostile input: a bounded fuzz run over the form and the upload API.

In-process (Flask's test client), Hypothesis sends malformed multipart bodies,
the form with random values in every field, and random sequences of upload API
calls (wrong, negative, huge and overlapping offsets, chunks past the limits,
chunks after finishing, unknown ids, junk age headers, bad JSON, wrong types,
missing CSRF). Against a real gunicorn with the deploy configuration, a fixed
set of nasty requests is sent over raw sockets. No answer may be a 5xx, every
API answer must be one openapi.json describes, and afterwards every worker
must still answer and the error log must hold no traceback.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import random as randomlib
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
import requests
from helpers import Deployment, form_tokens, gunicorn, make_settings, server_env, valid_report
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    multiple,
    rule,
    run_state_machine_as_test,
)

from intake import schema
from intake.web import api
from intake.web.app import build_app

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
MAX_UPLOAD = 1 * MiB  # small, so that the body limit is cheap to reach
OPENAPI = json.loads(Path(api.__file__).with_name("openapi.json").read_text())
FUZZ = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass
class World:
    deployment: Deployment
    app: object
    client: object
    csrf: str
    version: int


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    tmp = tmp_path_factory.mktemp("fuzz")
    deployment = Deployment(tmp / "keys").setup(recipients=2)
    app = build_app(make_settings(tmp / "var", deployment, max_upload=MAX_UPLOAD),
                    {"TESTING": True})
    client = app.test_client()
    tokens = form_tokens(client.get("/en/report").get_data(as_text=True))
    return World(deployment, app, client, tokens["csrf_token"], int(tokens["keyring_version"]))


def no_server_error(response, what: object) -> None:
    body = response.get_data()[:300]
    event(f"HTTP {response.status_code}")  # --hypothesis-show-statistics shows what was reached
    assert response.status_code < 500, f"{response.status_code} for {what!r}: {body!r}"


# -- malformed multipart bodies --------------------------------------------------------------

FIELD_NAMES = [*schema.FIELDS, "csrf_token", "keyring_version"]
BCHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'()+_,-./:=? "
header_bytes = st.one_of(
    st.binary(max_size=60),
    st.sampled_from([b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", "名前".encode(), b"\x00", b""]),
)


@st.composite
def multipart_requests(draw, csrf: str):
    """(Content-Type, body): a multipart body that is wrong in one or more ways."""
    if draw(st.integers(0, 9)) == 0:
        content_type = draw(st.sampled_from([
            "multipart/form-data; boundary=x", "multipart/form-data", "multipart/form-data; "
            "boundary=", "multipart/mixed; boundary=x", 'multipart/form-data; boundary="x"',
        ]))
        return content_type, draw(st.binary(max_size=4000))
    boundary = draw(st.one_of(
        st.text(BCHARS, min_size=1, max_size=70).map(str.strip).filter(bool),
        st.just("b" * 200),
    ))
    declared = draw(st.sampled_from(["same", "other", "quoted", "missing", "params"]))
    content_type = {
        "same": f"multipart/form-data; boundary={boundary}",
        "other": f"multipart/form-data; boundary={boundary}x",
        "quoted": f'multipart/form-data; boundary="{boundary}"',
        "missing": "multipart/form-data",
        "params": f"multipart/form-data; charset=latin-9; boundary={boundary}; x=\x7f",
    }[declared]
    b = boundary.encode()
    body = draw(st.binary(max_size=40))  # a preamble
    parts = draw(st.lists(st.tuples(
        st.one_of(st.sampled_from(FIELD_NAMES).map(str.encode), header_bytes),
        st.one_of(st.none(), header_bytes),  # a filename
        st.one_of(st.none(), header_bytes),  # a Content-Type
        st.sampled_from([0, 0, 0, 200, 9000, 70_000]),  # an extra header this long
        st.one_of(st.binary(max_size=300), st.sampled_from(
            [b"\xff", b"\xc3\x28", b"ok", b"\r\n--" + b, csrf.encode()])),
        st.booleans(),  # the header/body separator is present
    ), max_size=8))
    for name, filename, ctype, junk, value, separated in parts:
        body += b"--" + b + b"\r\nContent-Disposition: form-data; name=\"" + name + b"\""
        if filename is not None:
            body += b'; filename="' + filename + b'"'
        body += b"\r\n"
        if ctype is not None:
            body += b"Content-Type: " + ctype + b"\r\n"
        if junk:
            body += b"X-Junk: " + b"j" * junk + b"\r\n"
        body += (b"\r\n" if separated else b"") + value + b"\r\n"
    body += draw(st.sampled_from([
        b"--" + b + b"--\r\n", b"--" + b + b"--", b"", b"--" + b, b"--" + b + b"\r\n",
        b"--" + b[:-1],
    ]))
    body += draw(st.sampled_from([b"", b"epilogue", b"\r\n--" + b + b"--\r\n"]))
    return content_type, body


def test_malformed_multipart_bodies_are_refused_never_a_500(world):
    @FUZZ
    @given(request=multipart_requests(world.csrf), lang=st.sampled_from(["en", "ar"]))
    def run(request, lang):
        content_type, body = request
        response = world.client.post(f"/{lang}/report", data=body, content_type=content_type)
        no_server_error(response, request)
        assert response.status_code in (400, 413, 415), (response.status_code, request)

    run()


# -- the form with random values in every field ---------------------------------------------

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
long_text = st.one_of(text, st.integers(0, 20_000).map(lambda n: "x" * n))


def field_values(field: schema.Field):
    choices = [c.value for c in field.choices] if field.choices else []
    if field.kind == "country":
        choices = [c.value for c in schema.country_choices()]
    valid = st.sampled_from(choices) if choices else text
    return st.one_of(
        valid,
        text,
        long_text,
        st.lists(st.one_of(valid, text), max_size=4),
        st.sampled_from(["", "y", "on", "2026-13-45", "0000", "٢٠٢٦-٠٣", "2026-03-14"]),
    )


FORM_FIELDS = {n: f for n, f in schema.FIELDS.items() if f.kind != "files"}


@st.composite
def form_posts(draw, world: World):
    data: dict[str, object] = dict(valid_report()) if draw(st.booleans()) else {}
    for name in draw(st.lists(st.sampled_from(sorted(FORM_FIELDS)), unique=True)):
        if draw(st.integers(0, 4)) == 0:
            data.pop(name, None)
        else:
            data[name] = draw(field_values(FORM_FIELDS[name]))
    data["csrf_token"] = draw(st.sampled_from([world.csrf, world.csrf, "", "x" * 40,
                                               world.csrf[:-2] + "AA"]))
    data["keyring_version"] = draw(st.one_of(st.just(str(world.version)), text))
    files = draw(st.lists(st.tuples(
        st.binary(max_size=2000), text,
        st.one_of(st.text(st.characters(min_codepoint=32, max_codepoint=0x2fff), max_size=40),
                  st.just("image/png"))), max_size=3))
    return data, files, draw(st.booleans())


def test_the_form_with_random_values_in_every_field_never_500s(world):
    @FUZZ
    @given(post=form_posts(world))
    def run(post):
        data, files, multipart = post
        if multipart:
            payload = dict(data)
            payload["attachments"] = [
                (io.BytesIO(content), name, ctype) for content, name, ctype in files
            ]
            response = world.client.post("/en/report", data=payload,
                                         content_type="multipart/form-data")
        else:
            response = world.client.post(
                "/en/report", data=urlencode(data, doseq=True),
                content_type="application/x-www-form-urlencoded")
        no_server_error(response, post)
        assert response.status_code in (200, 400, 409, 413), (response.status_code, post)

    run()


# -- the upload API ---------------------------------------------------------------------------

VERSION_LINE = b"age-encryption.org/v1\n"
#: The version line, two X25519 stanzas of 98 bytes and the MAC line.
TWO_RECIPIENT_HEADER = 22 + 2 * 98 + 48


def b64(raw: bytes) -> bytes:
    return base64.b64encode(raw).rstrip(b"=")


def age_stanza(kind: bytes = b"X25519", random=os.urandom) -> bytes:
    return b"-> " + kind + b" " + b64(random(32)) + b"\n" + b64(random(32)) + b"\n"


def age_mac(random=os.urandom) -> bytes:
    return b"--- " + b64(random(32)) + b"\n"


#: Payload lengths (nonce and sealed chunks) of Padmé-padded containers of 2048 to 6144 bytes.
VALID_PAYLOADS = [16 + n + 16 for n in range(2048, 6145, 512)]


@st.composite
def ciphertexts(draw) -> bytes:
    """Something to upload: well-formed age (for two recipients) or one of many wrongs.

    A well-formed one has the length of a real report (see VALID_PAYLOADS) and a
    random payload (ciphertext does not compress); the others mostly have
    lengths no report has, which the API refuses when the upload is created.
    """

    def random(n: int) -> bytes:  # drawn, so that a failure replays and shrinks
        return draw(st.binary(min_size=n, max_size=n))

    def noise(n: int) -> bytes:  # incompressible, and still replayed from a drawn seed
        return randomlib.Random(draw(st.integers(0, 2**32))).randbytes(n)

    def stanza(kind: bytes = b"X25519") -> bytes:
        return age_stanza(kind, random)

    def mac() -> bytes:
        return age_mac(random)

    kind = draw(st.sampled_from([
        "good", "good", "random", "junk_stanzas", "count", "count", "other_type", "oversized",
        "long_line", "armored", "truncated", "mutated", "no_payload",
    ]))
    payload = draw(st.one_of(st.binary(min_size=32, max_size=300),
                             st.sampled_from(VALID_PAYLOADS).map(noise)))
    if kind == "good":
        return VERSION_LINE + stanza() + stanza() + mac() + noise(draw(st.sampled_from(
            VALID_PAYLOADS)))
    if kind == "random":
        return draw(st.binary(max_size=3000))
    if kind == "junk_stanzas":
        lines = draw(st.lists(st.binary(max_size=90).filter(lambda x: b"\n" not in x),
                              max_size=8))
        return VERSION_LINE + b"".join(b"-> " + line + b"\n" for line in lines) + mac() + payload
    if kind == "count":
        n = draw(st.sampled_from([0, 1, 3, 64, 65]))
        many = [age_stanza(random=bytes) for _ in range(n)] if n > 3 else [stanza()] * n
        return VERSION_LINE + b"".join(many) + mac() + payload
    if kind == "other_type":
        return VERSION_LINE + stanza() + stanza(draw(st.sampled_from(
            [b"scrypt", b"ssh-ed25519", b"X25519 extra", b"\xff", b"grease-(]"]))) + mac() + payload
    if kind == "oversized":
        return VERSION_LINE + age_stanza(random=bytes) * 200 + mac() + payload
    if kind == "long_line":
        return VERSION_LINE + b"-> X25519 " + b"A" * draw(st.sampled_from([100, 20_000])) + payload
    if kind == "armored":
        return b"-----BEGIN AGE ENCRYPTED FILE-----\n" + b64(payload) + b"\n"
    if kind == "truncated":
        whole = VERSION_LINE + stanza() + stanza() + mac()
        return whole[: draw(st.integers(0, len(whole) - 1))]
    if kind == "no_payload":
        return VERSION_LINE + stanza() + stanza() + mac() + payload[:draw(st.integers(0, 31))]
    whole = bytearray(VERSION_LINE + stanza() + stanza() + mac() + payload)
    for _ in range(draw(st.integers(1, 4))):
        whole[draw(st.integers(0, len(whole) - 1))] = draw(st.integers(0, 255))
    return bytes(whole)


def test_junk_age_headers_at_finish_are_refused_with_422_never_500(world):
    headers = {"X-CSRFToken": world.csrf}

    @FUZZ
    @given(ciphertext=ciphertexts())
    def run(ciphertext):
        client = world.client
        created = client.post("/api/v1/uploads", headers=headers,
                              json={"size": len(ciphertext), "keyring_version": world.version})
        documented(created, "POST", "/api/v1/uploads", ciphertext)
        if created.status_code == 422:  # a size no report has: refused before a byte is sent
            assert created.get_json()["error"] == "impossible_size"
            assert len(ciphertext) - TWO_RECIPIENT_HEADER not in VALID_PAYLOADS
            return
        assert created.status_code == 201, created.get_json()
        upload_id = created.get_json()["id"]
        put = client.put(f"/api/v1/uploads/{upload_id}?offset=0", headers=headers,
                         data=ciphertext, content_type="application/octet-stream")
        assert put.status_code == 200, put.get_json()
        response = client.post(f"/api/v1/uploads/{upload_id}/finish", headers=headers,
                               json={"size": len(ciphertext)})
        no_server_error(response, ciphertext)
        documented(response, "POST", f"/api/v1/uploads/{upload_id}/finish", ciphertext)
        assert response.status_code in (201, 422), (response.get_json(), ciphertext)
        if response.status_code == 201:  # only a well-formed header for two recipients
            assert ciphertext.startswith(VERSION_LINE) and ciphertext.count(b"\n-> X25519 ") == 2
        else:
            world.app.extensions["intake"].uploads.discard(upload_id)

    run()


junk_ids = st.one_of(
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", min_size=32,
            max_size=32),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/"),
            min_size=1, max_size=80),
    st.sampled_from(["..", "%2e%2e", "A" * 31 + "\n", "A" * 33, " " * 32]),
)
offsets = st.one_of(
    st.integers(-5, 5000).map(str),
    st.sampled_from(["", "-1", "1e3", "0x10", " 7", "٣", "1_0", "9" * 30, "9" * 5000, "nan",
                     "-" + "9" * 30, "0" * 100]),
)
csrf_variants = st.sampled_from(["good", "good", "good", "missing", "empty", "junk", "latin1"])
junk_json = st.one_of(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                                    max_size=3),
        max_leaves=8,
    ).map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=200),
    st.sampled_from([b"{", b'{"size": 1e999, "keyring_version": 1}', b'{"size": 1' + b"0" * 5000
                     + b', "keyring_version": 1}', b"\xff\xfe{}", b'{"size": NaN}', b"[]" * 1000]),
)
content_types = st.sampled_from(["application/json", "application/json; charset=latin-1",
                                 "text/plain", "application/x-www-form-urlencoded",
                                 "multipart/form-data; boundary=x", "", "application/json\x00"])


def _operation(path: str, method: str) -> tuple[str, dict] | None:
    """The operation of openapi.json an API path and method match, if any."""
    for template, item in OPENAPI["paths"].items():
        pattern = "^" + re.sub(r"{[^}]+}", "[^/]+", re.escape(template).replace(r"\{", "{")
                               .replace(r"\}", "}")) + "$"
        if re.match(pattern, path) and method.lower() in item:
            return template, item[method.lower()]
    return None


def documented(response, method: str, path: str, what: object) -> None:
    """No 5xx, and an answer openapi.json lists for this operation, in the JSON error shape."""
    no_server_error(response, (method, path, what))
    found = _operation(path.split("?", 1)[0], method)
    if found is None:  # a path with a character the router cannot match: the site's 404 page
        assert response.status_code == 404, (method, path, response.status_code)
        return
    template, operation = found
    status = str(response.status_code)
    assert status in operation["responses"], (method, template, status, response.get_data()[:300])
    if response.status_code >= 400:
        body = response.get_json()
        assert isinstance(body, dict) and isinstance(body.get("message"), str), body
        schema_ = operation["responses"][status]["content"]["application/json"]["schema"]
        assert body["error"] in schema_["allOf"][1]["properties"]["error"]["enum"], (
            method, template, status, body)


@dataclass
class Model:
    """What the API should say about one upload."""

    id: str
    size: int
    ciphertext: bytes
    received: int = 0
    state: str = "open"  # open, finished, gone


class ApiMachine(RuleBasedStateMachine):
    """Random sequences of upload API calls, good and bad, against one app; the answers to
    well-formed calls are checked against a model of each upload."""

    uploads = Bundle("uploads")

    def __init__(self, world: World):
        super().__init__()
        self.world = world
        self.created: list[str] = []

    def call(self, method: str, path: str, csrf: str = "good", **kwargs):
        headers = kwargs.pop("headers", {})
        token = {"good": self.world.csrf, "missing": None, "empty": "", "junk": "x.y.z",
                 "latin1": "é" * 10}[csrf]
        if token is not None:
            headers["X-CSRFToken"] = token
        response = self.world.client.open(path, method=method, headers=headers, **kwargs)
        documented(response, method, path, (csrf, kwargs.get("data", b"")[:100]))
        error = (response.get_json() or {}).get("error", "") if response.is_json else ""
        event(f"{method} {response.status_code} {error}".strip())
        return response

    def put(self, upload: Model, offset: int, chunk: bytes):
        """A well-formed PUT, its answer checked against the model."""
        response = self.call("PUT", f"/api/v1/uploads/{upload.id}?offset={offset}", data=chunk,
                             content_type="application/octet-stream",  # as a browser sends it:
                             environ_overrides={"CONTENT_LENGTH": str(len(chunk))})
        end = offset + len(chunk)
        if upload.state == "gone":
            expected = (404, "unknown_upload")
        elif offset < 0:
            expected = (400, "bad_offset")
        elif upload.state != "open":
            expected = (409, "not_open")
        elif end > upload.size:
            expected = (413, "beyond_size")
        elif offset > upload.received:
            expected = (409, "offset_mismatch")
        else:
            upload.received = max(upload.received, end)
            expected = (200, None)
        body = response.get_json()
        assert (response.status_code, body.get("error")) == expected, (offset, len(chunk), body)
        if expected[1] == "offset_mismatch" or expected[0] == 200:
            assert body["offset"] == upload.received, body

    def finish_checked(self, upload: Model) -> None:
        response = self.call("POST", f"/api/v1/uploads/{upload.id}/finish",
                             json={"size": upload.size})
        status = response.status_code
        if upload.state == "gone":
            assert status == 404
        elif upload.state == "finished":
            assert status == 200
        elif upload.received != upload.size:
            assert status == 409 and response.get_json()["offset"] == upload.received
        else:
            assert status in (201, 422), response.get_json()
            well_formed = upload.ciphertext.startswith(VERSION_LINE) and status == 201
            assert well_formed or status == 422
            upload.state = "finished" if status == 201 else "gone"

    @rule(target=uploads, ciphertext=ciphertexts())
    def create(self, ciphertext):
        body = {"size": len(ciphertext), "keyring_version": self.world.version}
        response = self.call("POST", "/api/v1/uploads", json=body)
        if len(ciphertext) - TWO_RECIPIENT_HEADER in VALID_PAYLOADS:
            assert response.status_code == 201, response.get_json()
        elif response.status_code == 422:  # a size no report has
            assert response.get_json()["error"] == "impossible_size"
            return multiple()
        created = response.get_json()
        assert created["offset"] == 0 and created["max_chunk"] == api.MAX_CHUNK
        self.created.append(created["id"])
        return Model(created["id"], len(ciphertext), ciphertext)

    @rule(size=st.one_of(st.integers(-3, 3), st.integers(MAX_UPLOAD - 2, MAX_UPLOAD + 2),
                         st.sampled_from([10**30, -(10**30), True, 1.5, "10", None])),
          version=st.sampled_from(["current", "stale", "huge", "negative", "text"]),
          csrf=csrf_variants)
    def create_wrongly(self, size, version, csrf):
        body = {"size": size, "keyring_version": {
            "current": self.world.version, "stale": self.world.version - 1, "huge": 10**30,
            "negative": -1, "text": str(self.world.version)}[version]}
        response = self.call("POST", "/api/v1/uploads", csrf, json=body)
        if response.status_code == 201:
            self.created.append(response.get_json()["id"])

    @rule(body=junk_json, content_type=content_types, csrf=csrf_variants)
    def create_junk(self, body, content_type, csrf):
        self.call("POST", "/api/v1/uploads", csrf, data=body, content_type=content_type)

    @rule(upload=uploads, spans=st.lists(st.tuples(st.integers(-3, 3000), st.integers(0, 3000)),
                                         min_size=1, max_size=6))
    def put_overlapping(self, upload, spans):
        """Well-formed chunks at in-range, overlapping, gapped and negative offsets."""
        for offset, length in spans:
            offset = min(offset, upload.received + 3)  # mostly near what has arrived
            self.put(upload, offset, upload.ciphertext[max(0, offset):max(0, offset) + length])

    @rule(upload=uploads, start=st.integers(0, 4000), length=st.integers(0, 4000),
          offset=st.one_of(st.none(), offsets), csrf=csrf_variants,
          lie=st.sampled_from([None, "short", "long", "max", "huge", "none"]),
          content_type=st.one_of(st.just("application/octet-stream"), content_types))
    def put_malformed(self, upload, start, length, offset, csrf, lie, content_type):
        """Chunks with junk offsets, a lying Content-Length, wrong types, bad CSRF."""
        chunk = upload.ciphertext[start:start + length]
        offset = str(start) if offset is None else offset
        query = "" if offset == "" else f"?offset={quote(offset)}"
        kwargs = {"data": chunk, "content_type": content_type}
        if lie is not None:
            kwargs["environ_overrides"] = {"CONTENT_LENGTH": {
                "short": str(max(0, len(chunk) - 1)), "long": str(len(chunk) + 10),
                "max": str(api.MAX_CHUNK + 1), "huge": str(10**20), "none": ""}[lie]}
        response = self.call("PUT", f"/api/v1/uploads/{upload.id}{query}", csrf, **kwargs)
        if response.status_code == 200:  # a junk offset int() still reads, e.g. " 7" or "1_0"
            upload.received = response.get_json()["offset"]

    @rule(upload=uploads)
    def complete_and_finish(self, upload):
        for offset in range(upload.received, upload.size, 1000):
            self.put(upload, offset, upload.ciphertext[offset:offset + 1000])
        self.finish_checked(upload)

    @rule(upload=uploads)
    def finish(self, upload):
        self.finish_checked(upload)

    @rule(upload=uploads, csrf=csrf_variants,
          body=st.one_of(st.just(b"{}"), junk_json, st.integers(-3, 3).map(
              lambda delta: b'{"size": %d}' % delta)))
    def finish_malformed(self, upload, csrf, body):
        """Finish with no body, junk, or a size near zero (never the upload's own size)."""
        response = self.call("POST", f"/api/v1/uploads/{upload.id}/finish", csrf, data=body,
                             content_type="application/json")
        if response.status_code in (201, 422):
            upload.state = "finished" if response.status_code == 201 else "gone"

    @rule(upload=uploads)
    def status(self, upload):
        response = self.call("GET", f"/api/v1/uploads/{upload.id}")
        if upload.state == "gone":
            assert response.status_code == 404
        elif upload.state == "finished":  # a filed upload's row keeps no size
            assert response.get_json() == {"state": "finished"}
        else:
            assert response.get_json() == {"offset": upload.received, "size": upload.size,
                                           "state": upload.state}

    @rule(upload_id=junk_ids, method=st.sampled_from(["GET", "PUT", "POST"]),
          finish=st.booleans(), offset=offsets)
    def unknown_upload(self, upload_id, method, finish, offset):
        path = f"/api/v1/uploads/{quote(upload_id, safe='')}"
        if finish:
            path += "/finish"
            method = "POST"
        elif method == "POST":
            method = "GET"
        if method == "PUT":
            path += f"?offset={quote(offset)}"
        response = self.call(method, path, data=b"x")
        assert response.status_code in (400, 404), response.status_code

    @rule()
    def keyring(self):
        assert self.call("GET", "/api/v1/keyring").status_code == 200

    def teardown(self):
        # Keep the open uploads far from the budget between examples.
        uploads = self.world.app.extensions["intake"].uploads
        for upload_id in self.created:
            uploads.discard(upload_id)


def test_random_sequences_of_api_calls_never_500_and_answer_as_documented(world):
    run_state_machine_as_test(
        lambda: ApiMachine(world),
        settings=settings(FUZZ, max_examples=200, stateful_step_count=15),
    )


def test_a_real_chunk_over_the_maximum_is_413(world):
    size = TWO_RECIPIENT_HEADER + VALID_PAYLOADS[0]
    upload_id = world.client.post(
        "/api/v1/uploads", headers={"X-CSRFToken": world.csrf},
        json={"size": size, "keyring_version": world.version}).get_json()["id"]
    response = world.client.put(f"/api/v1/uploads/{upload_id}?offset=0",
                                headers={"X-CSRFToken": world.csrf},
                                data=b"x" * (api.MAX_CHUNK + 1))
    assert response.status_code == 413 and response.get_json()["error"] == "chunk_too_large"


# -- a real gunicorn --------------------------------------------------------------------------

WORKERS, THREADS = 2, 4


@dataclass
class Server:
    base: str
    port: int
    logs: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gunicorn")
    deployment = Deployment(tmp / "keys").setup(recipients=2)
    (tmp / "tmp").mkdir()
    env = server_env(tmp / "var", deployment, tmp / "tmp", INTAKE_THREADS=str(THREADS),
                     INTAKE_MAX_UPLOAD=str(4 * MiB))
    with gunicorn(env, tmp / "logs", workers=WORKERS) as base:
        yield Server(base, int(base.rsplit(":", 1)[1]), tmp / "logs")


def exchange(port: int, payload: bytes, *, timeout: float = 10.0) -> bytes:
    """Send raw bytes, then read until the server closes; the server must close in time."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(payload)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
    return answer


def status_of(answer: bytes) -> int | None:
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", answer)
    return int(match.group(1)) if match else None


def session_for(server: Server) -> tuple[requests.Session, dict[str, str]]:
    session = requests.Session()
    tokens = form_tokens(session.get(f"{server.base}/en/report", timeout=10).text)
    return session, tokens


def cookie_header(session: requests.Session) -> str:
    return "; ".join(f"{k}={v}" for k, v in session.cookies.items())


def assert_the_server_is_whole(server: Server) -> None:
    """Every worker thread answers at once, and the error log holds no failure."""
    def get(_):
        started = time.monotonic()
        response = requests.get(f"{server.base}/", timeout=10, allow_redirects=False)
        return response.status_code, time.monotonic() - started

    with ThreadPoolExecutor(WORKERS * THREADS) as pool:
        answers = list(pool.map(get, range(WORKERS * THREADS)))
    assert all(status == 302 for status, _ in answers), answers
    assert max(elapsed for _, elapsed in answers) < 10, answers
    log = (server.logs / "stderr.log").read_text(errors="replace")
    for bad in ("Traceback", "WORKER TIMEOUT", "internal error"):
        assert bad not in log, log[-3000:]
    # gunicorn names the client of every request it refuses ("Invalid request from
    # ip=..."): the privacy filter must have blanked it. Only the master's own
    # "Listening at" line may carry the (server's) loopback address.
    addressed = [line for line in log.splitlines()
                 if "127.0.0.1" in line and "Listening at" not in line]
    assert addressed == [], addressed[:3]


def test_ten_thousand_form_fields_are_refused(server):
    session, tokens = session_for(server)
    many = [(f"f{i}", "x") for i in range(10_000)]
    urlencoded = session.post(f"{server.base}/en/report", data=[*tokens.items(), *many],
                              allow_redirects=False, timeout=30)
    assert urlencoded.status_code == 413
    multipart = session.post(
        f"{server.base}/en/report", files=[(name, (None, value)) for name, value in many],
        data=tokens, allow_redirects=False, timeout=30)
    assert multipart.status_code == 413
    # A valid report padded with a long junk value: one field, but 2 MiB in memory.
    padded = session.post(f"{server.base}/en/report",
                          data={**tokens, **valid_report(), "junk": "x" * (2 * 1024 * 1024)},
                          allow_redirects=False, timeout=30)
    assert padded.status_code == 413
    assert_the_server_is_whole(server)


@pytest.mark.parametrize("request_bytes", [
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(200)) + b"\r\n",
    b"GET /" + b"a" * 100 * 1024 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /en/report HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"POST /en/report HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    b"POST /en/report HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64) + b"\r\n\r\n",
    b"GET /\xff\xfe/%00 HTTP/1.1\r\nHost: x\r\nX-\x80: \xff\r\n\r\n",
], ids=["header-64KiB", "200-headers", "request-line-100KiB", "negative-length",
        "two-lengths", "bad-chunked", "binary-request-line", "non-ascii"])
def test_oversized_and_broken_requests_get_a_400_or_are_closed(server, request_bytes):
    status = status_of(exchange(server.port, request_bytes))
    assert status is None or 400 <= status < 500, status
    assert_the_server_is_whole(server)


def _multipart_head(server: Server, length: int) -> tuple[bytes, bytes]:
    session, tokens = session_for(server)
    part = (b'--cut\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
            + tokens["csrf_token"].encode() + b"\r\n--cut\r\nContent-Disposition: form-data; "
            b'name="attachments"; filename="v.mp4"\r\nContent-Type: video/mp4\r\n\r\n')
    head = (f"POST /en/report HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Content-Type: multipart/form-data; boundary=cut\r\n"
            f"Cookie: {cookie_header(session)}\r\nContent-Length: {length}\r\n\r\n").encode()
    return head, part


def test_a_body_cut_off_midway_by_the_client_leaves_the_server_whole(server):
    head, part = _multipart_head(server, 2 * MiB)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + part + os.urandom(300_000))
    time.sleep(0.5)
    assert_the_server_is_whole(server)


def test_a_slow_client_does_not_hold_the_server(server):
    head, part = _multipart_head(server, 1 * MiB)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as slow:
        slow.sendall(head + part + os.urandom(500_000))  # half the body, then nothing
        time.sleep(0.5)
        for _ in range(3):
            started = time.monotonic()
            assert requests.get(f"{server.base}/en/report", timeout=5).status_code == 200
            assert time.monotonic() - started < 3
        session, tokens = session_for(server)
        created = session.post(f"{server.base}/api/v1/uploads", timeout=5,
                               headers={"X-CSRFToken": tokens["csrf_token"]},
                               json={"size": TWO_RECIPIENT_HEADER + VALID_PAYLOADS[0],
                                     "keyring_version": int(tokens["keyring_version"])})
        assert created.status_code == 201
        assert_the_server_is_whole(server)
    assert_the_server_is_whole(server)


def test_chunks_with_wrong_and_overlapping_offsets_over_http(server):
    session, tokens = session_for(server)
    headers = {"X-CSRFToken": tokens["csrf_token"]}
    version = int(tokens["keyring_version"])
    ciphertext = VERSION_LINE + age_stanza() + age_stanza() + age_mac() + os.urandom(
        VALID_PAYLOADS[0])
    size = len(ciphertext)
    upload_id = session.post(f"{server.base}/api/v1/uploads", headers=headers, timeout=10,
                             json={"size": size, "keyring_version": version}).json()["id"]
    url = f"{server.base}/api/v1/uploads/{upload_id}"

    def put(offset: object, data: bytes, **extra):
        return session.put(f"{url}?offset={offset}", data=data, timeout=10,
                           headers={**headers, **extra})

    def raw_put(offset: object, length_header: str, body: bytes) -> int | None:
        return status_of(exchange(server.port, (
            f"PUT /api/v1/uploads/{upload_id}?offset={offset} HTTP/1.1\r\nHost: x\r\n"
            f"Connection: close\r\nX-CSRFToken: {tokens['csrf_token']}\r\n"
            f"Cookie: {cookie_header(session)}\r\n{length_header}\r\n").encode() + body))

    assert put(0, ciphertext[:1000]).status_code == 200
    expected = {
        put(1500, ciphertext[1500:]): 409,  # a gap
        put(-1, ciphertext[:10]): 400,
        put(10**30, b"x"): 400,  # more digits than any upload has bytes
        put("", b"x"): 400,
        put("abc", b"x"): 400,
        put(size - 1, b"xx"): 413,  # past the size
        put(500, ciphertext[500:1800]): 200,  # overlapping
        put(0, b"x", **{"X-CSRFToken": "junk"}): 400,
        session.post(f"{url}/finish", headers=headers, json={"size": size},
                     timeout=10): 409,  # incomplete
    }
    for response, status in expected.items():
        assert response.status_code == status, (response.request.url, response.text)
    assert raw_put(1800, f"Content-Length: {api.MAX_CHUNK + 1}\r\n", b"x" * 1000) == 413
    assert raw_put(1800, "Transfer-Encoding: chunked\r\n", b"5\r\nxxxxx\r\n0\r\n\r\n") == 411
    assert raw_put(1800, "Content-Length: 99999999999999999999999\r\n", b"x") in (400, 413)
    assert put(1800, ciphertext[1800:]).status_code == 200
    assert session.post(f"{url}/finish", headers=headers, json={"size": size},
                        timeout=10).status_code == 201
    assert put(0, ciphertext[:10]).status_code == 409  # after finishing
    assert session.get(f"{server.base}/api/v1/uploads/{'A' * 32}", timeout=10).status_code == 404
    assert_the_server_is_whole(server)
