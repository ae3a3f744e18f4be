"""report.html: a case as a page a reviewer can open, with every value escaped.

No script, no external asset. Right to left where the report's language is.
Values that are URLs, hashes or e-mails sit in ``<bdi dir="ltr">``; free text
in ``dir="auto"``. Bidi controls are shown as visible marks rather than
obeyed, so a value cannot reorder the page around it.
"""

from __future__ import annotations

import functools
from typing import Any

from jinja2 import Environment, select_autoescape

from intake import schema
from intake.crypto.container import BIDI_CONTROLS, ZERO_WIDTH

RTL = {"ar", "fa"}

_TEMPLATE = """<!doctype html>
<html lang="{{ lang }}" dir="{{ 'rtl' if lang in rtl else 'ltr' }}">
<head><meta charset="utf-8"><title>Case {{ code }}</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'">
</head><body>
<h1>Case {{ code }}</h1>
<p>Received on {{ received_on }} · keyring version {{ keyring_version }}</p>
<p class="warn">Attachments from a targeted person may be malware. Do not open them on this
machine's usual tools; open documents with a sanitiser such as Dangerzone.</p>
{% for title, fields in sections %}<h2>{{ title }}</h2><dl>
{% for f in fields %}<dt>{{ labels[f.name] }}</dt>
{% if f.direction == "ltr" %}<dd dir="ltr" class="ltr">{% else %}<dd dir="auto">{% endif %}
{{- show(f) }}</dd>
{% endfor %}</dl>{% endfor %}
<h2>Attachments</h2><ul>
{% for a in attachments %}<li><bdi dir="ltr" class="ltr">{{ a.path }}</bdi>:
<bdi>{{ visible(a.name) }}</bdi>
({{ a.type }}, {{ a.size }} bytes, sha256 <bdi dir="ltr" class="ltr">{{ a.sha256 }}</bdi>)</li>
{% else %}<li>none</li>{% endfor %}</ul>
</body></html>
"""

_env = Environment(autoescape=select_autoescape(default=True), trim_blocks=True)  # noqa: S701
_template = _env.from_string(_TEMPLATE)


def visible(value: Any) -> str:
    """Text with bidi and zero-width controls made visible (escaped later by Jinja)."""
    text = str(value)
    return "".join(
        f"[U+{ord(ch):04X}]" if ch in BIDI_CONTROLS or ch in ZERO_WIDTH else ch for ch in text
    )


def choice_label(field: schema.Field, value: str) -> str:
    return _choice_labels(field.name).get(value, value)


@functools.cache
def _labels() -> tuple[dict[str, str], list[tuple[str, list[schema.Field]]]]:
    """Field and section labels as plain strings, once per process (they are lazy)."""
    labels = {f.name: str(f.label) for f in schema.FIELDS.values()}
    sections = [(str(s.title), [f for f in s.fields if f.kind != "files"]) for s in schema.SECTIONS]
    return labels, sections


@functools.cache
def _choice_labels(field_name: str) -> dict[str, str]:
    field = schema.FIELDS[field_name]
    choices = schema.country_choices() if field.kind == "country" else field.choices
    return {c.value: str(c.label) for c in choices}


def render_report(
    case_code: str, received_on: str, keyring_version: int, report: dict[str, Any]
) -> str:
    fields = report.get("fields", {})

    def show(field: schema.Field) -> str:
        value = fields.get(field.name, "")
        if isinstance(value, list):
            return "; ".join(visible(choice_label(field, str(v))) for v in value)
        if isinstance(value, bool):
            return "yes" if value else "no"
        if field.choices or field.kind == "country":
            return visible(choice_label(field, str(value)))
        return visible(value)

    return _template.render(
        lang=str(report.get("lang", "en"))[:8],
        rtl=RTL,
        code=case_code,
        received_on=received_on,
        keyring_version=keyring_version,
        sections=_labels()[1],
        labels=_labels()[0],
        show=show,
        visible=visible,
        attachments=report.get("attachments", []),
    )
