"""Benchmark: one large attachment through the no-JavaScript form, against two floors.

Writes SIZE random bytes (default 256 MiB) to a temporary file, starts gunicorn
with deploy/gunicorn.conf.py and ONE worker (so its pid is known) serving
bench/bench_app.py, with INTAKE_MAX_UPLOAD raised to SIZE + 64 MiB, and then,
RUNS times in turn:

  full       the report with the file as its attachment, POSTed as multipart
             to /en/report, streamed from disk by the client (the body is a
             file-like object of known length: head, the file in 1 MiB reads,
             tail), until the thank-you page: multipart parsing, encrypted
             spool, the receipt's Argon2id, tar container, age encryption,
             fsynced blob, database rows;
  transport  the same multipart body POSTed to /bench/discard, which reads the
             body and throws it away (the transport floor);
  parse      the same body POSTed to /bench/parse: Werkzeug's multipart parser
             with the file part discarded (for the record, no target);
  age        `age -r R1 -r R2 -o /dev/null FILE`, the keyring's active
             recipients (the crypto floor, a subprocess).

Prints the median time and MB/s of each (MB = 10^6 bytes), the ratio
full/transport (target, issue 12: within 4x), and the worker's peak RSS growth over
the full runs: VmHWM from /proc/<worker>/status after a small warm-up
report and after the last run (target: at most 64 MiB). Usage:
    .venv/bin/python bench/large_upload.py [--mib 256] [--runs 3]
        [--blob-store postgresql [--database-url URL]]

With --blob-store postgresql everything runs twice on one PostgreSQL
database, with the filesystem blob store and then with the PostgreSQL one,
and the full path's MB/s and the worker's RSS growth are printed side by side
(bench/_stores.py).
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _stores  # noqa: E402
from _common import (  # noqa: E402
    Deployment,
    MiB,
    bench_server,
    filesystem_of,
    form_tokens,
    machine_busy_seconds,
    machine_line,
    print_result,
    valid_report,
    vm_hwm,
)

TARGET_RATIO = 4.0
TARGET_GROWTH = 64 * MiB
#: CPU (in cores) taken by other processes above which the figures are flagged.
BUSY = 0.25
BLOCK = MiB


class MultipartBody(io.RawIOBase):
    """A multipart/form-data body whose one file part is read from disk as it is sent."""

    def __init__(self, fields: dict[str, Any], file_field: str, path: Path, filename: str):
        super().__init__()
        self.boundary = secrets.token_hex(16)
        lines = []
        for name, value in fields.items():
            for item in value if isinstance(value, list) else [value]:
                lines.append(f'--{self.boundary}\r\nContent-Disposition: form-data; '
                             f'name="{name}"\r\n\r\n{item}\r\n')
        lines.append(f'--{self.boundary}\r\nContent-Disposition: form-data; '
                     f'name="{file_field}"; filename="{filename}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n")
        head = "".join(lines).encode()
        tail = f"\r\n--{self.boundary}--\r\n".encode()
        self.length = len(head) + path.stat().st_size + len(tail)
        self._path = path
        self._parts = [io.BytesIO(head), None, io.BytesIO(tail)]

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = BLOCK if size is None or size < 0 else size
        while self._parts:
            part = self._parts[0]
            if part is None:
                part = self._parts[0] = open(self._path, "rb")  # noqa: SIM115
            data = part.read(size)
            if data:
                return data
            part.close()
            self._parts.pop(0)
        return b""

    def close(self) -> None:
        for part in self._parts:
            if part is not None:
                part.close()
        self._parts = []
        super().close()


def post_streaming(base: str, path: str, body: MultipartBody, cookie: str) -> tuple[float, int]:
    """POST `body` (never in memory as a whole); the seconds until the answer, and its status."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=600, blocksize=BLOCK)
    try:
        started = time.perf_counter()
        connection.request("POST", path, body=body, headers={
            "Content-Type": body.content_type,
            "Content-Length": str(body.length),
            "Cookie": cookie,
        })
        response = connection.getresponse()
        response.read()
        seconds = time.perf_counter() - started
        location = response.getheader("Location", "")
    finally:
        connection.close()
        body.close()
    # The form answers 200 with the thank-you page (its receipt); the bench endpoints 303.
    filed = location.endswith("/thanks") or response.status == 200
    status = response.status if filed else -response.status
    return seconds, status


def own_cpu_seconds() -> float:
    """CPU time of this process and its finished children (the age runs)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def write_random(path: Path, size: int) -> None:
    with path.open("wb") as fh:
        left = size
        while left:
            fh.write(os.urandom(min(BLOCK, left)))
            left -= min(BLOCK, left)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=256, help="attachment size in MiB")
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement")
    _stores.add_options(parser)
    args = parser.parse_args()
    rc, side_by_side = 0, []
    for store in _stores.stores(args):
        print(f"== {_stores.label(store, args)} ==", flush=True)
        result, figures = run_store(args, store)
        rc |= result
        side_by_side.append((store, figures))
    if len(side_by_side) > 1:
        print("side by side, full no-JS path:")
        for store, (mb_s, growth) in side_by_side:
            print(f"  {store:<10} blob store: {mb_s:7.1f} MB/s, worker peak RSS growth "
                  f"{growth / MiB:6.1f} MiB")
    return rc


def run_store(args: argparse.Namespace, store: str) -> tuple[int, tuple[float, int]]:
    """One whole benchmark with `store`; its exit code, and (full path MB/s, RSS growth)."""
    size = args.mib * MiB
    age = shutil.which("age")
    if age is None:
        print("bench: the age tool is needed (apt-get install age)", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="intake-bench-") as tmp:
        work = Path(tmp)
        deployment = Deployment(work / "keys").setup(recipients=2)
        recipients = deployment.current().active_recipients()
        big = work / "evidence.bin"
        started = time.perf_counter()
        write_random(big, size)
        print(f"wrote {args.mib} MiB of random bytes in {time.perf_counter() - started:.1f} s")
        times: dict[str, list[float]] = {"full": [], "transport": [], "parse": [], "age": []}
        with bench_server(work, deployment, workers=1, INTAKE_MAX_UPLOAD=str(size + 64 * MiB),
                          **_stores.env_for(store, args, work)) as server:
            [worker] = server.worker_pids()
            session = requests.Session()
            page = session.get(f"{server.base}/en/report", timeout=60)
            page.raise_for_status()
            fields = {**form_tokens(page.text), **valid_report()}
            cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
            warm = session.post(f"{server.base}/en/report", data=fields, allow_redirects=False,
                                files=[("attachments", ("note.txt", b"warm-up", "text/plain"))],
                                timeout=60)
            if warm.status_code != 200:
                print(f"bench: the warm-up report was refused ({warm.status_code})",
                      file=sys.stderr)
                return 1
            hwm_before = vm_hwm(worker)
            print(machine_line())
            print(f"server: gunicorn -c deploy/gunicorn.conf.py, 1 worker (its threads) "
                  f"(pid {worker}), data dir on {filesystem_of(work)}; {args.runs} run(s) "
                  f"of each; the file is in the page cache", flush=True)
            growth_after_first = None
            busy = (machine_busy_seconds(), server.cpu_seconds(), own_cpu_seconds(),
                    time.monotonic())
            for run in range(1, args.runs + 1):
                for kind, url in (("full", "/en/report"), ("transport", "/bench/discard"),
                                  ("parse", "/bench/parse")):
                    body = MultipartBody(fields, "attachments", big, "capture.pcap")
                    seconds, status = post_streaming(server.base, url, body, cookie)
                    if status not in (200, 303):
                        print(f"bench: {kind} run {run} answered {abs(status)}",
                              file=sys.stderr)
                        return 1
                    times[kind].append(seconds)
                    if kind == "full" and growth_after_first is None:
                        growth_after_first = vm_hwm(worker) - hwm_before
                recipient_args = sum((["-r", r] for r in recipients), [])
                started = time.perf_counter()
                subprocess.run([age, *recipient_args, "-o", os.devnull, str(big)], check=True)
                times["age"].append(time.perf_counter() - started)
                print("run " + str(run) + ": " + ", ".join(
                    f"{kind} {values[-1]:.2f} s" for kind, values in times.items()), flush=True)
            other = (machine_busy_seconds() - busy[0] - (server.cpu_seconds() - busy[1])
                     - (own_cpu_seconds() - busy[2])) / (time.monotonic() - busy[3])
            flag = " (figures are low)" if other > BUSY else ""
            print(f"other work (other processes, kernel threads) during the runs: "
                  f"{max(0.0, other):.2f} of {os.cpu_count()} cores{flag}")
            if server.worker_pids() != [worker]:
                print("bench: the worker was replaced during the runs", file=sys.stderr)
                return 1
            growth = vm_hwm(worker) - hwm_before
            blob_sizes = _stores.blob_sizes(store, args, server.data_dir)
            blobs = len(blob_sizes)

    mb = size / 1e6
    median = {kind: statistics.median(values) for kind, values in times.items()}
    labels = {
        "full": "full no-JS path",
        "transport": "transport floor (read + discard)",
        "parse": "multipart parse, file discarded",
        "age": "age CLI to /dev/null (crypto)",
    }
    print(f"medians of {args.runs} run(s), {args.mib} MiB attachment:")
    for kind, seconds in median.items():
        print(f"  {labels[kind]:<34}: {mb / seconds:7.1f} MB/s ({seconds:.2f} s)")
    ratio = median["full"] / median["transport"]
    print(f"ratio full / transport time        : {ratio:7.2f}x (target <= {TARGET_RATIO}x: "
          f"{'met' if ratio <= TARGET_RATIO else 'NOT met'})")
    print(f"ratio full / age CLI time          : {median['full'] / median['age']:7.2f}x")
    print(f"worker peak RSS growth (VmHWM)     : {growth / MiB:7.1f} MiB after {args.runs} full "
          f"run(s), {growth_after_first / MiB:.1f} MiB after the first (target <= "
          f"{TARGET_GROWTH // MiB} MiB: {'met' if growth <= TARGET_GROWTH else 'NOT met'})")
    met = ratio <= TARGET_RATIO and growth <= TARGET_GROWTH
    print_result(
        "large_upload", f"{args.mib} MiB no-JS upload {ratio:.2f}x the transport floor "
        f"({mb / median['full']:.0f} vs {mb / median['transport']:.0f} MB/s); worker RSS growth "
        f"{growth / MiB:.0f} MiB",
        f"<= {TARGET_RATIO:g}x, RSS growth <= {TARGET_GROWTH // MiB} MiB", met,
        other_load=max(0.0, other),
        reason="" if met else "two passes over the file: spool, then container and age "
        "(README, Performance)")
    expected = args.runs + 1
    big_blobs = sum(s > size for s in blob_sizes)
    print(f"stored blobs {blobs} ({big_blobs} larger than the file), expected {expected} "
          f"(warm-up included): {'match' if blobs == expected else 'MISMATCH'}")
    return (0 if blobs == expected and big_blobs == args.runs else 1), (
        mb / median["full"], growth)


if __name__ == "__main__":
    sys.exit(main())
