"""Benchmark: hundreds of sources uploading at Tor speed at once, while a new source gets in.

Runs the production stack on loopback: nginx from deploy/nginx.conf (paths and
ports rewritten as in tests/test_nginx.py) in front of gunicorn with
deploy/gunicorn.conf.py serving `intake:create_app()` (SQLite). Then:

1. **Ramp.** SOURCES slow sources start, evenly spread over RAMP seconds, half
   on each path, each sending a MIB MiB report at RATE bytes/s:
   - no-JS: fetch the form, then POST it as multipart with one MIB MiB file
     (plaintext, as a browser without JavaScript sends it);
   - API: fetch the form, create an upload, PUT the ciphertext in the API's
     chunks, finish. The ciphertext is real: a report container with a MIB MiB
     file, age-encrypted (the age tool, no grease) to the keyring's active
     recipients before the ramp, so it passes every check the API makes.
2. **Window.** With every slow upload in progress, for WINDOW seconds a new
   source (a separate process) fetches the form and files a text report every
   second. Printed: its p50/p99/max latency (form load + report), every status
   that was not the expected one, the CPU of gunicorn, of nginx, of this load
   generator and of the probe, the rest of the machine's load, and the peak
   total RSS of gunicorn and nginx (sampled every second).
3. **Completion** (unless --no-complete). Every slow source then sends the rest
   of its report at full speed; each must be answered with the thank-you page
   and its receipt (no-JS) or 201 (API). The blob store must hold exactly one
   blob per report; with --verify each blob is decrypted and its container
   opened: every slow source's
   report is there exactly once, its file's SHA-256 the one sent.

Target (issue 12): 500 sources (250 + 250), 20 MiB at about 20 KB/s, a window
of at least 60 s, new-source p99 <= 2 s, no 5xx. The means can be switched to
compare them: --worker-class gevent (needs gevent installed; not a dependency)
and --api-buffering off (nginx streams the API's chunks too).

Usage:
    .venv/bin/python bench/slow_sources.py [--sources 500] [--mib 20] [--rate 20000]
        [--ramp 60] [--window 60] [--no-complete] [--verify]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    Deployment,
    cpu_seconds,
    form_tokens,
    machine_busy_seconds,
    machine_line,
    percentile,
    print_result,
    valid_report,
)
from helpers import gunicorn, server_env  # noqa: E402
from test_nginx import run_nginx  # noqa: E402

from intake.crypto.container import Attachment, ContainerReader, extract_container  # noqa: E402
from intake.crypto.envelope import decrypt_stream  # noqa: E402

MiB = 1024 * 1024
TICK = 0.25
PIECE = 64 * 1024
#: The random bytes every source's file is cut from (rotated per source, so each differs).
POOL_SIZE = 4 * MiB
TARGET_SOURCES = 500
TARGET_P99 = 2.0
_COOKIE = re.compile(r"^set-cookie:\s*([^=;\s]+)=([^;\r\n]*)", re.IGNORECASE | re.MULTILINE)


# --- what each source sends -------------------------------------------------------------------


def pool() -> bytes:
    """The random bytes the files are cut from (the same in every process: a fixed seed)."""
    return hashlib.shake_256(b"intake slow sources").digest(POOL_SIZE)


def file_pieces(data: bytes, index: int, size: int) -> Iterator[memoryview]:
    """Source `index`'s file: `size` bytes of the pool, rotated by an offset of its own."""
    doubled = memoryview(data + data)
    offset = (index * 7919 * 64) % len(data)
    left = size
    while left:
        step = min(PIECE, left, len(data) - offset)
        yield doubled[offset : offset + step]
        offset = (offset + step) % len(data)
        left -= step


class FileReader(io.RawIOBase):
    """Source `index`'s file as a readable stream (for ContainerReader)."""

    def __init__(self, data: bytes, index: int, size: int):
        super().__init__()
        self._pieces = file_pieces(data, index, size)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        view = memoryview(buffer).cast("B")
        while not self._pending:
            try:
                self._pending = next(self._pieces)
            except StopIteration:
                return 0
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def file_digest(data: bytes, index: int, size: int) -> str:
    digest = hashlib.sha256()
    for piece in file_pieces(data, index, size):
        digest.update(piece)
    return digest.hexdigest()


def marker(kind: str, index: int) -> str:
    return f"slow-source {kind} {index:04d}"


def make_ciphertext(age: str, recipients: list[str], data: bytes, index: int, size: int,
                    out: Path) -> None:
    """The browser's upload for API source `index`: its container, age-encrypted, in `out`."""
    attachment = Attachment(
        name="recording.bin", type="application/octet-stream", size=size,
        sha256=file_digest(data, index, size),
        open=lambda: io.BufferedReader(FileReader(data, index, size), PIECE),
    )
    container = ContainerReader("en", valid_report(narrative=marker("api", index)),
                                [attachment])
    args = [age, *sum((["-r", r] for r in recipients), []), "-o", str(out)]
    with subprocess.Popen(args, stdin=subprocess.PIPE) as proc:
        assert proc.stdin is not None
        while block := container.read(MiB):
            proc.stdin.write(block)
        proc.stdin.close()
        if proc.wait() != 0:
            raise RuntimeError(f"age failed for source {index}")


# --- a minimal HTTP/1.1 client on asyncio, one connection per request -------------------------


class Pacer:
    """Lets bytes through at `rate` per second; `rate` None lets everything through at once."""

    def __init__(self, rate: float | None):
        self.rate = rate
        self.allowed_since = time.monotonic()
        self.sent = 0

    def unleash(self) -> None:
        self.rate = None

    async def take(self, want: int) -> int:
        while True:
            if self.rate is None:
                return want
            allowed = int(self.rate * (time.monotonic() - self.allowed_since)) - self.sent
            if allowed > 0:
                n = min(want, allowed)
                self.sent += n
                return n
            await asyncio.sleep(TICK)


@dataclass
class Answer:
    status: int
    headers: str
    body: bytes


async def request(host: str, port: int, method: str, path: str, *, headers: dict[str, str],
                  body: Iterator[memoryview | bytes] | bytes = b"", length: int = 0,
                  pacer: Pacer | None = None) -> Answer:
    """Send one request (the body paced by `pacer`) and read the whole answer."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        head = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        if method in ("POST", "PUT"):
            head.append(f"Content-Length: {length if not isinstance(body, bytes) else len(body)}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        pieces = [body] if isinstance(body, bytes) else body
        for piece in pieces:
            view = memoryview(piece)
            while view:
                n = await pacer.take(len(view)) if pacer else len(view)
                writer.write(view[:n])
                view = view[n:]
                await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    head_bytes, _, payload = raw.partition(b"\r\n\r\n")
    text = head_bytes.decode("latin-1")
    status = int(text.split(" ", 2)[1]) if text.startswith("HTTP/") else -1
    return Answer(status, text, payload)


async def open_form(host: str, port: int) -> tuple[str, dict[str, str]]:
    """GET the form: the session cookie header and the form's tokens."""
    answer = await request(host, port, "GET", "/en/report", headers={})
    if answer.status != 200:
        raise RuntimeError(f"the form answered {answer.status}")
    cookie = "; ".join(f"{k}={v}" for k, v in _COOKIE.findall(answer.headers))
    return cookie, form_tokens(answer.body.decode("utf-8", "replace"))


def multipart(fields: dict[str, object], boundary: str, filename: str) -> tuple[bytes, bytes]:
    """The head (text parts and the file part's header) and tail of a one-file form body."""
    lines = []
    for name, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            lines.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n'
                         f"\r\n{item}\r\n")
    lines.append(f'--{boundary}\r\nContent-Disposition: form-data; name="attachments"; '
                 f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n')
    return "".join(lines).encode(), f"\r\n--{boundary}--\r\n".encode()


# --- the slow sources ---------------------------------------------------------------------------


@dataclass
class Source:
    kind: str  # "nojs" or "api"
    index: int
    size: int
    pacer: Pacer
    ciphertext: Path | None = None
    sha256: str = ""
    statuses: list[int] = field(default_factory=list)
    started_body: bool = False
    done: bool = False
    error: str = ""


async def run_nojs(source: Source, host: str, port: int, data: bytes) -> None:
    cookie, tokens = await open_form(host, port)
    fields = {**tokens, **valid_report(narrative=marker("nojs", source.index))}
    boundary = hashlib.sha256(f"b{source.index}".encode()).hexdigest()[:32]
    head, tail = multipart(fields, boundary, "recording.bin")
    digest = hashlib.sha256()

    def body() -> Iterator[memoryview | bytes]:
        source.started_body = True
        yield head
        for piece in file_pieces(data, source.index, source.size):
            digest.update(piece)
            yield piece
        yield tail

    answer = await request(
        host, port, "POST", "/en/report", pacer=source.pacer, body=body(),
        length=len(head) + source.size + len(tail),
        headers={"Cookie": cookie, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    source.statuses.append(answer.status)
    source.sha256 = digest.hexdigest()
    # Filed: the answer is the thank-you page itself, with the report's receipt.
    if answer.status != 200 or b'id="receipt"' not in answer.body:
        raise RuntimeError(f"the form answered {answer.status}")


async def run_api(source: Source, host: str, port: int) -> None:
    assert source.ciphertext is not None
    cookie, tokens = await open_form(host, port)
    size = source.ciphertext.stat().st_size
    json_headers = {"Cookie": cookie, "X-CSRFToken": tokens["csrf_token"],
                    "Content-Type": "application/json"}
    created = await request(host, port, "POST", "/api/v1/uploads", headers=json_headers,
                            body=json.dumps({"size": size, "keyring_version":
                                             int(tokens["keyring_version"])}).encode())
    source.statuses.append(created.status)
    if created.status != 201:
        raise RuntimeError(f"create answered {created.status}: {created.body[:200]!r}")
    upload = json.loads(created.body)
    chunk = upload["chunk_size"]
    source.started_body = True
    with source.ciphertext.open("rb") as fh:
        for offset in range(0, size, chunk):
            fh.seek(offset)
            block = fh.read(chunk)
            pieces = (memoryview(block)[i : i + PIECE] for i in range(0, len(block), PIECE))
            sent = await request(
                host, port, "PUT", f"/api/v1/uploads/{upload['id']}?offset={offset}",
                pacer=source.pacer, body=pieces, length=len(block),
                headers={"Cookie": cookie, "X-CSRFToken": tokens["csrf_token"],
                         "Content-Type": "application/octet-stream"},
            )
            source.statuses.append(sent.status)
            if sent.status != 200:
                raise RuntimeError(f"chunk at {offset} answered {sent.status}: "
                                   f"{sent.body[:200]!r}")
    finished = await request(host, port, "POST", f"/api/v1/uploads/{upload['id']}/finish",
                             headers=json_headers, body=json.dumps({"size": size}).encode())
    source.statuses.append(finished.status)
    if finished.status != 201:
        raise RuntimeError(f"finish answered {finished.status}: {finished.body[:200]!r}")


async def run_source(source: Source, host: str, port: int, data: bytes, delay: float) -> None:
    await asyncio.sleep(delay)
    try:
        if source.kind == "nojs":
            await run_nojs(source, host, port, data)
        else:
            await run_api(source, host, port)
        source.done = True
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # recorded and reported: the bench goes on with the others
        source.error = f"{type(exc).__name__}: {exc}"[:300]


# --- the new source, in its own process ---------------------------------------------------------


def probe_process(base: str, seconds: float, results) -> None:  # type: ignore[no-untyped-def]
    """Every second, a new source loads the form and files a text report."""
    import requests

    latencies: list[float] = []
    form_latencies: list[float] = []
    statuses: Counter[str] = Counter()
    started = time.monotonic()
    n = 0
    cpu = time.process_time()
    while time.monotonic() - started < seconds:
        due = started + n
        if time.monotonic() < due:
            time.sleep(due - time.monotonic())
        begun = time.monotonic()
        try:
            session = requests.Session()
            page = session.get(f"{base}/en/report", timeout=60)
            form_latencies.append(time.monotonic() - begun)
            data = {**form_tokens(page.text),
                    **valid_report(narrative=f"{marker('probe', n)} (a new source)")}
            answer = session.post(f"{base}/en/report", data=data, allow_redirects=False,
                                  files=[("attachments", ("", b"", "application/octet-stream"))],
                                  timeout=60)
            ok = answer.status_code == 200 and 'id="receipt"' in answer.text
            statuses[f"form {page.status_code}, report {answer.status_code}"] += 1
            if ok:
                latencies.append(time.monotonic() - begun)
        except requests.RequestException as exc:
            statuses[type(exc).__name__] += 1
        n += 1
    results.put({"latencies": latencies, "form": form_latencies, "statuses": statuses,
                 "cpu": time.process_time() - cpu, "sent": n})


# --- processes and their resources -------------------------------------------------------------


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return 0


@dataclass
class Stack:
    base: str
    gunicorn_pid: int
    nginx_pid: int
    data_dir: Path

    def gunicorn_pids(self) -> list[int]:
        return [self.gunicorn_pid, *children(self.gunicorn_pid)]

    def nginx_pids(self) -> list[int]:
        return [self.nginx_pid, *children(self.nginx_pid)]

    def cpu(self) -> tuple[float, float]:
        return (sum(cpu_seconds(p) for p in self.gunicorn_pids()),
                sum(cpu_seconds(p) for p in self.nginx_pids()))

    def rss(self) -> tuple[int, int]:
        return (sum(rss(p) for p in self.gunicorn_pids()), sum(rss(p) for p in self.nginx_pids()))


def api_buffering_off(text: str) -> str:
    assert "proxy_request_buffering on;" in text
    return text.replace("proxy_request_buffering on;", "proxy_request_buffering off;")


@contextlib.contextmanager
def production_stack(work: Path, deployment: Deployment, *, workers: int | None = None,
                     threads: int | None = None, worker_class: str = "gthread",
                     api_buffering: bool = True, max_upload: int | None = None,
                     ) -> Iterator[Stack]:
    """nginx (deploy/nginx.conf) in front of gunicorn (deploy/gunicorn.conf.py), on loopback."""
    (work / "tmp").mkdir(exist_ok=True)
    extra: dict[str, str] = {}
    if threads is not None:
        extra["INTAKE_THREADS"] = str(threads)
    if max_upload is not None:
        extra["INTAKE_MAX_UPLOAD"] = str(max_upload)
    if worker_class != "gthread":
        extra["GUNICORN_CMD_ARGS"] = f"--worker-class {worker_class} --worker-connections 2000"
    # The receipts' real Argon2id cost, as in production (the tests' helper makes it cheap).
    env = server_env(work / "var", deployment, work / "tmp", full_cost_receipts=True, **extra)
    workers = workers or (os.cpu_count() or 1) + 1
    with gunicorn(env, work / "logs", workers=workers, app="intake:create_app()") as base:
        upstream = int(base.rsplit(":", 1)[1])
        prefix = work / "nginx"
        edit = None if api_buffering else api_buffering_off
        with run_nginx(prefix, upstream, edit=edit) as front:
            nginx_pid = int((prefix / "nginx.pid").read_text())
            deadline = time.monotonic() + 30
            while len(children(base.pid)) < workers and time.monotonic() < deadline:
                time.sleep(0.1)
            yield Stack(front, base.pid, nginx_pid, work / "var")


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Result:
    sources: list[Source]
    window: float
    in_progress_at_start: int
    in_progress_at_end: int
    probe: dict
    server_cpu: float
    nginx_cpu: float
    generator_cpu: float
    other_cpu: float
    peak_rss: tuple[int, int, int]
    completed: bool
    completion_seconds: float = 0.0


def prepare_ciphertexts(work: Path, deployment: Deployment, count: int, size: int,
                        data: bytes) -> list[Path]:
    """The API sources' uploads, made with the age tool two at a time (not timed)."""
    age = shutil.which("age")
    if age is None:
        raise RuntimeError("the age tool is needed (apt-get install age)")
    recipients = deployment.current().active_recipients()
    folder = work / "ciphertexts"
    folder.mkdir()
    paths = [folder / f"{i:04d}.age" for i in range(count)]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool_:
        list(pool_.map(lambda i: make_ciphertext(age, recipients, data, i, size, paths[i]),
                       range(count)))
    return paths


async def drive(stack: Stack, sources: list[Source], data: bytes, *, ramp: float,
                window: float, complete: bool, say: Callable[[str], None]) -> Result:
    host, port = stack.base.removeprefix("http://").split(":")
    tasks = [
        asyncio.create_task(run_source(s, host, int(port), data, ramp * i / len(sources)))
        for i, s in enumerate(sources)
    ]
    # Ramp: until every source has started its body (or failed).
    deadline = time.monotonic() + ramp + 120
    while time.monotonic() < deadline:
        if all(s.started_body or s.error or s.done for s in sources):
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)  # the last bodies get going
    in_progress = sum(1 for s in sources if s.started_body and not s.done and not s.error)
    say(f"ramp done: {in_progress} of {len(sources)} slow uploads in progress, "
        f"{sum(bool(s.error) for s in sources)} failed")

    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    probe = context.Process(target=probe_process, args=(stack.base, window, results))
    server0, nginx0 = stack.cpu()
    machine0, own0, t0 = machine_busy_seconds(), time.process_time(), time.monotonic()
    probe.start()
    peak = (0, 0, 0)
    probe_result = None
    while probe_result is None:
        await asyncio.sleep(1)
        g, n = stack.rss()
        if g + n > peak[2]:
            peak = (g, n, g + n)
        with contextlib.suppress(Exception):
            probe_result = results.get_nowait()
        if time.monotonic() - t0 > window + 300:
            raise RuntimeError("the new source's process did not report")
    elapsed = time.monotonic() - t0
    server1, nginx1 = stack.cpu()
    machine1, own1 = machine_busy_seconds(), time.process_time()
    probe.join()
    still = sum(1 for s in sources if s.started_body and not s.done and not s.error)
    server_cpu, nginx_cpu = server1 - server0, nginx1 - nginx0
    generator_cpu = own1 - own0 + probe_result["cpu"]
    other = machine1 - machine0 - server_cpu - nginx_cpu - generator_cpu
    result = Result(sources, elapsed, in_progress, still, probe_result,
                    server_cpu / elapsed, nginx_cpu / elapsed, generator_cpu / elapsed,
                    max(0.0, other) / elapsed, peak, complete)
    if complete:
        say("window over: every slow source now sends the rest at full speed")
        started = time.monotonic()
        for s in sources:
            s.pacer.unleash()
        await asyncio.gather(*tasks)
        result.completion_seconds = time.monotonic() - started
    else:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return result


def open_blobs(data_dir: Path, identities, scratch: Path) -> Counter[str]:  # type: ignore[no-untyped-def]
    """Decrypt and open every blob; count each report by its narrative and file digest."""
    seen: Counter[str] = Counter()
    scratch.mkdir(exist_ok=True)
    for i, blob in enumerate(sorted((data_dir / "blobs").glob("*.age"))):
        plain = scratch / f"{i}.tar"
        with blob.open("rb") as src, plain.open("wb") as dst:
            decrypt_stream(src, dst, identities)
        with plain.open("rb") as fh:
            report = extract_container(fh, scratch / f"{i}")
        digests = ",".join(a["sha256"] for a in report.document["attachments"])
        for attachment in report.document["attachments"]:
            opened = hashlib.sha256((report.directory / attachment["path"]).read_bytes())
            if opened.hexdigest() != attachment["sha256"]:
                digests += " (a file does not match its digest)"
        seen[f"{report.document['fields'].get('narrative', '')}|{digests}"] += 1
        shutil.rmtree(scratch / f"{i}")
        plain.unlink()
    return seen


def expected_reports(result: Result) -> Counter[str]:
    expected: Counter[str] = Counter()
    for s in result.sources:
        expected[f"{marker(s.kind, s.index)}|{s.sha256}"] += 1
    return expected


def run(work: Path, *, sources: int, size: int, rate: float, ramp: float, window: float,
        complete: bool, worker_class: str = "gthread", api_buffering: bool = True,
        workers: int | None = None, threads: int | None = None,
        say: Callable[[str], None] = print) -> tuple[Result, Stack, Deployment]:
    deployment = Deployment(work / "keys").setup(recipients=2)
    data = pool()
    api_count, nojs_count = sources // 2, sources - sources // 2
    started = time.perf_counter()
    ciphertexts = prepare_ciphertexts(work, deployment, api_count, size, data)
    say(f"made {api_count} API ciphertexts of {size / MiB:g} MiB reports with the age tool in "
        f"{time.perf_counter() - started:.1f} s")
    roster = []
    for i in range(max(nojs_count, api_count)):
        if i < nojs_count:
            roster.append(Source("nojs", i, size, Pacer(rate)))
        if i < api_count:
            roster.append(Source("api", i, size, Pacer(rate), ciphertexts[i],
                                 file_digest(data, i, size)))
    with production_stack(work, deployment, workers=workers, threads=threads,
                          worker_class=worker_class, api_buffering=api_buffering,
                          max_upload=max(size * 2, 64 * MiB)) as stack:
        result = asyncio.run(drive(stack, roster, data, ramp=ramp, window=window,
                                   complete=complete, say=say))
        return result, stack, deployment


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=TARGET_SOURCES)
    parser.add_argument("--mib", type=float, default=20, help="each report's file, in MiB")
    parser.add_argument("--rate", type=float, default=20_000, help="bytes/s per slow source")
    parser.add_argument("--ramp", type=float, default=60, help="seconds to start them all")
    parser.add_argument("--window", type=float, default=60, help="measured seconds")
    parser.add_argument("--no-complete", dest="complete", action="store_false",
                        help="cancel the slow uploads after the window instead of finishing")
    parser.add_argument("--verify", action="store_true",
                        help="decrypt every blob and check every report is there once")
    parser.add_argument("--worker-class", default="gthread", choices=["gthread", "gevent"])
    parser.add_argument("--api-buffering", default="on", choices=["on", "off"])
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    size = int(args.mib * MiB)

    def say(text: str) -> None:
        print(text, flush=True)

    with tempfile.TemporaryDirectory(prefix="intake-slow-") as tmp:
        work = Path(tmp)
        say(machine_line())
        say(f"stack: nginx (deploy/nginx.conf, API chunk buffering {args.api_buffering}) -> "
            f"gunicorn (deploy/gunicorn.conf.py, {args.worker_class}"
            f"{', threads ' + str(args.threads) if args.threads else ''}), SQLite; "
            f"{args.sources} slow sources (half no-JS, half API), {args.mib:g} MiB each at "
            f"{args.rate / 1000:g} KB/s, ramp {args.ramp:g} s, window {args.window:g} s")
        result, stack, deployment = run(
            work, sources=args.sources, size=size, rate=args.rate, ramp=args.ramp,
            window=args.window, complete=args.complete, worker_class=args.worker_class,
            api_buffering=args.api_buffering == "on", workers=args.workers,
            threads=args.threads, say=say)
        variant = [] if args.worker_class == "gthread" else [args.worker_class]
        if args.api_buffering == "off":
            variant.append("API chunks unbuffered")
        if args.threads:
            variant.append(f"{args.threads} threads")
        name = "slow_sources" + (f" ({', '.join(variant)})" if variant else "")
        return summary(result, stack, deployment, work, args.verify, say, name)


def summary(result: Result, stack: Stack, deployment: Deployment, work: Path, verify: bool,
            say: Callable[[str], None], name: str = "slow_sources") -> int:
    probe = result.probe
    latencies = probe["latencies"]
    p99 = percentile(latencies, 0.99)
    statuses = Counter(probe["statuses"])
    five_xx = [s for s in result.sources for code in s.statuses if code >= 500]
    probe_5xx = sum(n for what, n in statuses.items() if re.search(r"\b5[0-9][0-9]\b", what))
    say(f"window: {result.window:.0f} s with {result.in_progress_at_start} slow uploads in "
        f"progress at its start and {result.in_progress_at_end} at its end")
    say(f"new source: {len(latencies)} of {probe['sent']} reports filed; form + report "
        f"p50 {percentile(latencies, 0.5):.3f} s, p99 {p99:.3f} s, max "
        f"{max(latencies, default=float('nan')):.3f} s; form alone p99 "
        f"{percentile(probe['form'], 0.99):.3f} s; answers {dict(statuses)}")
    say(f"CPU during the window (cores): gunicorn {result.server_cpu:.2f}, nginx "
        f"{result.nginx_cpu:.2f}, load generator + new source {result.generator_cpu:.2f}, "
        f"everything else on the machine {result.other_cpu:.2f}"
        f"{' (a busy machine)' if result.other_cpu > 0.25 else ''}")
    g, n, total = result.peak_rss
    say(f"peak total RSS during the window: {total / MiB:.0f} MiB (gunicorn {g / MiB:.0f} MiB, "
        f"nginx {n / MiB:.0f} MiB)")
    failed = [s for s in result.sources if s.error]
    for s in failed[:5]:
        say(f"slow source {s.kind} {s.index} failed: {s.error}")
    if failed or five_xx or probe_5xx:
        errors = Counter(line.split(": ", 1)[-1] for line in
                         (work / "logs" / "stderr.log").read_text(errors="replace").splitlines()
                         if line.startswith(("ERROR", "CRITICAL", "WARNING")))
        for line, count in errors.most_common(8):
            say(f"gunicorn's log, {count}x: {line[:200]}")
    ok = (result.in_progress_at_end == len(result.sources) and not failed and not five_xx
          and not probe_5xx and len(latencies) == probe["sent"])
    if result.completed:
        blobs = len(list((stack.data_dir / "blobs").glob("*.age")))
        expected = len(result.sources) + len(latencies)
        say(f"completion: every slow source finished in {result.completion_seconds:.0f} s; "
            f"{blobs} blobs stored, {expected} expected: "
            f"{'match' if blobs == expected else 'MISMATCH'}")
        ok &= blobs == expected
        if verify:
            seen = open_blobs(stack.data_dir, deployment.identities, work / "scratch")
            expected_set = expected_reports(result)
            slow_seen = Counter({k: v for k, v in seen.items() if k in expected_set})
            say(f"verified: {sum(slow_seen.values())} slow reports decrypted, each once: "
                f"{'yes' if slow_seen == expected_set else 'NO'}")
            ok &= slow_seen == expected_set
    met = (ok and len(result.sources) >= TARGET_SOURCES and p99 <= TARGET_P99
           and result.window >= 60)
    say(f"target: >= {TARGET_SOURCES} slow sources held for >= 60 s, new-source p99 <= "
        f"{TARGET_P99:g} s, no 5xx: {'met' if met else 'NOT met'}")
    print_result(
        name, f"{result.in_progress_at_end} slow uploads held for "
        f"{result.window:.0f} s; new source p99 {p99:.2f} s; peak RSS {total / MiB:.0f} MiB; "
        f"server {result.server_cpu:.2f} + nginx {result.nginx_cpu:.2f} cores, load generator "
        f"{result.generator_cpu:.2f}", f">= {TARGET_SOURCES} for >= 60 s, p99 <= {TARGET_P99:g} s, "
        "no 5xx", met, other_load=result.other_cpu)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
