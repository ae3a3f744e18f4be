"""The WSGI app the benchmarks serve: the production app plus three bench-only endpoints.

    gunicorn -c deploy/gunicorn.conf.py 'bench_app:create_bench_app()'   (bench/ on PYTHONPATH)

The endpoints exist only here, never in `intake:create_app()`:

``POST /bench/baseline``
    What any form handler must do at the least: read the request body and
    store it durably, with no parsing and no cryptography. The raw body goes
    to a temporary file in ``<INTAKE_DATA_DIR>/bench-baseline/``, then flush,
    fsync, rename to ``<random>.bin`` and fsync of the directory (the blob
    store's durability steps). Answers 303 to the thank-you page, as the form does.
``POST /bench/discard``
    The transport floor: reads the body in 1 MiB blocks and throws it away.
``POST /bench/parse``
    Werkzeug's multipart parser over the body, every file part discarded
    unread by the app (how much of the form path is parsing alone).

None of them checks a CSRF token (the production app has no global CSRF
protection: only its form and its API check tokens), so the clients need not
send one; the benchmarks send the no-JavaScript form's very bytes anyway.
"""

from __future__ import annotations

import io
import os
import secrets
from typing import Any

from flask import Flask, abort, redirect, request
from werkzeug.formparser import parse_form_data

from intake import create_app
from intake.fsutil import fsync_dir

BLOCK = 1024 * 1024


class _Discard(io.RawIOBase):
    """A write-only sink that keeps nothing (a file part's stream in /bench/parse)."""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return len(data)

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return 0  # the parser rewinds each file part; there is nothing to rewind


def _discard_factory(*_args: Any, **_kwargs: Any) -> _Discard:
    return _Discard()


def create_bench_app() -> Flask:
    app = create_app()
    baseline_dir = app.config["INTAKE_SETTINGS"].data_dir / "bench-baseline"
    baseline_dir.mkdir(mode=0o700, exist_ok=True)

    @app.post("/bench/baseline")
    def baseline() -> Any:
        expected = request.content_length
        name = secrets.token_hex(16)
        temp = baseline_dir / f".tmp-{name}"
        received = 0
        try:
            with open(temp, "xb") as fh:
                while block := request.stream.read(BLOCK):
                    fh.write(block)
                    received += len(block)
                fh.flush()
                os.fsync(fh.fileno())
            if expected is None or received != expected:
                abort(400)
            os.rename(temp, baseline_dir / f"{name}.bin")
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        fsync_dir(baseline_dir)
        return redirect("/en/thanks", code=303)

    @app.post("/bench/discard")
    def discard() -> Any:
        received = 0
        while block := request.stream.read(BLOCK):
            received += len(block)
        if received != request.content_length:
            abort(400)
        return redirect("/en/thanks", code=303)

    @app.post("/bench/parse")
    def parse() -> Any:
        _, form, files = parse_form_data(
            request.environ,
            stream_factory=_discard_factory,
            max_form_memory_size=request.max_form_memory_size,
        )
        if not form or not files:
            abort(400)
        return redirect("/en/thanks", code=303)

    return app
