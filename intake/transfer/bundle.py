"""The export bundle and ack formats (contracts shared with the reviewer's tools).

Bundle: an uncompressed tar, ``manifest.json`` first (``{"format":
"intake-export/v1", "submissions": [{"id", "received_on", "size", "sha256",
"keyring_version"}]}``), then ``submissions/<id>.age``. Ack: ``{"format":
"intake-ack/v1", "submissions": [{"id", "sha256"}]}``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from intake.errors import IntakeError

EXPORT_FORMAT = "intake-export/v1"
ACK_FORMAT = "intake-ack/v1"
_ID = re.compile(r"^[0-9a-f]{32}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
MAX_MANIFEST = 64 * 1024 * 1024


def member_name(submission_id: str) -> str:
    return f"submissions/{submission_id}.age"


def parse_manifest(data: bytes) -> list[dict[str, Any]]:
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise IntakeError(
            "The bundle's manifest is not valid JSON; the bundle is damaged."
        ) from None
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise IntakeError(f"This is not an intake export bundle ({EXPORT_FORMAT}).")
    entries = document.get("submissions")
    if not isinstance(entries, list):
        raise IntakeError("The bundle's manifest lists no submissions.")
    seen = set()
    for entry in entries:
        if not (
            isinstance(entry, dict)
            and _ID.match(str(entry.get("id")))
            and _SHA.match(str(entry.get("sha256")))
            and isinstance(entry.get("size"), int)
            and isinstance(entry.get("keyring_version"), int)
            and isinstance(entry.get("received_on"), str)
        ):
            raise IntakeError("The bundle's manifest has a malformed entry; the bundle is damaged.")
        if entry["id"] in seen:
            raise IntakeError("The bundle's manifest lists a submission twice.")
        seen.add(entry["id"])
    return entries


def parse_ack(data: bytes) -> list[dict[str, str]]:
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise IntakeError(
            "The ack file is not valid JSON; copy it again from the reviewers."
        ) from None
    if not isinstance(document, dict) or document.get("format") != ACK_FORMAT:
        raise IntakeError(f"This is not an intake ack file ({ACK_FORMAT}).")
    entries = document.get("submissions")
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and _ID.match(str(e.get("id"))) and _SHA.match(str(e.get("sha256")))
        for e in entries
    ):
        raise IntakeError("The ack file has a malformed entry; copy it again from the reviewers.")
    return entries
