"""The HTML report: counts of the cases, with a chart and a table per question.

Counts by month, country, category, suspected tool and target profile, each
as an inline SVG chart (matplotlib) and a table, every word in the chosen
language (the review catalogue for its own words, the intake's for the
schema's labels, CLDR for country names), right to left for Arabic and
Persian. No script, no external asset (a strict CSP says so too). The boundary
filter of this output is Jinja's autoescaping, applied where the page is
written, plus `visible`, which shows bidi and zero-width controls as
``[U+202E]`` rather than obeying them; nothing of the narrative is shown.
`matplotlib` is imported only when a chart is drawn.
"""

from __future__ import annotations

import io
import re
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask_babel import gettext as _
from jinja2 import Environment, select_autoescape
from markupsafe import Markup, escape

from intake import schema
from intake.review import labels
from intake.review.casestore import Case
from intake.review.exports.csv import in_schema_order
from intake.review.i18n import RTL, check_language, direction, in_language
from intake.review.render import visible

#: Charts show the largest answers; the rest are one "All others" bar (the table lists all).
MAX_BARS = 15
#: Chart labels longer than this are cut (the table has them whole).
MAX_CHART_LABEL = 48
#: Months between the first and last report are drawn even when empty, up to this span.
MAX_MONTH_SPAN = 240
#: The schema fields the report counts, in the order it shows them.
COUNTED_FIELDS = ("country", "categories", "suspected_tool", "target_profile")

_MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
_NO_ANSWER = object()


@dataclass(frozen=True)
class Figure:
    """One counted question: its title, a note, the SVG chart and the rows (label, count)."""

    key: str
    title: str
    note: str
    rows: list[tuple[str, int]]
    svg: Markup


_TEMPLATE = """<!doctype html>
<html lang="{{ lang }}" dir="{{ direction }}">
<head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="referrer" content="no-referrer">
<title>{{ title }}</title>
<style>
body { font-family: sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }
figure { margin: 1rem 0; }
/* Matplotlib places and anchors its labels for left-to-right text. */
figure svg { direction: ltr; max-width: 100%; height: auto; }
table { border-collapse: collapse; margin-bottom: 2rem; }
th, td { border: 1px solid #999; padding: 0.2rem 0.6rem; text-align: start; }
td.count { text-align: end; font-variant-numeric: tabular-nums; }
</style>
</head><body>
<h1 dir="auto">{{ title }}</h1>
<p dir="auto">{{ summary }}</p>
{% if damaged %}<p dir="auto">{{ damaged }}</p>{% endif %}
{% for figure in figures %}<section id="{{ figure.key }}">
<h2 dir="auto">{{ figure.title }}</h2>
<figure>{{ figure.svg }}
{% if figure.note %}<figcaption dir="auto">{{ figure.note }}</figcaption>{% endif %}
</figure>
<table><thead><tr><th scope="col">{{ answer }}</th><th scope="col">{{ reports }}</th></tr></thead>
<tbody>
{% for label, count in figure.rows %}<tr><td><bdi>{{ label }}</bdi></td>
<td class="count"><bdi dir="ltr">{{ count }}</bdi></td></tr>
{% endfor %}</tbody></table>
</section>
{% endfor %}</body></html>
"""

_env = Environment(autoescape=select_autoescape(default=True), trim_blocks=True)  # noqa: S701
_template = _env.from_string(_TEMPLATE)


def to_html(cases: Sequence[Case], lang: str = "en") -> str:
    """A self-contained report of the cases' counts, entirely in `lang`."""
    check_language(lang)
    rtl = lang in RTL
    with in_language(lang):
        tallies = [("month", _("Reports received by month"), "", _months(cases))]
        for name in COUNTED_FIELDS:
            field = schema.FIELDS[name]
            note = _("A report can be counted under several answers.") if schema.is_multi(
                field) else ""
            tallies.append((name, str(field.label), note, _tally(cases, field)))
        figures = [
            Figure(key, title, note, rows,
                   _chart(rows, index=i, vertical=key == "month", rtl=rtl, title=title))
            for i, (key, title, note, rows) in enumerate(tallies)
        ]
        days = sorted(visible(case.received_on) for case in cases if case.received_on)
        if days:
            summary = _("Reports: %(count)d, received from %(first)s to %(last)s.",
                        count=len(cases), first=days[0], last=days[-1])
        elif cases:
            summary = _("Reports: %(count)d.", count=len(cases))
        else:
            summary = _("No reports.")
        damaged = sum(1 for case in cases if case.damaged)
        return _template.render(
            lang=lang,
            direction=direction(lang),
            title=_("Incident reports"),
            summary=summary,
            damaged=_("Damaged reports, counted with the answers that could be read: "
                      "%(count)d.", count=damaged) if damaged else "",
            figures=figures,
            answer=_("Answer"),
            reports=_("Reports"),
        )


def _months(cases: Sequence[Case]) -> list[tuple[str, int]]:
    """(YYYY-MM, count), oldest first, empty months included; odd days last, as they are."""
    days = [str(case.received_on) for case in cases]
    counts = Counter(day[:7] if _MONTH.match(day) else visible(day) for day in days)
    months = sorted(m for m in counts if _MONTH.fullmatch(m))
    odd = sorted(m for m in counts if not _MONTH.fullmatch(m))
    if months:
        first, last = (int(m[:4]) * 12 + int(m[5:7]) - 1 for m in (months[0], months[-1]))
        if last - first <= MAX_MONTH_SPAN:
            months = [f"{i // 12:04d}-{i % 12 + 1:02d}" for i in range(first, last + 1)]
    return [(m, counts.get(m, 0)) for m in months + odd]


def _tally(cases: Sequence[Case], field: schema.Field) -> list[tuple[str, int]]:
    """(label, count) for every answer given, largest first, ties in schema order."""
    counts: Counter[Any] = Counter()
    for case in cases:
        value = case.fields.get(field.name)
        if schema.is_multi(field):
            counts.update(in_schema_order(field, value or []))
        elif value in (None, "") or isinstance(value, list | dict):
            counts[_NO_ANSWER] += 1
        else:
            counts[str(value)] += 1
    known = {choice.value: str(choice.label) for choice in labels.choices(field.name)}
    order = {value: index for index, value in enumerate(known)}

    def label(value: Any) -> str:
        if value is _NO_ANSWER:
            return labels.no_answer()
        # A value the schema does not know is shown as it is, made visible.
        return known.get(value) or visible(value)

    ranked = sorted(counts, key=lambda v: (-counts[v], order.get(v, len(order)), str(v)))
    return [(label(value), counts[value]) for value in ranked]


def _chart(
    rows: list[tuple[str, int]], *, index: int, vertical: bool, rtl: bool, title: str,
) -> Markup:
    """A bar chart of `rows` as an inline <svg> element."""
    if not vertical and len(rows) > MAX_BARS:
        rest = sum(count for _label, count in rows[MAX_BARS - 1:])
        rows = [*rows[: MAX_BARS - 1], (_("All others"), rest)]
    labels = [_shorten(label) for label, _count in rows]
    counts = [count for _label, count in rows]
    svg = _draw(labels, counts, vertical=vertical, rtl=rtl, salt=f"intake-figure-{index}")
    # Markup is safe here: matplotlib's SVG writer escapes every text and attribute,
    # and _own_ids escapes the label (the reason bandit's B704 is silenced).
    figure = _own_ids(svg, prefix=f"f{index}-", label=title)
    return Markup(figure)  # nosec B704 # noqa: S704


def _shorten(label: str) -> str:
    return label if len(label) <= MAX_CHART_LABEL else label[: MAX_CHART_LABEL - 1] + "\u2026"


def _draw(labels: list[str], counts: list[int], *, vertical: bool, rtl: bool, salt: str) -> str:
    import matplotlib
    from matplotlib.figure import Figure as MplFigure
    from matplotlib.ticker import MaxNLocator

    settings = {
        # Text stays text: the browser shapes Arabic and Persian, which
        # matplotlib's own glyph paths would draw unjoined and left to right.
        "svg.fonttype": "none",
        # A "$" in a value must not start TeX-like math.
        "text.parse_math": False,
        # Unique, reproducible clip-path and marker ids per chart.
        "svg.hashsalt": salt,
        "font.size": 10,
    }
    with matplotlib.rc_context(settings), warnings.catch_warnings():
        # Glyphs missing from matplotlib's font only affect its layout estimate.
        warnings.simplefilter("ignore", UserWarning)
        if vertical:
            figure = MplFigure(figsize=(8, 3.5), layout="constrained")
            axes = figure.add_subplot()
            bars = axes.bar(range(len(counts)), counts, color="#2b5c8a")
            axes.set_xticks(range(len(labels)), labels, rotation=90 if len(labels) > 12 else 0)
            axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        else:
            figure = MplFigure(figsize=(8, 0.8 + 0.32 * max(len(counts), 1)), layout="constrained")
            axes = figure.add_subplot()
            bars = axes.barh(range(len(counts)), counts, color="#2b5c8a")
            axes.set_yticks(range(len(labels)), labels)
            axes.invert_yaxis()
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
            if rtl:
                axes.invert_xaxis()
                axes.yaxis.tick_right()
        axes.bar_label(bars, padding=2)
        axes.spines[["top", "left" if rtl and not vertical else "right"]].set_visible(False)
        out = io.StringIO()
        figure.savefig(out, format="svg", metadata={"Creator": None, "Date": None,
                                                     "Format": None, "Type": None})
    text = out.getvalue()
    return text[text.index("<svg"):]


_TAG = re.compile(r"<[^>]*>")


def _own_ids(svg: str, prefix: str, label: str) -> str:
    """Prefix the SVG's ids so several charts fit in one page, and label the root.

    Only tags are touched: matplotlib escapes "<" and ">" in text and in
    attribute values, so every "<...>" here is markup, never a value.
    """
    def rewrite(tag: re.Match[str]) -> str:
        text = tag.group()
        text = re.sub(r'(\s)id="', rf'\1id="{prefix}', text)
        text = text.replace("url(#", f"url(#{prefix}").replace('href="#', f'href="#{prefix}')
        return text

    svg = _TAG.sub(rewrite, svg)
    return svg.replace("<svg", f'<svg role="img" aria-label="{escape(label)}"', 1)

