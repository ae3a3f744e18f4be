"""Benchmark: text-only reports per second, no-JavaScript form and upload API against a baseline.

Starts gunicorn with deploy/gunicorn.conf.py (its default of cores + 1 workers
and threads, SQLite as in `make demo`) on a free loopback port, serving
bench/bench_app.py: the production app plus a bench-only baseline endpoint.
Then, for each path in turn, CLIENTS concurrent clients (threads, spread over
PROCS client processes so the GIL does not cap the client) send reports for
SECONDS:

  baseline  the no-JS form's exact multipart body POSTed to /bench/baseline,
            which stores the raw bytes with file + directory fsync: no
            parsing, no validation, no cryptography, no database;
  no-JS     the same body POSTed to /<lang>/report: multipart parsing,
            encrypted spool, form validation, the receipt's Argon2id, tar
            container, age encryption, fsynced blob store, database rows;
            success is the thank-you page with its receipt;
  API       a report as the browser sends it: create, one chunk, finish
            (three requests, timed together). The ciphertext (the report
            container, age-encrypted to the keyring's active recipients) is
            made before the timed loop with the age tool, since pyrage always
            adds a grease stanza and the API refuses anything but X25519
            stanzas; each client cycles through its share of a pool of
            distinct ciphertexts.

What is timed: the POST alone (for the API, its three requests). Each client
fetches the form once, before the timed loop, for its session cookie and CSRF
token, and reuses both for every report; each body gets a fresh multipart
boundary, as a browser's does (Werkzeug compiles its parser's expressions for
each new boundary). Prints reports/s, p50 and p99 latency per path, server and
client CPU, the server's CPU per report and its ratio to the baseline's
(target, issue 12: no-JS <= 3x the baseline, with p99 <= 250 ms under this
load), and checks that the data directory holds one blob per successful
report. Usage:
    .venv/bin/python bench/throughput.py [--seconds 30] [--clients 20] [--procs 2]
        [--blob-store postgresql [--database-url URL] [--instances N]]

With --blob-store postgresql it runs twice on one PostgreSQL database, with
the filesystem blob store and then with the PostgreSQL one, and prints the
two side by side; --instances N starts N gunicorn instances (each with its
own data dir) and spreads the clients over them (bench/_stores.py).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _stores  # noqa: E402
from _common import (  # noqa: E402
    Deployment,
    count_files,
    filesystem_of,
    form_tokens,
    machine_busy_seconds,
    machine_line,
    narrative,
    percentile,
    print_result,
    valid_report,
)

from intake.crypto.container import ContainerReader  # noqa: E402

#: Server CPU per no-JS report against the bare fsync endpoint's, and its p99 under load.
TARGET_CPU_RATIO = 3.0
TARGET_P99 = 0.250
#: CPU (in cores) taken by other processes above which a path's figures are flagged.
BUSY = 0.25
PATHS = {
    "baseline": "baseline (raw body + fsync)",
    "nojs": "no-JS form (full pipeline)",
    "api": "API (create + chunk + finish)",
}
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
Outcome = tuple[bool, str]


# --- one client: a session, set up before the timed loop ------------------------------------


def form_client(kind: str, base: str, text_size: int) -> Callable[[], Outcome]:
    session = requests.Session()
    page = session.get(f"{base}/en/report", timeout=60)
    page.raise_for_status()
    data = {**form_tokens(page.text), **valid_report(narrative=narrative(text_size))}
    # The body exactly as tests/helpers.submit sends it: an empty file input included.
    prepared = requests.Request(
        "POST",
        f"{base}/en/report",
        data=data,
        files=[("attachments", ("", b"", "application/octet-stream"))],
    ).prepare()
    body, content_type = prepared.body, prepared.headers["Content-Type"]
    boundary = content_type.split("boundary=", 1)[1].encode()
    url = f"{base}/en/report" if kind == "nojs" else f"{base}/bench/baseline"

    def one() -> Outcome:
        fresh = secrets.token_hex(16).encode()  # as long as requests' own: same body length
        response = session.post(
            url, data=body.replace(boundary, fresh), allow_redirects=False, timeout=120,
            headers={"Content-Type": f"multipart/form-data; boundary={fresh.decode()}"})
        # The form answers with the thank-you page and its receipt; the baseline redirects.
        ok = (response.status_code == 200 and 'id="receipt"' in response.text) if kind == "nojs" \
            else (response.status_code == 303 and response.headers["Location"].endswith("/thanks"))
        return ok, f"POST {response.status_code}"

    return one


def api_client(base: str, ciphertexts: list[bytes], version: int) -> Callable[[], Outcome]:
    session = requests.Session()
    page = session.get(f"{base}/en/report", timeout=60)
    page.raise_for_status()
    csrf = {"X-CSRFToken": CSRF.search(page.text).group(1)}
    chunk_headers = {**csrf, "Content-Type": "application/octet-stream"}
    sent = 0

    def one() -> Outcome:
        nonlocal sent
        ciphertext = ciphertexts[sent % len(ciphertexts)]
        sent += 1
        created = session.post(f"{base}/api/v1/uploads", headers=csrf, timeout=120,
                               json={"size": len(ciphertext), "keyring_version": version})
        if created.status_code != 201:
            return False, f"create {created.status_code}"
        url = f"{base}/api/v1/uploads/{created.json()['id']}"
        chunk = session.put(f"{url}?offset=0", data=ciphertext, headers=chunk_headers,
                            timeout=120)
        if chunk.status_code != 200:
            return False, f"chunk {chunk.status_code}"
        finished = session.post(f"{url}/finish", headers=csrf, json={"size": len(ciphertext)},
                                timeout=120)
        return finished.status_code == 201, f"finish {finished.status_code}"

    return one


# --- a client process: several client threads -----------------------------------------------


def run_client(one: Callable[[], Outcome], deadline: float, sink: list) -> None:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            ok, what = one()
        except requests.RequestException as exc:
            ok, what = False, type(exc).__name__
        if ok:
            latencies.append(time.perf_counter() - started)
        else:
            errors[what] += 1
    sink.append((latencies, errors))


def client_process(kind, base, payloads, seconds, text_size, version, barrier, results) -> None:
    try:
        if kind == "api":
            clients = [api_client(base, pool, version) for pool in payloads]
        else:
            clients = [form_client(kind, base, text_size) for _ in payloads]
        warm = [one() for one in clients]  # one report each: connections up, code paths warm
    except Exception as exc:
        results.put({"failed": f"{type(exc).__name__}: {exc}"})
        barrier.abort()
        return
    barrier.wait()
    cpu = time.process_time()
    deadline = time.monotonic() + seconds
    sink: list = []
    threads = [threading.Thread(target=run_client, args=(one, deadline, sink)) for one in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put({
        "latencies": [x for latencies, _ in sink for x in latencies],
        "errors": sum((errors for _, errors in sink), Counter()),
        "warm_ok": sum(ok for ok, _ in warm),
        "warm_errors": [what for ok, what in warm if not ok],
        "cpu": time.process_time() - cpu,
        "end": time.monotonic(),
    })


def measure(kind: str, server, args, ciphertexts: list[bytes], version: int) -> dict:
    context = multiprocessing.get_context("fork")
    procs = max(1, min(args.procs, args.clients))
    barrier = context.Barrier(procs + 1)
    results = context.Queue()
    shares = [list(range(i, args.clients, procs)) for i in range(procs)]
    processes = []
    bases = getattr(server, "bases", [server.base])  # --instances: processes take turns
    for n, share in enumerate(shares):
        if kind == "api":  # each client gets its own slice of the pool
            payloads = [ciphertexts[c::args.clients] or ciphertexts for c in share]
        else:
            payloads = share
        processes.append(context.Process(
            target=client_process,
            args=(kind, bases[n % len(bases)], payloads, args.seconds, args.text, version,
                  barrier, results),
        ))
    for process in processes:
        process.start()
    try:
        barrier.wait(timeout=300)
    except threading.BrokenBarrierError:
        failure = results.get(timeout=60)
        for process in processes:
            process.join()
        raise RuntimeError(f"a {kind} client could not start: {failure.get('failed')}") from None
    started = time.monotonic()
    server_cpu, machine = server.cpu_seconds(), machine_busy_seconds()
    outs = [results.get(timeout=args.seconds + 600) for _ in processes]
    server_cpu = server.cpu_seconds() - server_cpu
    machine = machine_busy_seconds() - machine
    for process in processes:
        process.join()
    elapsed = max(out["end"] for out in outs) - started
    latencies = [x for out in outs for x in out["latencies"]]
    return {
        "kind": kind,
        "ok": len(latencies),
        "rate": len(latencies) / elapsed,
        "p50": percentile(latencies, 0.50),
        "p99": percentile(latencies, 0.99),
        "errors": sum((out["errors"] for out in outs), Counter()),
        "warm_ok": sum(out["warm_ok"] for out in outs),
        "warm_errors": [what for out in outs for what in out["warm_errors"]],
        "client_cpu": sum(out["cpu"] for out in outs) / elapsed,
        "busiest_client": max(out["cpu"] for out in outs) / elapsed,
        "server_cpu": server_cpu / elapsed,
        "other_cpu": max(0.0, machine - server_cpu - sum(out["cpu"] for out in outs)) / elapsed,
        "elapsed": elapsed,
        "procs": procs,
    }


# --- set-up ---------------------------------------------------------------------------------


def make_ciphertexts(age: str, recipients: list[str], count: int, text_size: int) -> list[bytes]:
    """Report containers as the browser builds them, age-encrypted without grease."""
    args = [age, *sum((["-r", r] for r in recipients), [])]
    pool = []
    for i in range(count):
        fields = valid_report(narrative=f"{i} {narrative(text_size)}")
        container = ContainerReader("en", fields, []).read()
        pool.append(subprocess.run(args, input=container, capture_output=True,
                                   check=True).stdout)
    return pool


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30, help="timed seconds per path")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients")
    parser.add_argument("--procs", type=int, default=2,
                        help="client processes the clients are spread over")
    parser.add_argument("--workers", type=int, default=(os.cpu_count() or 1) + 1,
                        help="gunicorn workers (default: the deploy default, cores + 1)")
    parser.add_argument("--text", type=int, default=2000,
                        help="bytes of narrative in each report")
    parser.add_argument("--api-pool", type=int, default=200,
                        help="distinct API ciphertexts, made before the timed loop")
    parser.add_argument("--paths", default="baseline,nojs,api",
                        help="comma-separated subset of baseline,nojs,api")
    _stores.add_options(parser, instances=True)
    args = parser.parse_args()
    if args.instances > 1 and args.blob_store != "postgresql":
        parser.error("--instances needs --blob-store postgresql (one database for them all)")
    if args.instances > 1 and args.procs < args.instances:
        parser.error("--procs must be at least --instances (each process talks to one)")
    kinds = [k for k in args.paths.split(",") if k]
    if not set(kinds) <= set(PATHS):
        parser.error(f"--paths takes {','.join(PATHS)}")
    age = shutil.which("age")
    if age is None and "api" in kinds:
        print("bench: the age tool is needed for the API path (apt-get install age)",
              file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="intake-bench-") as tmp:
        work = Path(tmp)
        deployment = Deployment(work / "keys").setup(recipients=2)
        keyring = deployment.current()
        ciphertexts = []
        if "api" in kinds:
            started = time.perf_counter()
            ciphertexts = make_ciphertexts(age, keyring.active_recipients(),
                                           max(args.api_pool, 1), args.text)
            print(f"made {len(ciphertexts)} API ciphertexts of {len(ciphertexts[0])} bytes "
                  f"with the age tool in {time.perf_counter() - started:.1f} s")
        broken, by_store = 0, {}
        for store in _stores.stores(args):
            results = {}
            run = work / store
            run.mkdir()
            with _stores.servers(run, deployment, workers=args.workers,
                                 instances=args.instances,
                                 **_stores.env_for(store, args, run)) as server:
                print(machine_line())
                print(f"== {_stores.label(store, args)}, {args.instances} instance(s) ==")
                print(f"server: gunicorn -c deploy/gunicorn.conf.py, {args.workers} workers "
                      f"and its threads per worker, data dir on {filesystem_of(work)}; "
                      f"clients: {args.clients} over {min(args.procs, args.clients)} "
                      f"processes, {args.seconds:g} s per path, timing the POST only (form "
                      f"fetched once per client; API: create + chunk + finish)", flush=True)
                for kind in kinds:
                    results[kind] = measure(kind, server, args, ciphertexts, keyring.version)
                    report_line(results[kind])
                blobs = _stores.count_blobs(store, args, server.data_dirs)
                baseline_files = sum(count_files(d / "bench-baseline", "*.bin")
                                     for d in server.data_dirs)
            broken |= summary(results, blobs, baseline_files)
            by_store[store] = results
        if len(by_store) > 1:
            print(f"side by side ({args.instances} instance(s), reports/s):")
            for kind in kinds:
                print(f"  {PATHS[kind]:<30}: " + "   ".join(
                    f"{store} {results[kind]['rate']:7.1f}"
                    for store, results in by_store.items()))
    return broken


def report_line(r: dict) -> None:
    errors = sum(r["errors"].values())
    detail = ", ".join(f"{what}: {n}" for what, n in r["errors"].most_common(3))
    print(
        f"{PATHS[r['kind']]:<30}: {r['rate']:7.1f} reports/s  p50 {r['p50'] * 1000:6.1f} ms  "
        f"p99 {r['p99'] * 1000:6.1f} ms  ({r['ok']} ok, {errors} failed"
        f"{' [' + detail + ']' if detail else ''} in {r['elapsed']:.1f} s)"
    )
    print(
        f"{'':<30}  server CPU {r['server_cpu']:.2f} cores, client CPU {r['client_cpu']:.2f} "
        f"cores (busiest of {r['procs']} processes: {r['busiest_client']:.0%} of a core), "
        f"anything else (other processes, kernel threads) {r['other_cpu']:.2f} cores",
        flush=True,
    )
    if r["other_cpu"] > BUSY:
        print(f"{'':<30}  warning: other work took {r['other_cpu']:.2f} of the machine's "
              f"{os.cpu_count()} cores during this path; its figures are low", flush=True)


def summary(results: dict, blobs: int, baseline_files: int) -> int:
    broken = False
    base = results.get("baseline")
    nojs = results.get("nojs")
    if base and base["ok"]:
        for kind, label in (("nojs", "no-JS"), ("api", "API")):
            if kind in results:
                ratio = results[kind]["rate"] / base["rate"]
                print(f"throughput {label + ' / baseline':<18}: {ratio:5.2f}")
    for r in results.values():
        if r["ok"]:
            print(f"server CPU per report, {PATHS[r['kind']]:<30}: "
                  f"{r['server_cpu'] / r['rate'] * 1000:6.2f} ms")
    if base and base["ok"] and nojs and nojs["ok"]:
        per_report = nojs["server_cpu"] / nojs["rate"]
        floor = base["server_cpu"] / base["rate"]
        ratio = per_report / floor
        met = ratio <= TARGET_CPU_RATIO and nojs["p99"] <= TARGET_P99
        other = max(base["other_cpu"], nojs["other_cpu"])
        print(f"no-JS server CPU / baseline's: {ratio:5.2f}x (target <= {TARGET_CPU_RATIO:g}x), "
              f"p99 {nojs['p99'] * 1000:.0f} ms (target <= {TARGET_P99 * 1000:.0f} ms): "
              f"{'met' if met else 'NOT met'}")
        print_result(
            "throughput", f"no-JS server CPU {per_report * 1000:.2f} ms = {ratio:.2f}x the bare "
            f"fsync endpoint's {floor * 1000:.2f} ms; p99 {nojs['p99'] * 1000:.0f} ms at "
            f"{nojs['rate']:.0f} reports/s",
            f"<= {TARGET_CPU_RATIO:g}x, p99 <= {TARGET_P99 * 1000:.0f} ms", met, other_load=other,
            reason="" if met else "see README, Performance: where a report's CPU goes")
    for r in results.values():
        if r["ok"] == 0 or r["warm_errors"]:
            print(f"bench: {PATHS[r['kind']]} is broken: {r['ok']} reports stored, "
                  f"warm-up failures {r['warm_errors']}", file=sys.stderr)
            broken = True
    expected = sum(results[k]["ok"] + results[k]["warm_ok"] for k in ("nojs", "api")
                   if k in results)
    print(f"stored blobs {blobs}, successful no-JS + API reports {expected} (warm-up "
          f"included): {'match' if blobs == expected else 'MISMATCH'}")
    if "baseline" in results:
        expected_files = results["baseline"]["ok"] + results["baseline"]["warm_ok"]
        print(f"baseline files {baseline_files}, successful baseline posts {expected_files}: "
              f"{'match' if baseline_files == expected_files else 'MISMATCH'}")
        broken |= baseline_files != expected_files
    broken |= blobs != expected
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
