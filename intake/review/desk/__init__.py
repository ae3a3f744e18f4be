"""The reviewers' desk: triage cases in a browser on the air-gapped machine.

`intake review serve` runs it (see `server`): a small Flask app on 127.0.0.1
only, entered once through a URL with a one-time token, in the reviewer's own
language. It reads and changes the case store (`intake.review.store`: the
list, filters, search, triage, related cases) and shows every value from a
source as inert text; attachments are never handed to the machine's usual
viewers (`attachments`, `images`). Nothing below the desk imports it, and the web
layer (`intake.web`) never imports the review side.

Importing this package loads nothing: the image re-encoder's child process
runs `image_child.py` as a script, and must not pay for Flask.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

    from intake.review.desk.images import Limits
    from intake.review.store import CaseStore


def create_desk_app(
    cases_dir: Path, *, port: int, image_limits: Limits | None = None,
    overrides: dict[str, Any] | None = None, store: CaseStore | None = None,
) -> Flask:
    """The desk's Flask app for the case store at `cases_dir`, answering at 127.0.0.1:`port`.

    Its one-time sign-in URL is ``app.extensions["desk"].guard.login_url``. It opens
    its own `CaseStore` unless given one (``app.extensions["desk"].store``).
    """
    from intake.review.desk.app import build_desk_app

    return build_desk_app(cases_dir, port=port, image_limits=image_limits, overrides=overrides,
                          store=store)
