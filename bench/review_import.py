"""Benchmark: `intake review import` against the age tool and tar, one report at a time.

Builds a bundle of N small reports (default 2,000) encrypted to a fresh
reviewer key, then times, RUNS times each:
  1. `intake review import` of the whole bundle (identity unlocked once,
     every container validated, filed as a case and indexed in the case store;
     decrypted by one worker process per core);
  2. the serial floor: for each blob, `age -d -i KEY FILE | tar -x -C DIR`
     into a folder of its own, one report after the other (a shell loop);
  3. the parallel floor: the same pipeline for each blob, two at a time
     (`xargs -P2`), so that parallelism alone does not meet the target.
Prints reports per second for each, the ratios (targets: >= 2x the serial
floor, >= 1x the parallel one) and the other load on the machine. Usage:
    .venv/bin/python bench/review_import.py [N] [RUNS]
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from pyrage import x25519

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_result  # noqa: E402

from intake.crypto.container import Attachment, ContainerReader
from intake.crypto.envelope import encrypt_bytes


def make_bundle(directory: Path, count: int, recipient: str) -> Path:
    bundle = directory / "bundle.tar"
    blobs = directory / "blobs"
    blobs.mkdir()
    entries = []
    for i in range(count):
        attachment_bytes = os.urandom(2000)
        attachment = Attachment(
            "note.txt",
            "text/plain",
            len(attachment_bytes),
            hashlib.sha256(attachment_bytes).hexdigest(),
            lambda data=attachment_bytes: io.BytesIO(data),
        )
        fields = {
            "narrative": f"report {i}: a suspicious link arrived by SMS",
            "categories": ["phishing"],
            "country": "EG",
            "risk_now": "elevated",
        }
        container = ContainerReader("en", fields, [attachment]).read()
        blob = encrypt_bytes(container, [recipient])
        submission_id = hashlib.sha256(f"{i}".encode()).hexdigest()[:32]
        (blobs / f"{submission_id}.age").write_bytes(blob)
        entries.append(
            {
                "id": submission_id,
                "received_on": "2026-11-28",
                "size": len(blob),
                "sha256": hashlib.sha256(blob).hexdigest(),
                "keyring_version": 1,
            }
        )
    manifest = json.dumps({"format": "intake-export/v1", "submissions": entries}).encode()
    with tarfile.open(bundle, "w") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
        for entry in entries:
            tar.add(blobs / f"{entry['id']}.age", arcname=f"submissions/{entry['id']}.age")
    return bundle


TARGET_SERIAL = 2.0
TARGET_PARALLEL = 1.0
#: One report, as a reviewer without the intake would open it: decrypt, then unpack.
#: sh -c PIPELINE KEY OUT BLOB: $0 is the identity, $1 the output folder, $2 the blob.
PIPELINE = 'mkdir "$1/${2##*/}" && age -d -i "$0" "$2" | tar -x -C "$1/${2##*/}"'


def machine_busy_seconds() -> float:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    times = os.times()
    return times.children_user + times.children_system


def timed(command: list[str], **kwargs) -> tuple[float, float]:
    """Seconds a command took, and the rest of the machine's load meanwhile (cores)."""
    busy, own, started = machine_busy_seconds(), children_cpu(), time.perf_counter()
    subprocess.run(command, check=True, **kwargs)
    seconds = time.perf_counter() - started
    other = machine_busy_seconds() - busy - (children_cpu() - own)
    return seconds, max(0.0, other) / seconds


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    age = shutil.which("age")
    if age is None or shutil.which("tar") is None:
        sys.exit("bench: the age tool and tar are needed (apt-get install age tar)")
    identity = x25519.Identity.generate()
    times: dict[str, list[float]] = {"import": [], "serial": [], "parallel": []}
    others: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        key = work / "reviewer.key"
        key.write_text(f"{identity}\n")
        started = time.perf_counter()
        bundle = make_bundle(work, count, str(identity.to_public()))
        print(f"built a bundle of {count} reports in {time.perf_counter() - started:.1f} s")
        blobs = sorted(str(p) for p in (work / "blobs").glob("*.age"))
        listing = ("\0".join(blobs) + "\0").encode()
        for run in range(1, runs + 1):
            cases = work / f"cases-{run}"
            seconds, other = timed(
                [sys.executable, "-m", "intake", "review", "import", str(bundle),
                 "--identity", str(key), "--cases", str(cases)],
                stderr=subprocess.DEVNULL)
            times["import"].append(seconds)
            others.append(other)
            for kind, parallel in (("serial", "1"), ("parallel", "2")):
                out = work / f"{kind}-{run}"
                out.mkdir()
                seconds, other = _floor(listing, key, out, parallel)
                times[kind].append(seconds)
                others.append(other)
                shutil.rmtree(out)
            shutil.rmtree(cases)
            print(f"run {run}: import {times['import'][-1]:.1f} s, serial age | tar "
                  f"{times['serial'][-1]:.1f} s, parallel (xargs -P2) "
                  f"{times['parallel'][-1]:.1f} s", flush=True)

    median = {kind: statistics.median(values) for kind, values in times.items()}
    load = statistics.median(others)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; "
        f"other load during the runs: median {load:.2f} cores"
        f"{' (a busy machine: figures are low)' if load > 0.25 else ''}"
    )
    print(f"medians of {runs} run(s), {count} reports:")
    print(f"  intake review import        : {count / median['import']:8.1f} reports/s "
          f"({median['import']:.1f} s, validated, filed and indexed)")
    print(f"  age -d | tar -x, serial     : {count / median['serial']:8.1f} reports/s "
          f"({median['serial']:.1f} s)")
    print(f"  age -d | tar -x, xargs -P2  : {count / median['parallel']:8.1f} reports/s "
          f"({median['parallel']:.1f} s)")
    serial = median["serial"] / median["import"]
    parallel = median["parallel"] / median["import"]
    print(f"ratio against the serial floor  : {serial:6.2f}x (target >= {TARGET_SERIAL:g}x: "
          f"{'met' if serial >= TARGET_SERIAL else 'NOT met'})")
    print(f"ratio against the parallel floor: {parallel:6.2f}x (target >= {TARGET_PARALLEL:g}x: "
          f"{'met' if parallel >= TARGET_PARALLEL else 'NOT met'})")
    met = serial >= TARGET_SERIAL and parallel >= TARGET_PARALLEL
    print_result(
        "review_import", f"{count} reports: {serial:.2f}x the serial `age -d | tar -x` loop, "
        f"{parallel:.2f}x the parallel one (xargs -P2); {count / median['import']:.0f} reports/s",
        f">= {TARGET_SERIAL:g}x serial, >= {TARGET_PARALLEL:g}x parallel", met, other_load=load,
        reason="" if met else "see README, Performance")


def _floor(listing: bytes, key: Path, out: Path, parallel: str) -> tuple[float, float]:
    """`age -d | tar -x` for every blob, `parallel` at a time, each into its own folder."""
    return timed(["xargs", "-0", "-n1", "-P", parallel, "sh", "-c", PIPELINE, str(key), str(out)],
                 input=listing)


if __name__ == "__main__":
    main()
