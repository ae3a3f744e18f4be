"""What reviewers add to a case: a status, tags, an assignee and notes.

This module holds the vocabulary and the rules for what a reviewer types;
`intake.review.store` keeps the values. Statuses are machine values (never
translated, never renamed) with labels in the review catalogue. Tags, names
and notes are typed by a person on the air-gapped machine: they are checked
here (printable, bounded) so that nothing a reviewer pastes can carry a
terminal control into a listing or an export.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString

from intake.errors import IntakeError

#: Every case starts here.
NEW = "new"
#: Status value -> label, in the order a case usually moves through them.
STATUSES: dict[str, LazyString] = {
    NEW: _l("New"),
    "in_triage": _l("In triage"),
    "needs_follow_up": _l("Needs follow-up"),
    "confirmed": _l("Confirmed"),
    "not_confirmed": _l("Not confirmed"),
    "closed": _l("Closed"),
}

MAX_TAG = 64
MAX_TAGS_PER_CASE = 50
MAX_NAME = 100
MAX_NOTE = 20_000


class TriageError(IntakeError):
    """A status, tag, name or note that cannot be stored.

    `reason` names the rule that was broken, one of `REASONS`, so that a caller
    speaking another language (the reviewers' desk) can say it in its own words.
    """

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


#: What `TriageError.reason` can be.
REASONS = frozenset({
    "status", "tag_empty", "tag_form", "tag_limit", "name_form", "author_missing",
    "note_empty", "note_long", "note_control",
})


def check_status(status: str) -> str:
    if status not in STATUSES:
        raise TriageError(
            f"There is no status {_shown(status)}; choose one of {', '.join(STATUSES)}.",
            "status",
        )
    return status


def _shown(text: str) -> str:
    return repr(text[:40].encode("ascii", "backslashreplace").decode("ascii"))


#: Format characters a reviewer types on purpose: Persian needs the half-space (ZWNJ)
#: and sometimes the joiner. Every other control, bidi controls included, is refused.
_TYPED_FORMAT_CHARACTERS = frozenset({"\u200c", "\u200d"})
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _printable(text: str, *, newlines: bool = False) -> bool:
    return all(
        (newlines and ch == "\n")
        or ch in _TYPED_FORMAT_CHARACTERS
        or unicodedata.category(ch) not in _REFUSED_CATEGORIES
        for ch in text
    )


def without_refused(text: str, *, newlines: bool = False) -> str:
    """`text` without the characters `clean_tag`, `clean_name` and `clean_note` refuse.

    For a form that gives back what was typed with the refusal: what it shows
    then holds nothing that could act, and passes once the reviewer checks it.
    """
    return "".join(ch for ch in text if _printable(ch, newlines=newlines))


def clean_tag(tag: str) -> str:
    """A tag as stored: NFC, trimmed, one line of printable text, at most `MAX_TAG` long."""
    text = unicodedata.normalize("NFC", tag).strip()
    if not text:
        raise TriageError(
            "A tag cannot be empty; give a word such as 'pegasus-2026'.", "tag_empty"
        )
    if len(text) > MAX_TAG or not _printable(text):
        raise TriageError(
            f"A tag is one line of printable text of at most {MAX_TAG} characters.", "tag_form"
        )
    return text


def clean_name(name: str, *, what: str = "A name") -> str:
    """A reviewer's name as stored (an assignee, a note's author); "" clears an assignee.

    A name holds at least one letter or digit: "-" or "?" names nobody, and
    the desk's filter uses such a value to mean "given to nobody".
    """
    text = unicodedata.normalize("NFC", name).strip()
    if (len(text) > MAX_NAME or not _printable(text)
            or (text and not any(ch.isalnum() for ch in text))):
        raise TriageError(
            f"{what} is one line of printable text of at most {MAX_NAME} characters, with "
            "at least one letter or digit.",
            "name_form",
        )
    return text


def clean_note(text: str) -> str:
    """A note as stored: NFC, no control character but line breaks, at most `MAX_NOTE` long."""
    body = text.replace("\r\n", "\n").expandtabs(4)
    body = unicodedata.normalize("NFC", body).strip()
    if not body:
        raise TriageError("The note is empty; write it in the file and try again.", "note_empty")
    if len(body) > MAX_NOTE:
        raise TriageError(
            f"A note is at most {MAX_NOTE} characters; split it in several.", "note_long"
        )
    if not _printable(body, newlines=True):
        raise TriageError(
            "The note holds a control character (such as an escape or a bidi control); "
            "remove it and try again.",
            "note_control",
        )
    return body


@dataclass(frozen=True)
class Note:
    """One entry of a case's append-only log: who wrote it, on which day, and what."""

    number: int
    case_id: str
    author: str
    day: str  # ISO day, local to the reviewer's machine
    text: str
