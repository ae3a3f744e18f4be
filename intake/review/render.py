"""report.html: one case as a page a reviewer can open offline, made on demand.

`render_case` writes the page in the reviewer's language (labels from the
catalogues), whatever language the source wrote in: the page's direction
follows the reviewer's language, and every value the source wrote carries
``dir="auto"`` (addresses, hashes and indicators ``dir="ltr"``), so that each
reads the way it was written. Line breaks are kept. The case code is the
heading; indicators are a list; attachments show their size, SHA-256 and the
type the source's browser declared (never opened here).

The boundary filter of this output is Jinja's autoescaping, applied where the
page is written, plus `visible`, which shows bidi and zero-width controls as
``[U+202E]`` marks rather than obeying them, so a value cannot reorder the
page around it. No script, no external asset; the Content-Security-Policy
allows nothing but the page's own inline style, by its hash.
"""

from __future__ import annotations

import base64
import hashlib
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from flask_babel import gettext as _
from jinja2 import Environment, select_autoescape

from intake import schema
from intake.crypto.container import BIDI_CONTROLS, ZERO_WIDTH
from intake.review import labels
from intake.review.casestore import Case
from intake.review.i18n import RTL, check_language, direction, in_language
from intake.review.indicators import classify

if TYPE_CHECKING:
    from intake.review.store import Relation, Triage
    from intake.review.triage import Note

__all__ = ["RTL", "render_case", "visible"]

_STYLE = """
body { font-family: system-ui, sans-serif; line-height: 1.5; max-width: 52rem;
       margin: 1.5rem auto; padding: 0 1rem; color: #1d1d1f; background: #fff; }
header { border-bottom: 3px solid #2b5c8a; margin-bottom: 1rem; }
h1 { font-size: 2rem; margin: 0 0 0.25rem; letter-spacing: 0.03em; }
h1 bdi { font-family: ui-monospace, monospace; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ccc; }
.meta { color: #555; margin: 0 0 0.75rem; }
.warn, .damaged { border-inline-start: 6px solid #b3261e; background: #fdecea;
                  padding: 0.5rem 0.75rem; }
dl { display: grid; grid-template-columns: minmax(10rem, 16rem) 1fr; gap: 0.35rem 1rem; }
dt { font-weight: 600; }
dd { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; }
.ltr, code { font-family: ui-monospace, monospace; }
ul.indicators li, ul.attachments li { margin-bottom: 0.4rem; overflow-wrap: anywhere; }
.kind { color: #555; font-size: 0.9em; }
.note { border: 1px solid #ddd; padding: 0.5rem 0.75rem; margin-bottom: 0.5rem; }
.note p { white-space: pre-wrap; margin: 0.25rem 0 0; }
@media print { .warn { border: 1px solid #000; } }
"""
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
#: Nothing loads, nothing runs, nothing submits; only the inline style above applies.
CSP = (f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; base-uri 'none'; "
       "form-action 'none'")

_TEMPLATE = """<!doctype html>
<html lang="{{ lang }}" dir="{{ direction }}">
<head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<meta name="referrer" content="no-referrer">
<title>{{ t.case }} {{ code }}</title>
<style>@STYLE@</style>
</head><body>
<header>
<h1>{{ t.case }} <bdi dir="ltr">{{ code }}</bdi></h1>
<p class="meta">{{ t.received }} <bdi dir="ltr">{{ received_on or "-" }}</bdi> ·
{{ t.keyring }} <bdi dir="ltr">{{ keyring_version }}</bdi> ·
{{ t.language }} <bdi dir="ltr">{{ source_lang }}</bdi> ·
<bdi dir="ltr" class="ltr">{{ case_id }}</bdi></p>
{% if triage %}<p class="meta">{{ t.status }}: {{ triage.status }} ·
{{ t.assignee }}: <bdi>{{ triage.assignee or "-" }}</bdi> ·
{{ t.tags }}: {% for tag in triage.tags %}<bdi>{{ tag }}</bdi>
{%- if not loop.last %}, {% endif %}{% else %}-{% endfor %}</p>{% endif %}
</header>
{% if problems %}<section class="damaged"><h2>{{ t.damaged }}</h2><ul>
{% for problem in problems %}<li dir="auto">{{ problem }}</li>
{% endfor %}</ul></section>{% endif %}
{% for title, rows in sections %}<section><h2>{{ title }}</h2><dl>
{% for label, value, ltr in rows %}<dt>{{ label }}</dt>
<dd dir="{{ 'ltr' if ltr else 'auto' }}"{% if ltr %} class="ltr"{% endif %}>{{ value }}</dd>
{% endfor %}</dl></section>
{% endfor %}
<section><h2>{{ t.indicators }}</h2>
{% if indicators %}<ul class="indicators">
{% for typed, kind in indicators %}<li><bdi dir="ltr" class="ltr">{{ typed }}</bdi>
<span class="kind">({{ kind }})</span></li>
{% endfor %}</ul>{% else %}<p>{{ t.none }}</p>{% endif %}
</section>
<section><h2>{{ t.attachments }}</h2>
{% if attachments %}<p class="warn">{{ t.warning }}</p>
<ul class="attachments">
{% for a in attachments %}<li><bdi dir="auto">{{ a.name }}</bdi><br>
<span class="kind">{{ t.file }}</span> <bdi dir="ltr" class="ltr">{{ a.path }}</bdi> ·
<span class="kind">{{ t.size }}</span> <bdi dir="ltr">{{ a.size }}</bdi> ·
<span class="kind">{{ t.declared }}</span> <bdi dir="ltr" class="ltr">{{ a.type }}</bdi><br>
<span class="kind">SHA-256</span> <bdi dir="ltr" class="ltr">{{ a.sha256 }}</bdi></li>
{% endfor %}</ul>{% else %}<p>{{ t.none }}</p>{% endif %}
</section>
{% if related %}<section><h2>{{ t.related }}</h2><ul>
{% for r in related %}<li><bdi dir="ltr" class="ltr">{{ r.code }}</bdi> ({{ r.received_on }}):
{% for i in r.shared %}<bdi dir="ltr" class="ltr">{{ i }}</bdi>
{%- if not loop.last %}, {% endif %}{% endfor %}</li>
{% endfor %}</ul></section>{% endif %}
{% if notes %}<section><h2>{{ t.notes }}</h2>
{% for n in notes %}<div class="note"><strong><bdi>{{ n.author }}</bdi></strong> ·
<bdi dir="ltr">{{ n.day }}</bdi>
<p dir="auto">{{ n.text }}</p></div>
{% endfor %}</section>{% endif %}
</body></html>
"""

_env = Environment(autoescape=select_autoescape(default=True), trim_blocks=True)  # noqa: S701
# The style goes into the template's source, not through a variable: it is ours, and
# the CSP names its hash, so it must reach the page byte for byte.
_template = _env.from_string(_TEMPLATE.replace("@STYLE@", _STYLE))


#: Shown as marks: controls (a carriage return would become a line break, an escape
#: is invisible), format characters (bidi controls, zero-width characters), line and
#: paragraph separators, private-use and unassigned code points.
_MARKED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
#: Except the joiners Persian and Arabic writing needs (the half-space in می‌خواهم):
#: they join or part two letters and reorder nothing.
_JOINERS = frozenset({"\u200c", "\u200d"})


def visible(value: Any) -> str:
    """Text with every control but line feeds and tabs shown as ``[U+XXXX]`` (escaped
    later by Jinja), so that nothing hidden or reordering reaches the page."""
    text = str(value)
    return "".join(
        ch if ch in _JOINERS or ch in "\n\t"
        else f"[U+{ord(ch):04X}]"
        if ch in BIDI_CONTROLS or ch in ZERO_WIDTH or unicodedata.category(ch) in _MARKED_CATEGORIES
        else ch
        for ch in text
    )


def _sections(case: Case) -> list[tuple[str, list[tuple[str, str, bool]]]]:
    fields = case.fields
    sections = []
    for section in schema.SECTIONS:
        rows = []
        for field in section.fields:
            if field.kind == "files" or field.name == "indicators":
                continue
            value = labels.answer_label(field, fields.get(field.name))
            rows.append((str(field.label), visible(value), field.direction == "ltr"))
        if rows:  # the indicators and the files have sections of their own below
            sections.append((str(section.title), rows))
    return sections


def render_case(
    case: Case,
    *,
    lang: str = "en",
    triage: Triage | None = None,
    related: Sequence[Relation] = (),
    notes: Sequence[Note] = (),
) -> str:
    """The case as a self-contained HTML page, its labels in `lang` (see the module doc)."""
    check_language(lang)
    with in_language(lang):
        raw = case.fields.get("indicators") or ""
        typed = [line.strip() for line in str(raw).splitlines() if line.strip()]
        texts = {
            "case": _("Case"), "received": _("Received on"), "keyring": _("keyring version"),
            "language": _("written in"), "status": _("Status"), "assignee": _("Assignee"),
            "tags": _("Tags"), "damaged": _("This case is damaged: these parts of its files "
                                             "break the form's rules and are not shown"),
            "indicators": _("Indicators"), "attachments": _("Attachments"), "none": _("None."),
            "warning": _("Attachments from a targeted person may be malware. Do not open them "
                         "with this machine's usual programs; open documents with a sanitiser "
                         "such as Dangerzone."),
            "file": _("File"), "size": _("Size in bytes"), "declared": _("Declared type"),
            "related": _("Related cases"), "notes": _("Notes"),
        }
        return _template.render(
            lang=lang,
            direction=direction(lang),
            csp=CSP,
            t=texts,
            code=case.code,
            case_id=case.case_id,
            received_on=case.received_on,
            keyring_version=case.keyring_version,
            source_lang=case.lang,
            triage=_triage_view(triage),
            problems=[visible(p) for p in case.problems],
            sections=_sections(case),
            indicators=[
                (visible(line), labels.indicator_kind(classify(line).kind)) for line in typed
            ],
            attachments=[
                {"name": visible(a["name"]), "path": a["path"], "size": a["size"],
                 "type": visible(a["type"]), "sha256": a["sha256"]}
                for a in case.attachments
            ],
            related=[
                {"code": r.code, "received_on": r.received_on,
                 "shared": [f"{labels.indicator_kind(i.kind)} {visible(i.value)}"
                            for i in r.shared]}
                for r in related
            ],
            notes=notes,
        )


def _triage_view(triage: Triage | None) -> dict[str, Any] | None:
    if triage is None:
        return None
    return {"status": labels.status_label(triage.status), "assignee": triage.assignee,
            "tags": triage.tags}
