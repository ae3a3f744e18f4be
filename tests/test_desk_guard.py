"""The desk lets in the browser that opened its one-time URL, and nobody else.

Plain HTTP against the real command, `intake review serve`, on a free
loopback port: a refused bind, a request without the cookie, a reused or
wrong token, a wrong Host header (DNS rebinding), a page of another site, a
change without its CSRF token; and the headers every answer carries.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys

import pytest
import requests
from desk_support import desk_env, jpeg_with_gps, running_desk, sign_in, write_case
from helpers import free_port

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
FIELDS = {"narrative": "A missed call, then the phone grew hot.", "country": "EG"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("desk-guard")
    cases = tmp / "cases"
    cases.mkdir()
    case_id = write_case(
        cases, FIELDS,
        files=[("photo.jpg", jpeg_with_gps(), "image/jpeg"), ("tool.exe", b"MZ" + b"\0" * 62,
               "application/octet-stream")],
    )
    return tmp, cases, case_id


def serve(tmp, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "intake", "review", "serve", *args],
        capture_output=True, text=True, timeout=60, env=desk_env(tmp), cwd=tmp,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "localhost", "::1", "::", "192.168.1.10",  # noqa: S104
                                  "127.0.0.2", "desk.example"])
def test_any_host_but_127_0_0_1_is_refused_with_the_reason(store, host):
    tmp, cases, _ = store
    port = free_port()
    result = serve(tmp, "--cases", str(cases), "--host", host, "--port", str(port))
    assert result.returncode == 1
    assert "127.0.0.1 only" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""  # no URL printed
    with socket.socket() as probe:  # and nothing listens
        assert probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize("port", ["80", "1023", "65536", "-1"])
def test_a_port_out_of_range_is_refused(store, port):
    tmp, cases, _ = store
    result = serve(tmp, "--cases", str(cases), "--port", port)
    assert result.returncode == 1
    assert "between 1024 and 65535" in result.stderr and "Traceback" not in result.stderr


def test_a_missing_case_store_and_a_busy_port_are_one_sentence_each(store):
    tmp, cases, _ = store
    missing = serve(tmp, "--cases", str(tmp / "nowhere"), "--port", str(free_port()))
    assert missing.returncode == 1 and "no case store" in missing.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = serve(tmp, "--cases", str(cases), "--port", str(busy.getsockname()[1]))
    assert taken.returncode == 1 and "already in use" in taken.stderr
    assert "Traceback" not in missing.stderr + taken.stderr


def test_nothing_answers_without_the_cookie(store):
    tmp, cases, case_id = store
    with running_desk(cases, tmp) as desk:
        session = sign_in(desk)  # someone is signed in; the requests below are not
        paths = ["/", "/en/", f"/en/cases/{case_id}", f"/en/cases/{case_id}/attachments/1",
                 f"/en/cases/{case_id}/attachments/1/image.png",
                 f"/en/cases/{case_id}/attachments/2/file", "/static/desk.css", "/no-such-page"]
        urls = [desk.root + p for p in paths] + [desk.base + p for p in paths]
        for url in [*urls, desk.base + "/login"]:
            answer = requests.get(url, timeout=10, allow_redirects=False)
            assert answer.status_code == 403, url
            assert "run \u201cintake review serve\u201d again" in answer.text, url
            assert case_id not in answer.text and "MZ" not in answer.text
        # A forged cookie is no better than none.
        forged = requests.get(desk.root + "/en/", timeout=10,
                              cookies={"intake_desk": "eyJkZXNrIjoieCJ9.x.y"})
        assert forged.status_code == 403
        # The signed-in browser still gets in.
        assert session.get(desk.root + "/en/", timeout=10).status_code == 200


def test_the_token_works_once_and_leaves_the_address(store):
    tmp, cases, _ = store
    with running_desk(cases, tmp) as desk:
        wrong = requests.get(desk.base + "/login?token=" + "A" * 43, timeout=10,
                             allow_redirects=False)
        assert wrong.status_code == 403
        first = requests.get(desk.login_url, timeout=10, allow_redirects=False)
        assert first.status_code == 303
        location = first.headers["Location"]
        assert "token" not in location
        prefix = "/" + location.split("/")[1]
        assert re.fullmatch(r"/[A-Za-z0-9_-]{22}", prefix)  # 128 random bits
        cookie = first.headers["Set-Cookie"]
        assert cookie.startswith("intake_desk=")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        # Scoped to the desk's random path: the browser sends it to no other program on
        # 127.0.0.1 (cookies ignore ports) unless that program knows the path.
        assert f"Path={prefix}/" in cookie
        assert "Expires" not in cookie and "Max-Age" not in cookie  # gone with the browser
        again = requests.get(desk.login_url, timeout=10, allow_redirects=False)
        assert again.status_code == 403
        assert "works once" in again.text
        assert "Set-Cookie" not in again.headers
    # The token never reached a log line.
    logs = "".join(p.read_text() for p in tmp.glob("desk-*.log"))
    token = desk.login_url.split("token=")[1]
    assert token not in logs and "GET " not in logs


@pytest.mark.parametrize("host", ["evil.example:{port}", "localhost:{port}", "127.0.0.1",
                                  "127.0.0.1:{other}", "127.0.0.1.nip.io:{port}", ""])
def test_a_wrong_host_header_is_refused_even_with_the_cookie(store, host):
    tmp, cases, case_id = store
    with running_desk(cases, tmp) as desk:
        session = sign_in(desk)
        header = host.format(port=desk.port, other=desk.port + 1)
        answer = session.get(f"{desk.root}/en/cases/{case_id}", headers={"Host": header},
                             timeout=10)
        assert answer.status_code == 421
        assert answer.text.startswith("This desk answers only at http://127.0.0.1:")
        assert case_id not in answer.text
        assert session.get(f"{desk.root}/en/cases/{case_id}", timeout=10).status_code == 200


def test_pages_of_another_site_cannot_use_the_cookie(store):
    tmp, cases, case_id = store
    with running_desk(cases, tmp) as desk:
        session = sign_in(desk)
        for site in ("cross-site", "same-site"):  # same-site: another port on 127.0.0.1
            answer = session.get(f"{desk.root}/en/cases/{case_id}",
                                 headers={"Sec-Fetch-Site": site}, timeout=10)
            assert answer.status_code == 403 and case_id not in answer.text
        page = session.get(f"{desk.root}/en/", timeout=10).text
        token = CSRF_FIELD.search(page).group(1)
        answer = session.post(f"{desk.root}/en/lock", data={"csrf_token": token},
                              headers={"Origin": "http://127.0.0.1:9"}, timeout=10)
        assert answer.status_code == 403
        assert session.get(f"{desk.root}/en/", timeout=10).status_code == 200  # not locked


def test_a_form_of_the_desks_own_pages_is_a_change_only_if_the_browser_says_so(store):
    """With Referrer-Policy no-referrer, browsers send "Origin: null" for a page's own forms
    (the Chromium tests submit them); "null" also comes from sandboxed and file: pages."""
    tmp, cases, _ = store
    with running_desk(cases, tmp) as desk:
        session = sign_in(desk)
        token = CSRF_FIELD.search(session.get(f"{desk.root}/en/", timeout=10).text).group(1)
        for headers in ({"Origin": "null"}, {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
                        {"Origin": "null", "Sec-Fetch-Site": "same-site"}):
            answer = session.post(f"{desk.root}/en/lock", data={"csrf_token": token},
                                  headers=headers, timeout=10)
            assert answer.status_code == 403, headers
            assert session.get(f"{desk.root}/en/", timeout=10).status_code == 200
        locked = session.post(f"{desk.root}/en/lock", data={"csrf_token": token},
                              headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"},
                              timeout=10)
        assert locked.status_code == 200 and "locked" in locked.text
        assert session.get(f"{desk.root}/en/", timeout=10).status_code == 403


def test_a_change_without_its_csrf_token_is_refused_and_changes_nothing(store):
    tmp, cases, _ = store
    with running_desk(cases, tmp) as desk:
        session = sign_in(desk)
        for data in ({}, {"csrf_token": "forged"}):
            answer = session.post(f"{desk.root}/en/lock", data=data, timeout=10)
            assert answer.status_code == 400
            assert "Nothing was changed" in answer.text
            assert session.get(f"{desk.root}/en/", timeout=10).status_code == 200
        # With the page's token the change happens: the desk locks itself.
        token = CSRF_FIELD.search(session.get(f"{desk.root}/en/", timeout=10).text).group(1)
        locked = session.post(f"{desk.root}/en/lock", data={"csrf_token": token},
                              headers={"Origin": desk.base}, timeout=10)
        assert locked.status_code == 200 and "locked" in locked.text
        assert session.get(f"{desk.root}/en/", timeout=10).status_code == 403


def test_every_answer_carries_the_csp_no_referrer_and_no_store(store):
    tmp, cases, case_id = store
    with running_desk(cases, tmp) as desk:
        stranger = requests.get(desk.base + "/en/", timeout=10)
        rebound = requests.get(desk.base + "/en/", headers={"Host": "evil.example"}, timeout=10)
        login = requests.get(desk.login_url, timeout=10, allow_redirects=False)
        session = requests.Session()
        session.cookies.update(login.cookies)
        root = desk.base + "/" + login.headers["Location"].split("/")[1]
        answers = [stranger, rebound, login] + [
            session.get(root + path, timeout=30)
            for path in ("/", "/ar/", f"/fa/cases/{case_id}", f"/en/cases/{case_id}/attachments/1",
                         f"/en/cases/{case_id}/attachments/1/image.png",
                         f"/en/cases/{case_id}/attachments/2/file", "/static/intake.css",
                         "/static/desk.css", "/favicon.ico", "/en/no-such-page", "/xx/",
                         "/static/js/report.js")
        ]
        answers.append(session.post(root + "/en/lock", timeout=10))
    statuses = sorted({a.status_code for a in answers})
    assert statuses == [200, 204, 303, 400, 403, 404, 421], statuses
    for answer in answers:
        h = answer.headers
        where = (answer.request.method, answer.url, answer.status_code)
        assert "script-src 'self'" in h["Content-Security-Policy"], where
        assert "frame-ancestors 'none'" in h["Content-Security-Policy"], where
        assert "default-src 'none'" in h["Content-Security-Policy"], where
        assert h["Referrer-Policy"] == "no-referrer", where
        assert h["Cache-Control"] == "no-store", where
        assert h["X-Content-Type-Options"] == "nosniff", where
        assert h["X-Frame-Options"] == "DENY", where
        assert "Werkzeug" not in h.get("Server", "") and "Python" not in h.get("Server", "")
