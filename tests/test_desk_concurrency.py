"""The desk and the command line on one case store, at the same time.

The real `intake review serve` runs on a free loopback port (Werkzeug's threaded
server, a thread per request), and the real `intake review` commands run as
processes of their own next to it, on the same cases folder: what one writes,
the other reads, and writing from both at once loses nothing and breaks no page.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests
from desk_support import code_of, desk_env, running_desk, sign_in, write_case

from intake.review.store import DATABASE

BASE = {
    "reporter_role": "self", "consent_use": ["statistics"], "contact_method": "none",
    "categories": ["mercenary_spyware"], "first_noticed": "2026-03", "country": "LB",
    "how_discovered": ["suspicious_message"], "target_profile": ["journalist"],
    "risk_now": "elevated", "narrative": "قال مُحَمَّد إنّ الرسالة وصلت",
    "indicators": "https://track.evil.example/x",
}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
CODES = re.compile(r'class="ic-code" href="[^"]*/cases/([0-9a-f]{32})"')


def cli(tmp: Path, cases: Path, *args: str, stdin: str | None = None) -> str:
    """`intake review …` as a process of its own; its standard output, exit 0 required."""
    result = subprocess.run(
        [sys.executable, "-m", "intake", "review", *args, "--cases", str(cases)],
        input=stdin, capture_output=True, text=True, timeout=120, env=desk_env(tmp), cwd=tmp,
    )
    assert result.returncode == 0, (args, result.stdout[-500:], result.stderr[-2000:])
    return result.stdout + result.stderr


def csrf(session: requests.Session, url: str) -> str:
    return CSRF.search(session.get(url, timeout=30).text).group(1)


@pytest.fixture
def store(tmp_path):
    cases = tmp_path / "cases"
    cases.mkdir()
    ids = [write_case(cases, BASE, received_on=f"2026-03-{n + 10:02d}") for n in range(4)]
    return tmp_path, cases, ids


def test_what_the_command_line_writes_the_desk_shows_and_the_reverse(store):
    tmp, cases, (first, second, *_rest) = store
    with running_desk(cases, tmp) as desk:
        session = sign_in(desk)
        # The command line writes while the desk runs...
        cli(tmp, cases, "status", code_of(first), "confirmed")
        cli(tmp, cases, "tag", code_of(first), "campaign-x")
        cli(tmp, cases, "assign", first[:10], "Reza")
        cli(tmp, cases, "note", first, "--text-file", "-", "--author", "Reza",
            stdin="Written on the command line.\nSecond line.")
        # ...and the desk's next page shows it.
        page = session.get(f"{desk.root}/en/cases/{first}", timeout=30).text
        assert '<option value="confirmed" selected>' in page
        assert '<bdi class="tag">campaign-x</bdi>' in page
        assert 'name="assignee" value="Reza"' in page
        assert "Written on the command line.\nSecond line." in page
        listed = session.get(f"{desk.root}/en/?tag=campaign-x&status=confirmed", timeout=30)
        assert CODES.findall(listed.text.split("<tbody>")[1]) == [first]

        # The desk writes...
        page_url = f"{desk.root}/en/cases/{second}"
        for action, form in (("status", {"status": "needs_follow_up"}),
                             ("tags", {"tag": "وسم-عربي"}),
                             ("assignee", {"assignee": "Amal"}),
                             ("notes", {"author": "Amal", "text": "Written in the desk."})):
            answer = session.post(f"{page_url}/{action}",
                                  data={"csrf_token": csrf(session, page_url), **form},
                                  timeout=30, allow_redirects=False)
            assert answer.status_code == 303, answer.text[:300]
        # ...and the command line, while the desk still runs, reads it.
        shown = cli(tmp, cases, "show", code_of(second))
        assert "Needs follow-up" in shown and "وسم-عربي" in shown and "Amal" in shown
        assert "Written in the desk." in shown
        listing = cli(tmp, cases, "list", "--status", "needs_follow_up", "--tag", "وسم-عربي",
                      "--assignee", "Amal")
        assert code_of(second) in listing and code_of(first) not in listing
        assert "1 case(s)." in listing


def test_command_line_writes_while_the_desk_serves_lose_nothing(store):
    tmp, cases, ids = store
    target = ids[0]
    problems: list[str] = []
    cli_notes, desk_threads, desk_rounds = 6, 4, 6
    with running_desk(cases, tmp) as desk:
        signed_in = sign_in(desk)

        def desk_worker(number: int) -> None:
            session = requests.Session()
            session.cookies.update(signed_in.cookies)
            page_url = f"{desk.root}/en/cases/{target}"
            try:
                for round_ in range(desk_rounds):
                    for url in (f"{desk.root}/en/", f"{desk.root}/en/?q=محمد",
                                f"{desk.root}/en/groups", page_url):
                        answer = session.get(url, timeout=60)
                        if answer.status_code != 200:
                            problems.append(f"GET {url}: {answer.status_code}")
                    answer = session.post(
                        f"{page_url}/notes",
                        data={"csrf_token": csrf(session, page_url), "author": "Amal",
                              "text": f"desk {number} round {round_}"},
                        timeout=60, allow_redirects=False)
                    if answer.status_code != 303:
                        problems.append(f"POST note: {answer.status_code} {answer.text[:200]}")
                    answer = session.post(
                        f"{page_url}/status",
                        data={"csrf_token": csrf(session, page_url),
                              "status": "in_triage" if round_ % 2 else "needs_follow_up"},
                        timeout=60, allow_redirects=False)
                    if answer.status_code != 303:
                        problems.append(f"POST status: {answer.status_code}")
            except Exception as exc:  # noqa: BLE001 - collected and reported below
                problems.append(repr(exc))

        def command_line() -> None:
            try:
                for n in range(cli_notes):
                    cli(tmp, cases, "note", target, "--text-file", "-", "--author", "Reza",
                        stdin=f"command line {n}")
                    cli(tmp, cases, "tag", target, f"cli-{n % 2}")
                # An import's worth of new cases, indexed by the next command in one
                # transaction while the desk reads and writes.
                for _ in range(150):
                    write_case(cases, BASE, received_on="2026-04-01")
                cli(tmp, cases, "list")
            except Exception as exc:  # noqa: BLE001 - collected and reported below
                problems.append(repr(exc))

        workers = [threading.Thread(target=desk_worker, args=(n,)) for n in range(desk_threads)]
        workers.append(threading.Thread(target=command_line))
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=600)
        assert not any(worker.is_alive() for worker in workers)
        assert problems == []

        # Both sides see the same, whole log and the same cases.
        page = signed_in.get(f"{desk.root}/en/cases/{target}", timeout=30).text
        notes = re.findall(r'<div class="source-text" dir="auto">([^<]+)</div>', page)
        expected = {f"desk {t} round {r}" for t in range(desk_threads)
                    for r in range(desk_rounds)} | {f"command line {n}" for n in range(cli_notes)}
        assert sorted(notes) == sorted(expected)
        shown = cli(tmp, cases, "show", target)
        assert all(text in shown for text in expected)
        assert '<bdi class="tag">cli-0</bdi>' in page and '<bdi class="tag">cli-1</bdi>' in page
        total = len(ids) + 150
        assert f"{total} cases, newest first" in signed_in.get(f"{desk.root}/en/", timeout=30).text
        assert f"{total} case(s)." in cli(tmp, cases, "list")
    with sqlite3.connect(cases / DATABASE) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
