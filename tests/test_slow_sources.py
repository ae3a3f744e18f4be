"""Slow sources at a small scale: the production stack keeps a new source getting in.

bench/slow_sources.py at CI size: nginx from deploy/nginx.conf in front of one
gunicorn worker with 10 threads, and 16 sources sending 400 KiB reports at
20 KB/s (about 20 s each), half through the form without JavaScript
(plaintext, streamed through to gunicorn, a thread each) and half through the
upload API (ciphertext made with the age tool, which nginx takes whole before
passing it on). 16 slow uploads and 10 threads: only nginx holding the API's
chunks leaves threads for anyone else. While every slow upload is in
progress, a new source loads the form and files a text report every second.

What is checked (no timings): no answer is a 5xx; every one of the new
source's reports is filed while every slow upload is still in progress; then
every slow upload, finished at full speed, is filed exactly once and
decrypts to the report and file its source sent; the blob store holds
nothing else. The full scale (500 sources of 20 MiB) is the benchmark's.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest
from conftest import require_tool

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from helpers import Deployment  # noqa: E402
from slow_sources import (  # noqa: E402
    Pacer,
    Source,
    drive,
    expected_reports,
    file_digest,
    open_blobs,
    pool,
    prepare_ciphertexts,
    production_stack,
)

pytestmark = pytest.mark.slow
KiB = 1024
SOURCES = 16
SIZE = 400 * KiB
RATE = 20_000
THREADS = 10


def test_slow_sources_on_both_paths_leave_room_for_a_new_source_and_all_arrive(tmp_path):
    require_tool("nginx")
    require_tool("age")
    deployment = Deployment(tmp_path / "keys").setup(recipients=2)
    data = pool()
    ciphertexts = prepare_ciphertexts(tmp_path, deployment, SOURCES // 2, SIZE, data)
    sources = []
    for i in range(SOURCES // 2):
        sources.append(Source("nojs", i, SIZE, Pacer(RATE)))
        sources.append(Source("api", i, SIZE, Pacer(RATE), ciphertexts[i],
                              file_digest(data, i, SIZE)))
    log: list[str] = []
    with production_stack(tmp_path, deployment, workers=1, threads=THREADS) as stack:
        result = asyncio.run(drive(stack, sources, data, ramp=2, window=6, complete=True,
                                   say=log.append))

    statuses = [(s.kind, s.index, code) for s in result.sources for code in s.statuses]
    assert [s for s in statuses if s[2] >= 500] == []
    assert [(s.kind, s.index, s.error) for s in result.sources if s.error] == []
    probe = result.probe
    assert [what for what in probe["statuses"] if re.search(r"\b5[0-9][0-9]\b", what)] == []
    # Every report of the new source was answered "filed" (the thank-you page, a receipt)...
    assert probe["sent"] >= 3 and len(probe["latencies"]) == probe["sent"], probe["statuses"]
    # ...while every slow upload was still on its way.
    assert result.in_progress_at_start == result.in_progress_at_end == SOURCES, log

    blobs = sorted((stack.data_dir / "blobs").glob("*.age"))
    assert len(blobs) == SOURCES + probe["sent"]
    seen = open_blobs(stack.data_dir, deployment.identities, tmp_path / "opened")
    expected = expected_reports(result)
    assert {k: v for k, v in seen.items() if k in expected} == expected
    # The rest are the new source's text reports, each once.
    others = [k for k in seen if k not in expected]
    assert len(others) == probe["sent"]
    assert all(k.startswith("slow-source probe ") and seen[k] == 1 for k in others)
    # nginx's temporary files are gone once each chunk was passed on.
    body_temp = tmp_path / "nginx" / "temp" / "body"
    assert not body_temp.exists() or [p for p in body_temp.rglob("*") if p.is_file()] == []
