"""How a source's words appear on a desk page: as written, escaped, and unable to act.

`shown(value)` escapes a value for HTML and turns every character that could
act instead of being read into a visible mark such as ``[U+202E]``: bidi
embeddings, overrides and isolates (which could reorder the page around the
value), the bidi marks, and C0/C1 control characters such as ESC (which a
terminal would obey if the text were copied there). Line breaks and tabs stay;
the page keeps them with ``white-space: pre-wrap``. Values that are
identifiers (indicators, addresses, hashes) also show zero-width characters,
which could hide a difference between two look-alike domains; free text keeps
them, because Persian needs ZWNJ between parts of a word.

`FieldView` is one answer of a report as the case page lists it: the label
in the reviewer's language, and the value as the source gave it (choice values
as their labels, free text bounded in length, with a note when it was cut).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape

from intake import schema
from intake.crypto.container import BIDI_CONTROLS, ZERO_WIDTH

#: Characters of a free-text value shown before it is cut (the schema allows far less).
MAX_SHOWN_TEXT = 20_000
#: Indicator lines shown (the schema allows 20,000 characters, so about a thousand lines).
MAX_INDICATOR_LINES = 2000

_LINE_BREAKS = {"\r\n": "\n", "\r": "\n", "\u2028": "\n", "\u2029": "\n", "\x85": "\n"}


def _acts(ch: str, *, identifier: bool) -> bool:
    if ch in ("\n", "\t"):
        return False
    if ch in BIDI_CONTROLS:
        return True
    if identifier and ch in ZERO_WIDTH:
        return True
    return unicodedata.category(ch) in ("Cc", "Cs")


def without_controls(text: str) -> str:
    """`text` without the characters `shown` would mark (for a value echoed into a form)."""
    return "".join(ch for ch in text if not _acts(ch, identifier=False))


def is_day(text: object) -> bool:
    """Whether `text` has the form of an ISO day (what a date field may be given back)."""
    return isinstance(text, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text) is not None


def without_page(query: dict[str, str]) -> dict[str, str]:
    """A list's query without its page (another view or order starts at the first)."""
    return {name: value for name, value in query.items() if name != "page"}


_MARK = Markup('<span class="control-mark">[U+{0}]</span>')


def shown(value: Any, *, identifier: bool = False) -> Markup:
    """`value` as inert HTML: escaped, its acting characters as visible ``[U+XXXX]`` marks."""
    text = str(value)
    for old, new in _LINE_BREAKS.items():
        text = text.replace(old, new)
    parts: list[Markup] = []
    plain: list[str] = []
    for ch in text:
        if _acts(ch, identifier=identifier):
            parts.append(escape("".join(plain)))
            plain = []
            parts.append(_MARK.format(f"{ord(ch):04X}"))
        else:
            plain.append(ch)
    parts.append(escape("".join(plain)))
    return Markup("").join(parts)


@dataclass
class FieldView:
    field: schema.Field
    label: str
    #: "choices" (labels), "text" (free text), "lines" (indicators), "yes_no", "empty"
    kind: str
    items: list[tuple[str, bool]] = field(default_factory=list)  # (text, is a known choice)
    text: str = ""
    total_length: int = 0
    cut: bool = False
    truth: bool = False
    identifier: bool = False


def _choice_labels(f: schema.Field) -> dict[str, str]:
    choices = schema.country_choices() if f.kind == "country" else f.choices
    return {c.value: str(c.label) for c in choices}


def field_view(f: schema.Field, value: Any) -> FieldView:
    """One answer for the case page; never raises, whatever report.json holds."""
    view = FieldView(field=f, label=str(f.label), kind="empty")
    if value is None or value == "" or value == []:
        return view
    if f.kind == "checkbox":
        view.kind, view.truth = "yes_no", value is True
        return view
    if f.kind in schema.CHOICE_KINDS:
        labels = _choice_labels(f)
        values = value if isinstance(value, list) else [value]
        view.kind = "choices"
        view.items = [
            (labels[v], True) if isinstance(v, str) and v in labels else (str(v)[:200], False)
            for v in values[:100]
        ]
        return view
    text = value if isinstance(value, str) else str(value)
    view.identifier = f.direction == "ltr"
    view.total_length = len(text)
    if f.name == "indicators":
        lines = [line.strip() for line in text.replace("\r", "\n").split("\n")]
        lines = [line for line in lines if line]
        view.kind = "lines"
        view.cut = len(lines) > MAX_INDICATOR_LINES
        view.items = [(line[:MAX_SHOWN_TEXT], True) for line in lines[:MAX_INDICATOR_LINES]]
        return view
    view.kind = "text"
    view.cut = len(text) > MAX_SHOWN_TEXT
    view.text = text[:MAX_SHOWN_TEXT]
    return view


def section_views(fields: Any) -> list[tuple[str, list[FieldView]]]:
    """The report's answers by section, in form order, labels in the current language."""
    fields = fields if isinstance(fields, dict) else {}
    sections = []
    for section in schema.SECTIONS:
        views = [field_view(f, fields.get(f.name)) for f in section.fields if f.kind != "files"]
        if views:  # the evidence section holds only the files, listed on their own
            sections.append((str(section.title), views))
    return sections
