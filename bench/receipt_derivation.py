"""How much one receipt derivation costs on this machine, and what that means.

Usage: python bench/receipt_derivation.py [RUNS]

Derives keys for random receipts with the default Argon2id parameters
(`intake.crypto.receipt.DEFAULT_OPSLIMIT`, `DEFAULT_MEMLIMIT`), one at a
time, and prints the CPU and wall seconds of each (median, minimum,
maximum), the memory one derivation adds to the process, what the rest of
the machine was doing meanwhile, and the arithmetic the design rests on: the
target (0.25 to 0.5 s of CPU), how many derivations per second the machine's
cores can give the follow-up page and new reports, and what a guess costs
someone who holds the database and the secrets file. Prints figures; never
passes or fails.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from intake.crypto import receipt  # noqa: E402
from intake.limits import FOLLOW_UP_DERIVATIONS, REPORT_DERIVATIONS  # noqa: E402

TARGET = (0.25, 0.5)


def machine_busy() -> float:
    """CPU seconds the whole machine has spent, from /proc/stat."""
    with open("/proc/stat") as fh:
        fields = [int(v) for v in fh.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    derivation = receipt.generate_secrets()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu, wall = [], []
    busy_before, own_before, started = machine_busy(), time.process_time(), time.monotonic()
    for _ in range(runs):
        secret = receipt.new_receipt()
        c0, w0 = time.process_time(), time.perf_counter()
        receipt.derive_keys(secret, derivation)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    elapsed = time.monotonic() - started
    others = (machine_busy() - busy_before) - (time.process_time() - own_before)
    rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    median = statistics.median(cpu)
    cores = os.cpu_count() or 1
    print(f"Argon2id opslimit {derivation.opslimit}, memlimit "
          f"{derivation.memlimit // (1024 * 1024)} MiB; {runs} derivations; {cores} cores; "
          f"the rest of the machine used {others / elapsed:.2f} cores meanwhile")
    print(f"CPU per derivation: median {median:.3f} s (min {min(cpu):.3f}, max {max(cpu):.3f}); "
          f"wall: median {statistics.median(wall):.3f} s (min {min(wall):.3f}, "
          f"max {max(wall):.3f}); peak RSS growth {rss_growth:.0f} MiB")
    met = TARGET[0] <= median <= TARGET[1]
    print(f"target {TARGET[0]}-{TARGET[1]} s of CPU: {'met' if met else 'not met'}")
    slots = FOLLOW_UP_DERIVATIONS + REPORT_DERIVATIONS
    print(f"at most {FOLLOW_UP_DERIVATIONS} follow-up and {REPORT_DERIVATIONS} report "
          f"derivations at once ({slots * derivation.memlimit // 2**20} MiB of Argon2id "
          f"memory at most): each pool alone up to "
          f"{min(FOLLOW_UP_DERIVATIONS, cores) / median:.1f} per second, both together "
          f"{min(slots, cores) / median:.1f} per second on {cores} cores")
    guesses = 10**receipt.RECEIPT_DIGITS / 2
    years = guesses * median / cores / (365 * 24 * 3600)
    print(f"an offline guess (database and secrets file in hand) costs one derivation: "
          f"half of the 10^20 receipts take about {years:.1e} years of this machine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
