"""The case store: one folder per report on the reviewer's air-gapped machine.

``<cases>/<case-id>/`` holds ``report.json`` (the container's document, with
safe attachment paths), ``attachments/``, ``report.html`` (every value
escaped) and ``case.json`` (what the bundle said of the submission: its id,
the day it arrived, the keyring version, the ciphertext's sha256). The case
id is the submission id. A case appears only whole: import builds it in a
temporary folder beside the others and renames it into place.
``<cases>/.quarantine/`` keeps blobs that failed to open, for a human to see.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CASE_ID = re.compile(r"^[0-9a-f]{32}$")
QUARANTINE = ".quarantine"


@dataclass(frozen=True)
class Case:
    case_id: str
    received_on: str  # ISO day
    keyring_version: int
    sha256: str
    report: dict[str, Any]
    directory: Path

    @property
    def code(self) -> str:
        """A short, non-identifying code for documents and STIX names."""
        return "IC-" + self.case_id[:8].upper()

    @property
    def fields(self) -> dict[str, Any]:
        return self.report.get("fields", {})

    @property
    def attachments(self) -> list[dict[str, Any]]:
        return self.report.get("attachments", [])


def load_case(directory: Path) -> Case:
    meta = json.loads((directory / "case.json").read_text(encoding="utf-8"))
    report = json.loads((directory / "report.json").read_text(encoding="utf-8"))
    return Case(
        case_id=meta["case_id"],
        received_on=meta["received_on"],
        keyring_version=int(meta["keyring_version"]),
        sha256=meta["sha256"],
        report=report,
        directory=directory,
    )


def case_ids(cases_dir: Path) -> set[str]:
    if not cases_dir.is_dir():
        return set()
    return {p.name for p in cases_dir.iterdir() if CASE_ID.match(p.name) and p.is_dir()}


def load_cases(cases_dir: Path) -> list[Case]:
    """Every complete case, oldest first (by day, then id)."""
    cases = [load_case(cases_dir / case_id) for case_id in case_ids(cases_dir)]
    return sorted(cases, key=lambda c: (c.received_on, c.case_id))
