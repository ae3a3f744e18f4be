"""Benchmark: encrypting and uploading a large file in headless Chromium.

Starts gunicorn with the deploy configuration on a free loopback port, then in
Debian's Chromium (through Playwright):
  1. the bare vendored age bundle encrypting SIZE bytes in one call in a page;
  2. the whole submission through the form with JavaScript on: hashing, tar,
     Padme padding, streaming encryption in the Web Worker, chunked upload to
     loopback, until the thank-you page.
Prints MB/s for both, the ratio (target: whole >= 0.7 of bare), and the peak
JS heap of the page sampled during the submission.
Usage: .venv/bin/python bench/browser_encrypt.py [MiB]   (default 100)
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers import Deployment, gunicorn, server_env  # noqa: E402

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def fill_required(page) -> None:
    for selector in (
        "#reporter_role-1",
        "#consent_use-1",
        "#categories-1",
        "#how_discovered-1",
        "#target_profile-1",
        "#risk_now-1",
    ):
        page.check(selector)
    page.fill("#first_noticed", "2026-03")
    page.select_option("#country", "EG")
    page.fill("#narrative", "benchmark report")


def main() -> None:
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    size = mib * 1024 * 1024
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("bench: Debian's chromium is needed (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        deployment = Deployment(work / "keys").setup(recipients=2)
        (work / "tmp").mkdir()
        big = work / "evidence.bin"
        with big.open("wb") as fh:
            for _ in range(mib):
                fh.write(os.urandom(1024 * 1024))
        env = server_env(
            work / "var", deployment, work / "tmp", INTAKE_MAX_UPLOAD=str(size + 64 * 1024 * 1024)
        )
        with gunicorn(env, work / "logs") as base, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=ARGS)
            page = browser.new_page()
            page.goto(f"{base}/en/report")
            recipients = [r.recipient for r in deployment.current().recipients]
            bare_seconds = page.evaluate(
                """async ([size, recipients]) => {
                    const data = new Uint8Array(size);
                    for (let i = 0; i < size; i += 65536) {
                        crypto.getRandomValues(data.subarray(i, i + 65536));
                    }
                    const e = new self.ageEncryption.Encrypter();
                    recipients.forEach((r) => e.addRecipient(r));
                    const t = performance.now();
                    await e.encrypt(data);
                    return (performance.now() - t) / 1000;
                }""",
                [size, recipients],
            )
            page.goto(f"{base}/en/report")
            fill_required(page)
            page.set_input_files("#attachments", [str(big)])
            cdp = page.context.new_cdp_session(page)
            cdp.send("Performance.enable")
            peak_heap = 0

            started = time.perf_counter()
            page.click("button[type=submit]")
            deadline = time.monotonic() + 1800
            while "thanks" not in page.url and time.monotonic() < deadline:
                metrics = {
                    m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]
                }
                peak_heap = max(peak_heap, metrics.get("JSHeapUsedSize", 0))
                page.wait_for_timeout(200)
            whole_seconds = time.perf_counter() - started
            browser.close()
        stored = list((work / "var" / "blobs").glob("*.age"))
    mb = size / 1e6
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores; "
        f"Chromium via Playwright; {mib} MiB file"
    )
    print(f"bare age bundle, one call : {mb / bare_seconds:8.1f} MB/s ({bare_seconds:.1f} s)")
    print(
        f"whole submission          : {mb / whole_seconds:8.1f} MB/s ({whole_seconds:.1f} s, "
        f"{len(stored)} blob stored)"
    )
    print(f"ratio whole / bare        : {bare_seconds / whole_seconds:8.2f} (target >= 0.7)")
    print(
        f"peak JS heap of the page: {peak_heap / 2**20:.1f} MiB (the worker's heap is not "
        "exposed to CDP's page metrics; the tab survived the whole file)"
    )


if __name__ == "__main__":
    main()
