"""A real nginx from deploy/nginx.conf in front of a real gunicorn.

The test copy of nginx.conf differs from the deployed file only in paths (pid,
error log, temporary directories, all in tmp_path), ports (both free loopback
ports) and the user. Through it:

- a no-JavaScript submission with a marker in the narrative and in a multi-MiB
  attachment succeeds and decrypts; nginx, traced with strace, writes the
  marker to no regular file (sockets only), its temporary directories stay
  empty, and no file anywhere holds the marker; a control run with
  `proxy_request_buffering on` shows the trace catches a body spooled to disk;
- the body reaches the upstream while the client is still sending it;
- every response (the app's pages, a static file, a 404, nginx's own 413)
  carries each security header exactly once with the app's value, and no
  nginx version;
- the upstream never learns a client address, and neither gunicorn's logs nor
  nginx's error log hold an address or the marker.

The 413 is for a declared Content-Length one byte over the real
client_max_body_size (500 MiB): no body is sent, so the limit need not be
made smaller in the test copy.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import os
import re
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import require_tool
from helpers import Deployment, free_port, gunicorn, server_env, stop_group, submit, thanked
from test_deploy import nginx_test_config

from intake.crypto.envelope import decrypt_stream
from intake.limits import DEFAULT_MAX_UPLOAD
from intake.web.security import SECURITY_HEADERS

pytestmark = pytest.mark.slow
MiB = 1024 * 1024
TRACE = ["-f", "-yy", "-e", "trace=write,pwrite64,writev,pwritev,pwritev2,openat",
         "-s", "1048576"]
# strace -yy annotates each descriptor: sockets as <TCP:[...]>, <TCPv6:...>, <UNIX:...>.
SOCKET = re.compile(r"^\s*(?:\[pid\s+)?\d*\]?\s*\w+\(\d+<(?:TCP|TCPv6|UDP|UNIX|NETLINK|pipe)")
FD_TARGET = re.compile(r"\w+\(\d+<([^>]*)>")
OPENAT = re.compile(r'openat\([^,]+, "([^"]*)"')


def files_containing(root: Path, marker: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and marker in p.read_bytes()]


def writes_carrying(trace: Path, marker: str) -> tuple[list[str], int]:
    """(targets of writes of the marker to anything but a socket or pipe, socket writes of it)."""
    hits, to_sockets = [], 0
    for line in trace.read_text(errors="replace").splitlines():
        if marker not in line or line.lstrip("0123456789 ").startswith("openat("):
            continue
        if SOCKET.match(line):
            to_sockets += 1
        else:
            target = FD_TARGET.search(line)
            hits.append(target.group(1) if target else line[:120])
    return hits, to_sockets


@contextlib.contextmanager
def run_nginx(prefix: Path, upstream: int, *, trace: Path | None = None,
              edit: Callable[[str], str] | None = None) -> Iterator[str]:
    """nginx in the foreground on a free loopback port, optionally under strace."""
    nginx = require_tool("nginx")
    prefix.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = nginx_test_config(prefix, listen=port, upstream=upstream, edit=edit)
    cmd = [nginx, "-c", str(conf), "-p", str(prefix), "-e", str(prefix / "startup.log"),
           "-g", "daemon off;"]
    if trace is not None:
        cmd = [require_tool("strace"), *TRACE, "-o", str(trace), *cmd]
    with open(prefix / "stderr.log", "wb") as err:
        proc = subprocess.Popen(cmd, stdout=err, stderr=err, start_new_session=True)
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_group(proc, timeout=20)


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Until nginx accepts connections (no request: the upstream may be a one-shot recorder)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nginx did not listen on {port}")


@dataclass
class Stack:
    tmp: Path
    deployment: Deployment
    data: Path
    tmpdir: Path
    logs: Path
    upstream: int
    nginx: str  # an untraced nginx for the header and log checks
    nginx_prefix: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    require_tool("nginx")
    require_tool("strace")
    tmp = tmp_path_factory.mktemp("nginx-stack")
    deployment = Deployment(tmp / "keys").setup(recipients=1)
    data, tmpdir, logs = tmp / "var", tmp / "tmp", tmp / "gunicorn-logs"
    tmpdir.mkdir()
    env = server_env(data, deployment, tmpdir)
    with gunicorn(env, logs) as base:
        upstream = int(base.rsplit(":", 1)[1])
        with run_nginx(tmp / "nginx", upstream) as nginx:
            yield Stack(tmp, deployment, data, tmpdir, logs, upstream, nginx, tmp / "nginx")


def marked_attachment(marker: str, size: int = 4 * MiB) -> bytes:
    # The marker sits at several offsets, so one never straddles every buffer boundary.
    attachment = bytearray(os.urandom(size))
    for offset in (100, 70_000, 1_500_000, size - 200):
        attachment[offset : offset + len(marker)] = marker.encode()
    return bytes(attachment)


def submit_marked(stack: Stack, base: str) -> tuple[str, Path]:
    marker = f"CANARY-{secrets.token_hex(12)}"
    before = set((stack.data / "blobs").glob("*.age"))
    response = submit(
        base,
        narrative=f"my phone {marker} was hacked",
        files=[("evidence.bin", marked_attachment(marker), "application/octet-stream")],
    )
    assert thanked(response) and "Location" not in response.headers, response.text[:300]
    [blob] = set((stack.data / "blobs").glob("*.age")) - before
    return marker, blob


def test_a_submission_through_nginx_writes_no_plaintext_to_any_file(stack, tmp_path):
    prefix, trace = tmp_path / "nginx", tmp_path / "trace.txt"
    with run_nginx(prefix, stack.upstream, trace=trace) as base:
        marker, blob = submit_marked(stack, base)
        thanks = http_get(base, "/en/thanks")
        assert thanks.status == 200
    needle = marker.encode()

    plain = io.BytesIO()
    with blob.open("rb") as fh:
        decrypt_stream(fh, plain, stack.deployment.identities)
    assert plain.getvalue().count(needle) == 5  # narrative + four in the attachment

    hits, to_sockets = writes_carrying(trace, marker)
    assert hits == []
    assert to_sockets >= 1, "the trace must see nginx pass the body on"
    text = trace.read_text(errors="replace")
    opened = [p for p in OPENAT.findall(text) if p.startswith(f"{prefix}/temp/")]
    assert opened == [], "nginx opened a temporary file"
    for sub in (prefix / "temp").iterdir():
        assert list(sub.rglob("*")) == [], sub
    for root in (prefix, stack.data, stack.tmpdir, stack.logs):
        assert files_containing(root, needle) == [], root
    for log in (prefix / "error.log", prefix / "startup.log", prefix / "stderr.log"):
        assert "127.0.0.1" not in log.read_text(errors="replace"), log


def test_control_a_body_buffered_by_nginx_is_caught_by_the_write_trace(stack, tmp_path):
    prefix, trace = tmp_path / "nginx", tmp_path / "trace.txt"

    def buffered(text: str) -> str:
        assert "proxy_request_buffering off;" in text
        return text.replace("proxy_request_buffering off;", "proxy_request_buffering on;")

    with run_nginx(prefix, stack.upstream, trace=trace, edit=buffered) as base:
        marker, _ = submit_marked(stack, base)
    # nginx deletes the temporary file: a scan of the disk afterwards sees nothing...
    assert files_containing(prefix, marker.encode()) == []
    # ...but the trace shows the plaintext written to a file in client_body_temp.
    hits, _ = writes_carrying(trace, marker)
    assert hits and all(h.startswith(f"{prefix}/temp/body/") for h in hits), hits


def http_get(base: str, path: str, method: str = "GET",
             headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.putrequest(method, path)
    for name, value in (headers or {}).items():
        conn.putheader(name, value)
    conn.endheaders()  # no body, even when Content-Length announces one
    response = conn.getresponse()
    response.body = response.read()  # type: ignore[attr-defined]
    conn.close()
    return response


CASES = {
    "redirect": ("GET", "/", {}, 302),
    "form": ("GET", "/en/report", {}, 200),
    "static": ("GET", "/static/intake.css", {}, 200),
    "not found": ("GET", "/en/no-such-page", {}, 404),
    "too large (nginx)": ("POST", "/en/report",
                          {"Content-Length": str(DEFAULT_MAX_UPLOAD + 1),
                           "Content-Type": "multipart/form-data; boundary=x"}, 413),
}


@pytest.mark.parametrize("case", CASES)
def test_every_response_carries_each_security_header_once(stack, case):
    method, path, headers, status = CASES[case]
    response = http_get(stack.nginx, path, method, headers)
    assert response.status == status
    for name, value in SECURITY_HEADERS.items():
        assert response.msg.get_all(name) == [value], name
    assert response.getheader("Server") in (None, "nginx")
    assert not re.search(rb"nginx/\d", response.body)
    if case == "too large (nginx)":
        assert b"<center>nginx</center>" in response.body  # nginx's own page, not the app's


def test_the_upstream_gets_the_body_while_it_is_sent_and_no_client_address(stack, tmp_path):
    """A recording upstream: the first part of a body arrives before the client sends
    the rest (nothing waits in a buffer or a file), and nothing names the client."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(30)
    received = bytearray()
    first_part_seen = threading.Event()

    def upstream() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(30)
            while b"SECOND-HALF" not in received:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                received.extend(chunk)
                if b"FIRST-HALF" in received:
                    first_part_seen.set()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    thread = threading.Thread(target=upstream, daemon=True)
    thread.start()
    first, second = b"FIRST-HALF" + b"a" * 100_000, b"b" * 100_000 + b"SECOND-HALF"
    try:
        with run_nginx(tmp_path / "nginx", listener.getsockname()[1]) as base:
            host, port = base.removeprefix("http://").split(":")
            with socket.create_connection((host, int(port)), timeout=30) as client:
                client.sendall(
                    b"POST /api/v1/uploads/x HTTP/1.1\r\nHost: example.onion\r\n"
                    b"X-Forwarded-For: 203.0.113.9\r\nX-Real-IP: 203.0.113.9\r\n"
                    b"Forwarded: for=203.0.113.9\r\n"
                    + f"Content-Length: {len(first) + len(second)}\r\n\r\n".encode() + first
                )
                assert first_part_seen.wait(20), "nginx held the body back"
                assert b"SECOND-HALF" not in received
                time.sleep(0.2)
                client.sendall(second)
                answer = client.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200")
    finally:
        listener.close()
        thread.join(5)
    head = bytes(received).split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
    assert "203.0.113.9" not in head and "127.0.0.1" not in head, head
    assert "forwarded" not in head and "x-real-ip" not in head, head
    assert head.startswith("post /api/v1/uploads/x http/1.1\r\n"), head


def test_logs_hold_no_address(stack):
    # A 404 and an nginx 413 (logged by nginx below `crit` with the client's address).
    for method, path, headers, _ in CASES.values():
        http_get(stack.nginx, path, method, headers)
    access = (stack.logs / "stdout.log").read_text(errors="replace")
    assert '"GET /en/report" 200' in access  # gunicorn's access log is there and in use
    for log in (stack.logs / "stdout.log", stack.logs / "stderr.log",
                stack.nginx_prefix / "error.log", stack.nginx_prefix / "startup.log",
                stack.nginx_prefix / "stderr.log"):
        # gunicorn's own bind address, logged once at start, is not a client's.
        lines = [line for line in log.read_text(errors="replace").splitlines()
                 if "gunicorn.error: Listening at: http://127.0.0.1:" not in line]
        text = "\n".join(lines)
        assert not re.search(r"\b\d{1,3}(\.\d{1,3}){3}\b", text), (log, text[-500:])
        assert "CANARY-" not in text, log


def test_an_api_chunk_waits_whole_in_nginx_as_ciphertext_only(stack, tmp_path):
    """The upload API's chunks are the one body nginx buffers (deploy/nginx.conf): on disk,
    in its body temp dir, and only ever ciphertext; the form's body never is (above)."""
    from reliability_support import ApiClient, client_ciphertext

    prefix, trace = tmp_path / "nginx", tmp_path / "trace.txt"
    marker = f"CANARY-{secrets.token_hex(12)}"
    ciphertext = client_ciphertext(stack.deployment, marker,
                                   attachment=marked_attachment(marker, MiB))
    before = set((stack.data / "blobs").glob("*.age"))
    with run_nginx(prefix, stack.upstream, trace=trace) as base:
        answer = ApiClient(base).submit(ciphertext, chunk=len(ciphertext))
        assert answer.status_code == 201, answer.text
    [blob] = set((stack.data / "blobs").glob("*.age")) - before
    plain = io.BytesIO()
    with blob.open("rb") as fh:
        decrypt_stream(fh, plain, stack.deployment.identities)
    assert marker.encode() in plain.getvalue()

    text = trace.read_text(errors="replace")
    assert [p for p in OPENAT.findall(text) if p.startswith(f"{prefix}/temp/body/")], (
        "nginx passed the chunk on without holding it")
    hits, to_sockets = writes_carrying(trace, marker)
    assert hits == [] and to_sockets == 0  # nowhere in plaintext, not even on a socket
    for sub in (prefix / "temp").iterdir():
        assert [p for p in sub.rglob("*") if p.is_file()] == [], sub
