"""Benchmark: `intake review list` and `stats` over 10,000 cases, with the case store's index.

Builds N case folders (default 10,000) in the layout the importer writes
(report.json with a 2 KB narrative and a few indicators, case.json), indexes
them once, then times, as medians of 5 runs:

  1. the floor this replaces: reading both JSON files of every case, as
     `review list` did before the index (`load_cases`);
  2. opening the store (which reconciles the index with the folders: one
     directory scan and two stats per case) and listing every case;
  3. the same and the counts of `stats`;
  4. a full-text search;
  5. what the reviewers' desk does for the first page of its list: reconcile,
     then the 50 newest cases and the count, in one snapshot, on a store kept
     open (as the desk keeps it), and the group view's grouping;
  6. the whole `intake review list` and `intake review stats` commands, as
     processes (Python's start and imports included), output discarded.

The target (issue 12): listing 10,000 cases takes at most 0.3 s. Prints each
figure, the ratio against the floor, and the machine's load. Usage:
    .venv/bin/python bench/review_list.py [N]
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from intake.review.casestore import load_cases
from intake.review.store import CaseFilter, CaseStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_busy_seconds, print_result  # noqa: E402

TARGET_SECONDS = 0.3
RUNS = 5
COUNTRIES = ("EG", "LB", "IR", "MA", "TN", "SA", "JO", "SY")
NARRATIVE = (
    "وصلتني رسالة نصية تدّعي أنها من شركة الشحن، فيها رابط مختصر لتتبّع طرد لم أكن أنتظره. "
    "On 3 March a message arrived claiming to be from the courier company. "
)


def build(cases_dir: Path, count: int) -> None:
    for i in range(count):
        case_id = f"{i:032x}"
        folder = cases_dir / case_id
        (folder / "attachments").mkdir(parents=True)
        fields = {
            "reporter_role": "self", "consent_use": ["statistics"], "contact_method": "none",
            "categories": ["phishing"] if i % 3 else ["mercenary_spyware", "phishing"],
            "first_noticed": "2026-03", "country": COUNTRIES[i % len(COUNTRIES)],
            "narrative": (NARRATIVE * 12)[:2000], "how_discovered": ["suspicious_message"],
            "target_profile": ["journalist"], "suspected_tool": "pegasus" if i % 5 else "dont_know",
            "risk_now": "elevated" if i % 2 else "immediate_danger",
            "indicators": f"hxxps://track{i % 97}.evil[.]example/x\n+961 3 {i % 1000:03d} 456\n"
                          f"com.evil{i % 13}.spy",
        }
        (folder / "report.json").write_text(json.dumps({
            "schema": "intake-report/v1", "lang": "ar", "fields": fields, "attachments": [],
        }, ensure_ascii=False), encoding="utf-8")
        (folder / "case.json").write_text(json.dumps({
            "case_id": case_id, "received_on": f"2026-{i % 12 + 1:02d}-{i % 28 + 1:02d}",
            "keyring_version": 1, "sha256": "0" * 64,
        }), encoding="utf-8")


def median(work: Callable[[], object]) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def list_all(cases_dir: Path) -> int:
    with CaseStore(cases_dir) as store:
        return len(store.cases())


def stats_all(cases_dir: Path) -> int:
    with CaseStore(cases_dir) as store:
        return store.stats().total


def search(cases_dir: Path) -> int:
    with CaseStore(cases_dir) as store:
        return len(store.cases(CaseFilter(search="الشحن track7")))


def desk_page(store: CaseStore) -> int:
    store.reconcile()
    total, rows = store.page(None, offset=0, limit=50)
    return total + len(rows)


def command(cases_dir: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "intake", "review", *args, "--cases", str(cases_dir)],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory(prefix="review-list-") as tmp:
        cases_dir = Path(tmp) / "cases"
        start = time.perf_counter()
        build(cases_dir, count)
        built = time.perf_counter() - start
        start = time.perf_counter()
        assert list_all(cases_dir) == count  # first open: indexes every case
        indexed = time.perf_counter() - start
        load1 = os.getloadavg()[0]
        busy, started = machine_busy_seconds(), time.monotonic()
        own = sum(os.times()[:4])
        floor = median(lambda: load_cases(cases_dir))
        listing = median(lambda: list_all(cases_dir))
        counting = median(lambda: stats_all(cases_dir))
        searching = median(lambda: search(cases_dir))
        with CaseStore(cases_dir) as store:
            desk_list = median(lambda: desk_page(store))
            desk_groups = median(lambda: store.groups())
        cli_list = median(lambda: command(cases_dir, "list"))
        cli_stats = median(lambda: command(cases_dir, "stats"))
        load2 = os.getloadavg()[0]
        other = (machine_busy_seconds() - busy - (sum(os.times()[:4]) - own)) / (
            time.monotonic() - started)
        db_size = sum(p.stat().st_size for p in cases_dir.glob("cases.db*"))

    print(f"review list/stats over {count} cases ({platform.python_implementation()} "
          f"{platform.python_version()}, {os.cpu_count()} cores, load {load1:.2f} -> {load2:.2f})")
    print(f"  build the folders                      {built:7.2f} s")
    print(f"  first open: index every case           {indexed:7.2f} s "
          f"(database {db_size / 1e6:.1f} MB)")
    print(f"  floor: read both JSON files per case   {floor:7.3f} s   (the old `review list`)")
    print(f"  open + reconcile + list                {listing:7.3f} s   "
          f"{floor / listing:5.1f}x faster")
    print(f"  open + reconcile + stats               {counting:7.3f} s")
    print(f"  open + reconcile + full-text search    {searching:7.3f} s")
    print(f"  desk: reconcile + first page + count   {desk_list:7.3f} s")
    print(f"  desk: group by shared indicator        {desk_groups:7.3f} s")
    print(f"  `intake review list` (process)         {cli_list:7.3f} s")
    print(f"  `intake review stats` (process)        {cli_stats:7.3f} s")
    verdict = "met" if listing <= TARGET_SECONDS else "MISSED"
    print(f"target: listing {count} cases <= {TARGET_SECONDS} s: {verdict} ({listing:.3f} s; "
          f"the command adds Python's start and imports: {cli_list:.3f} s)")
    print(f"other work on the machine meanwhile: {max(0.0, other):.2f} cores")
    print_result(
        "review_list", f"{count} cases listed in {listing:.3f} s ({floor / listing:.1f}x faster "
        f"than reading both JSON files per case, {floor:.2f} s)", f"<= {TARGET_SECONDS} s",
        listing <= TARGET_SECONDS, other_load=max(0.0, other))


if __name__ == "__main__":
    main()
