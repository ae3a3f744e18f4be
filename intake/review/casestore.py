"""The case folders: one per report on the reviewer's air-gapped machine.

``<cases>/<case-id>/`` holds ``report.json`` (the container's document, with
safe attachment paths), ``attachments/`` and ``case.json`` (what the bundle
said of the submission: its id, the day it arrived, the keyring version, the
ciphertext's sha256). The case id is the submission id. A case appears only
whole: import builds it in a temporary folder beside the others and renames it
into place. ``<cases>/.quarantine/`` keeps blobs that failed to open, for a
human to see. ``<cases>/cases.db`` is the index and the triage data
(`intake.review.store`); the folders stay the decrypted record.

`load_case` never raises for what is inside a folder. A report.json or
case.json that cannot be read, is not JSON, or breaks `intake.schema` (a case
imported by an older version, or edited on disk) gives a *damaged* `Case`:
`problems` says what is wrong, and `fields` and `attachments` hold only the
answers and entries that pass the schema on their own, so that every tool
reading a case can use them without checking again. `raw_fields` keeps
everything, for a human to look at through an output filter.

**One case per source.** A report sent through a source's mailbox carries a
thread (from the bundle's encrypted ``threads.age``): case.json then also
names the ``thread`` and the source's ``reply_to`` recipient, where replies
to the source are encrypted to. What the same source sends later is filed
*inside* that case, as ``<case>/follow-ups/<submission-id>/``, a folder of
the same shape (its own report.json, attachments/ and case.json, whose
``case_id`` is the follow-up's submission id); `Case.follow_ups` reads them,
oldest first, each as a `Case` that is never damaging to its parent.
`filed_ids` lists every submission filed, case or follow-up.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from intake import schema
from intake.limits import MAX_ATTACHMENTS, MAX_REPORT_JSON
from intake.transfer.bundle import REPLY_TO, THREAD

CASE_ID = re.compile(r"[0-9a-f]{32}")
QUARANTINE = ".quarantine"
REPORT_FILE = "report.json"
META_FILE = "case.json"
#: The folder inside a case where its source's later submissions are filed.
FOLLOW_UPS = "follow-ups"
#: Bound on the follow-ups of one case that are read (a source sending more is not a flood).
MAX_FOLLOW_UPS = 1000
#: case.json is four short values; anything larger was not written by the importer.
MAX_META_JSON = 16 * 1024
#: Bounds on an attachment entry's texts (the container allows names up to 255).
MAX_ATTACHMENT_TEXT = 255

_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_ATTACHMENT_PATH = re.compile(r"attachments/[0-9]{2}-[A-Za-z0-9_-][A-Za-z0-9._-]{0,79}")


def case_code(case_id: str) -> str:
    """A short, non-identifying code for documents and STIX names: ``IC-`` and 8 hex digits."""
    return "IC-" + case_id[:8].upper()


@dataclass(frozen=True)
class Case:
    """One case as read from its folder; see the module docstring for `problems`."""

    case_id: str
    received_on: str  # ISO day; "" when case.json does not give a valid one
    keyring_version: int
    sha256: str
    report: dict[str, Any]
    directory: Path
    problems: tuple[str, ...] = field(default=())
    #: The source's mailbox thread and reply recipient; "" for a case without a way back.
    thread: str = ""
    reply_to: str = ""

    @property
    def code(self) -> str:
        return case_code(self.case_id)

    @property
    def damaged(self) -> bool:
        return bool(self.problems)

    @property
    def lang(self) -> str:
        lang = self.report.get("lang")
        return lang if isinstance(lang, str) and lang in schema.REPORT_LANGUAGES else "en"

    @property
    def raw_fields(self) -> Mapping[str, Any]:
        fields = self.report.get("fields")
        return fields if isinstance(fields, dict) else {}

    @functools.cached_property
    def fields(self) -> dict[str, Any]:
        """The answers that pass the schema (all of them, unless the case is damaged)."""
        if not self.problems:
            return dict(self.raw_fields)
        return {name: value for name, value in self.raw_fields.items()
                if _valid_answer(name, value)}

    @property
    def is_follow_up_message(self) -> bool:
        """Whether report.json holds a follow-up message (its one field, the narrative)."""
        return set(self.raw_fields) == {"narrative"}

    @functools.cached_property
    def follow_ups(self) -> list[Case]:
        """What the same source sent later, filed in this case, oldest first."""
        folder = self.directory / FOLLOW_UPS
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return []
        found = [load_case(Path(e.path)) for e in entries[:MAX_FOLLOW_UPS]
                 if CASE_ID.fullmatch(e.name) and e.is_dir(follow_symlinks=False)]
        return sorted(found, key=lambda c: (c.received_on, c.case_id))

    @functools.cached_property
    def attachments(self) -> list[dict[str, Any]]:
        """The attachment entries that are well formed (all of them, unless damaged)."""
        entries = self.report.get("attachments")
        if not isinstance(entries, list):
            return []
        return [entry for entry in entries[:MAX_ATTACHMENTS] if attachment_problem(entry) is None]


def _valid_answer(name: object, value: object) -> bool:
    return not schema.report_problems({"lang": "en", "fields": {name: value}})


def attachment_problem(entry: object) -> str | None:
    """Why an entry of report.json's ``attachments`` is malformed, or None."""
    if not isinstance(entry, dict):
        return "an attachment entry is not an object"
    path, name, kind = entry.get("path"), entry.get("name"), entry.get("type")
    size, sha256 = entry.get("size"), entry.get("sha256")
    if not isinstance(path, str) or not _ATTACHMENT_PATH.fullmatch(path):
        return "an attachment has an unsafe or missing path"
    if not isinstance(name, str) or len(name) > MAX_ATTACHMENT_TEXT:
        return "an attachment has no name or too long a name"
    if not isinstance(kind, str) or len(kind) > MAX_ATTACHMENT_TEXT:
        return "an attachment has no type or too long a type"
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        return "an attachment has no valid size"
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        return "an attachment has no valid sha256"
    return None


def _read_json(path: Path, limit: int) -> tuple[Any, str | None]:
    """The JSON document at `path` (at most `limit` bytes), or None and why not."""
    try:
        # Not through a link: a case folder holds the files import wrote, nothing else.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(limit + 1)
    except FileNotFoundError:
        return None, f"{path.name} is missing"
    except OSError as exc:
        return None, f"{path.name} cannot be read ({exc.strerror})"
    if len(data) > limit:
        return None, f"{path.name} is larger than {limit} bytes"
    try:
        return json.loads(data.decode("utf-8")), None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None, f"{path.name} is not UTF-8 JSON"


def _valid_day(value: object) -> bool:
    if not isinstance(value, str) or not _DAY.fullmatch(value):
        return False
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def load_case(directory: Path) -> Case:
    """The case in `directory`; damaged (never an exception) when its files are not sound."""
    problems: list[str] = []
    case_id = directory.name
    meta, problem = _read_json(directory / META_FILE, MAX_META_JSON)
    if problem:
        problems.append(problem)
    if not isinstance(meta, dict):
        if not problem:
            problems.append(f"{META_FILE} is not an object")
        meta = {}
    elif meta.get("case_id") != case_id:
        problems.append(f"{META_FILE} names another case than its folder")
    received_on = meta.get("received_on")
    if not _valid_day(received_on):
        if meta:
            problems.append(f"{META_FILE} has no valid day of arrival")
        received_on = ""
    keyring_version = meta.get("keyring_version")
    if isinstance(keyring_version, bool) or not isinstance(keyring_version, int):
        if meta:
            problems.append(f"{META_FILE} has no valid keyring version")
        keyring_version = 0
    sha256 = meta.get("sha256")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        if meta:
            problems.append(f"{META_FILE} has no valid sha256")
        sha256 = ""

    thread, reply_to = meta.get("thread", ""), meta.get("reply_to", "")
    if (thread or reply_to) and not (
        isinstance(thread, str) and THREAD.fullmatch(thread)
        and isinstance(reply_to, str) and REPLY_TO.fullmatch(reply_to)
    ):
        problems.append(f"{META_FILE} has no valid thread and reply_to")
        thread, reply_to = "", ""

    report, problem = _read_json(directory / REPORT_FILE, MAX_REPORT_JSON)
    if problem:
        problems.append(problem)
    if not isinstance(report, dict):
        if not problem:
            problems.append(f"{REPORT_FILE} is not an object")
        report = {}
    else:
        problems.extend(schema.report_problems(report))
        entries = report.get("attachments", [])
        if not isinstance(entries, list) or len(entries) > MAX_ATTACHMENTS:
            problems.append(f"{REPORT_FILE} has a malformed or too long attachment list")
        else:
            problems.extend(p for p in map(attachment_problem, entries) if p)
    return Case(
        case_id=case_id,
        received_on=received_on,
        keyring_version=keyring_version,
        sha256=sha256,
        report=report,
        directory=directory,
        problems=tuple(dict.fromkeys(problems)),
        thread=thread,
        reply_to=reply_to,
    )


def case_ids(cases_dir: Path) -> set[str]:
    """The names of the case folders in `cases_dir` (32 lower-case hex digits)."""
    try:
        entries = list(os.scandir(cases_dir))
    except (FileNotFoundError, NotADirectoryError):
        return set()
    return {
        e.name for e in entries if CASE_ID.fullmatch(e.name) and e.is_dir(follow_symlinks=False)
    }


def filed_ids(cases_dir: Path) -> dict[str, Path]:
    """Every submission filed in `cases_dir`: case or follow-up id -> its folder."""
    filed = {case_id: cases_dir / case_id for case_id in case_ids(cases_dir)}
    for case_id in list(filed):
        try:
            entries = list(os.scandir(cases_dir / case_id / FOLLOW_UPS))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if CASE_ID.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
                filed.setdefault(entry.name, Path(entry.path))
    return filed


def load_cases(cases_dir: Path) -> list[Case]:
    """Every case folder, oldest first (by day, then id); damaged ones included."""
    cases = [load_case(cases_dir / case_id) for case_id in case_ids(cases_dir)]
    return sorted(cases, key=lambda c: (c.received_on, c.case_id))
