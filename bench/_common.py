"""Shared by bench/throughput.py and bench/large_upload.py: the server and /proc probes.

`bench_server` runs a real gunicorn with deploy/gunicorn.conf.py on a free
loopback port, serving `bench_app:create_bench_app()` (the production app
plus the benchmarks' own endpoints, see bench/bench_app.py), and stops it at
the end whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT / "tests"))
from helpers import (  # noqa: E402
    Deployment,
    form_tokens,
    gunicorn,
    server_env,
    valid_report,
)

__all__ = [
    "RESULT_PREFIX",
    "Deployment",
    "Server",
    "bench_server",
    "cpu_seconds",
    "form_tokens",
    "machine_busy_seconds",
    "machine_line",
    "percentile",
    "print_result",
    "valid_report",
    "vm_hwm",
]

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MiB = 1024 * 1024

NARRATIVE = (
    "On 3 March a message arrived by SMS claiming to be from the courier company, with a "
    "shortened link to track a parcel I was not expecting. I opened it on my phone before "
    "I noticed the address was wrong. Two days later my messaging account showed a session "
    "on a device I do not own, and colleagues received messages in my name asking for "
    "documents. "
)


def narrative(size: int = 2000) -> str:
    """About `size` bytes of plausible report text (ASCII, so bytes == characters)."""
    return (NARRATIVE * (size // len(NARRATIVE) + 1))[:size]


@dataclass
class Server:
    base: str
    pid: int  # gunicorn's master
    data_dir: Path
    log_dir: Path

    def worker_pids(self) -> list[int]:
        """The gunicorn workers: the master's child processes."""
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def cpu_seconds(self) -> float:
        """User + system CPU of the master and its live workers."""
        return sum(cpu_seconds(pid) for pid in [self.pid, *self.worker_pids()])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process, from /proc/<pid>/stat (0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent busy (all cores, not idle or waiting on I/O)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def vm_hwm(pid: int) -> int:
    """Peak resident set size (VmHWM) of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


#: The line each benchmark ends with, which bench/run_all.py collects into one table.
RESULT_PREFIX = "BENCH-RESULT "
#: CPU (in cores) taken by other work above which a figure is marked as taken on a busy machine.
BUSY = 0.25


def print_result(bench: str, figure: str, target: str, met: bool, *, other_load: float,
                 reason: str = "") -> None:
    """One benchmark's outcome, as a line for `make bench` to collect.

    `figure` is the measured ratio (and what else the table shows), `target` the
    issue's target, `reason` why a miss is a miss (the limit measured), and
    `other_load` the CPU (cores) other work on the machine took meanwhile.
    """
    print(RESULT_PREFIX + json.dumps({
        "bench": bench, "figure": figure, "target": target, "met": bool(met),
        "other_load": round(other_load, 2), "busy": other_load > BUSY, "reason": reason,
    }, ensure_ascii=False), flush=True)


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of `values` (NaN if empty)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def machine_line() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {memory:.0f} GiB, "
        f"Python {platform.python_version()}"
    )


def filesystem_of(path: Path) -> str:
    """The file system type under `path` (from /proc/mounts), for the record."""
    best, kind = "", "?"
    target = str(path.resolve())
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mount, fstype, *_ = line.split()
        if (target == mount or target.startswith(mount.rstrip("/") + "/")) and len(mount) > len(
            best
        ):
            best, kind = mount, fstype
    return kind


@contextlib.contextmanager
def bench_server(
    work: Path, deployment: Deployment, *, workers: int, **env_extra: str
) -> Iterator[Server]:
    """gunicorn -c deploy/gunicorn.conf.py serving the bench app from `work`."""
    (work / "tmp").mkdir(exist_ok=True)
    # The receipts' real Argon2id cost: what a report costs in production (the tests'
    # helper makes it cheap).
    env = server_env(work / "var", deployment, work / "tmp", full_cost_receipts=True,
                     **env_extra)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(BENCH), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    log_dir = work / "logs"
    try:
        with gunicorn(env, log_dir, app="bench_app:create_bench_app()", workers=workers) as base:
            server = Server(base, base.pid, work / "var", log_dir)
            deadline = time.monotonic() + 30
            while len(server.worker_pids()) < workers and time.monotonic() < deadline:
                time.sleep(0.1)
            yield server
    except BaseException:
        tail = (log_dir / "stderr.log").read_bytes()[-3000:].decode(errors="replace")
        print(f"bench: the server's last words:\n{tail}", file=sys.stderr)
        raise


def count_files(directory: Path, pattern: str) -> int:
    return len(list(directory.glob(pattern))) if directory.is_dir() else 0
