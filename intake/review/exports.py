"""The coalition's documents made from the case store: CSV, STIX 2.1 and an HTML report.

- `to_csv`: one row per case, one column per schema field, machine values (never
  labels, never translated), multi-selects joined with "; " in schema order, so
  that the same answers always give the same cell. With ``redact=True`` every
  free-text field is left out, which takes the narrative, the notification
  text, the contact handle, the verification phrase and the indicators with it
  (a phishing link can carry a token that names its target). Cells that a
  spreadsheet would run as a formula get a leading ``'``.
- `to_stix2`: the cases' indicators as a STIX 2.1 bundle that MVT's parser
  loads (the rules are in the schema document): a ``malware`` object named
  after the case code, one single-comparison ``indicator`` per normalised
  value, ``indicates`` relationships. Values MVT would misread are left out
  (`stix2_left_out` says which and why); nothing of the narrative is exported.
- `to_html`: counts by month, country, category, suspected tool and target
  profile, each as an inline SVG chart (matplotlib) and a table. No script, no
  external asset, every value escaped, bidi controls shown as ``[U+202E]``
  rather than obeyed; right to left for Arabic and Persian.

`stix2` and `matplotlib` are imported only by the export that needs them.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
import uuid
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from jinja2 import Environment, select_autoescape
from markupsafe import Markup, escape

from intake import schema
from intake.review.casestore import Case
from intake.review.indicators import Indicator, classify, indicators_of
from intake.review.render import RTL, visible

# -- CSV -----------------------------------------------------------------------------------

#: Field kinds whose answers are typed, not chosen: what ``redact`` leaves out.
FREE_TEXT_KINDS = frozenset({"text", "textarea"})
MULTI_SEPARATOR = "; "
# A cell starting with one of these is a formula to Excel and LibreOffice (OWASP).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_columns(redact: bool = False) -> list[str]:
    """The CSV header: case_id, received_on, then the schema's fields in form order.

    The ``attachments`` column holds the number of attached files.
    """
    fields = [
        name for name, field in schema.FIELDS.items()
        if not (redact and field.kind in FREE_TEXT_KINDS)
    ]
    return ["case_id", "received_on", *fields]


def to_csv(cases: Iterable[Case], out: TextIO, redact: bool = False) -> None:
    """Write one row per case to `out` (open it with ``newline=""``)."""
    columns = csv_columns(redact)
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    for case in cases:
        row = {"case_id": case.case_id, "received_on": case.received_on}
        for name in columns[2:]:
            field = schema.FIELDS[name]
            if field.kind == "files":
                row[name] = str(len(case.attachments))
            else:
                row[name] = csv_value(field, case.fields.get(name))
        writer.writerow({key: _defuse_formula(value) for key, value in row.items()})


def csv_value(field: schema.Field, value: Any) -> str:
    """One answer as a CSV cell: machine values, "yes"/"no", multi-selects joined."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if schema.is_multi(field) or isinstance(value, list | tuple):
        return MULTI_SEPARATOR.join(_in_schema_order(field, value))
    return str(value)


def _in_schema_order(field: schema.Field, value: Any) -> list[str]:
    given = [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]
    given = [v for v in dict.fromkeys(given) if v]
    order = {choice.value: index for index, choice in enumerate(field.choices)}
    # Values the schema does not know (a hand-made report.json) go last, as given.
    return sorted(given, key=lambda v: order.get(v, len(order)))


def _defuse_formula(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


# -- STIX 2.1 ------------------------------------------------------------------------------

#: The MVT pattern path for each kind MVT can match; other kinds are not exported.
STIX_PATHS = {
    "domain": "domain-name:value",
    "url": "url:value",
    "ipv4": "ipv4-addr:value",
    "email": "email-addr:value",
    "sha256": "file:hashes.sha256",
    "sha1": "file:hashes.sha1",
    "md5": "file:hashes.md5",
    "app_id": "app:id",
    "file_name": "file:name",
}
# MVT strips "[]" and splits the pattern on "=": a value with "=" aborts the
# whole load (MVT issue #906), and a quote or bracket ends the value early.
# A backslash would need STIX escaping, which MVT does not undo.
_STIX_FORBIDDEN = ("'", "]", "\\", "=")
# Fixed, so that exporting a case again gives its objects the same ids.
_STIX_NAMESPACE = uuid.UUID("8a3c1f52-33b4-4c1e-9e0e-6f2d1a7c5b90")


def stix_pattern(indicator: Indicator) -> tuple[str | None, str]:
    """The single-comparison STIX pattern for `indicator`, or None and the reason why not.

    A URL with ``=`` is exported as its host (``domain-name`` or ``ipv4-addr``).
    """
    if indicator.kind == "url" and "=" in indicator.value:
        host = urlsplit(indicator.value).hostname or ""
        as_host = classify(host)
        if as_host.kind not in {"domain", "ipv4"}:
            return None, "a URL with '=' whose host MVT cannot match"
        indicator = as_host
    if indicator.kind == "phone":
        return None, "phone numbers have no MVT type; they stay in the case"
    if indicator.kind not in STIX_PATHS:
        return None, f"MVT has no type for {indicator.kind.replace('_', ' ')}"
    if any(ch in indicator.value for ch in _STIX_FORBIDDEN):
        return None, "contains ', ], \\ or =, which MVT would misread"
    return f"[{STIX_PATHS[indicator.kind]}='{indicator.value}']", ""


@dataclass(frozen=True)
class LeftOut:
    """An indicator `to_stix2` did not export, and why."""

    case_code: str
    indicator: Indicator
    reason: str


def to_stix2(cases: Iterable[Case]) -> str:
    """The cases' indicators as a STIX 2.1 bundle (JSON text) that MVT loads."""
    import stix2

    objects, _left_out = _stix_objects(cases)
    bundle = stix2.Bundle(objects=objects) if objects else stix2.Bundle()
    return bundle.serialize(pretty=True) + "\n"


def stix2_left_out(cases: Iterable[Case]) -> list[LeftOut]:
    """What `to_stix2` leaves out of the same cases, so the reviewer can be told."""
    return _stix_objects(cases)[1]


def _stix_id(kind: str, *parts: str) -> str:
    return f"{kind}--{uuid.uuid5(_STIX_NAMESPACE, chr(0).join(parts))}"


def _stix_objects(cases: Iterable[Case]) -> tuple[list[Any], list[LeftOut]]:
    import stix2
    from stix2.exceptions import STIXError

    objects: list[Any] = []
    left_out: list[LeftOut] = []
    for case in cases:
        malware = None
        seen: set[str] = set()
        for indicator in indicators_of(case):
            pattern, reason = stix_pattern(indicator)
            if pattern is None:
                left_out.append(LeftOut(case.code, indicator, reason))
                continue
            if pattern in seen:
                continue
            seen.add(pattern)
            try:
                sdo = stix2.Indicator(
                    id=_stix_id("indicator", case.case_id, pattern),
                    pattern=pattern,
                    pattern_type="stix",
                )
            except STIXError:
                left_out.append(LeftOut(case.code, indicator, "not a valid STIX pattern"))
                continue
            if malware is None:
                # The case code, never a name: MVT shows it to whoever runs the check.
                malware = stix2.Malware(
                    id=_stix_id("malware", case.case_id), name=case.code, is_family=False
                )
                objects.append(malware)
            objects.append(sdo)
            objects.append(stix2.Relationship(
                id=_stix_id("relationship", case.case_id, pattern),
                source_ref=sdo.id,
                relationship_type="indicates",
                target_ref=malware.id,
            ))
    return objects, left_out


# -- HTML report ---------------------------------------------------------------------------

TRANSLATIONS = Path(schema.__file__).resolve().parent / "translations"
#: Charts show the largest answers; the rest are one "All others" bar (the table lists all).
MAX_BARS = 15
#: Chart labels longer than this are cut (the table has them whole).
MAX_CHART_LABEL = 48
#: Months between the first and last report are drawn even when empty, up to this span.
MAX_MONTH_SPAN = 240
#: The schema fields the report counts, in the order it shows them.
COUNTED_FIELDS = ("country", "categories", "suspected_tool", "target_profile")

#: The report's own words. English for now: they are not in the catalogues yet, and
#: tests/test_i18n.py wants every gettext string translated in all of them.
#: To translate, wrap each in gettext and add it to messages.pot and the catalogues.
REPORT_TEXT = {
    "title": "Incident reports",
    "summary": "Reports: {count}, received from {first} to {last}.",
    "empty": "No reports.",
    "by_month": "Reports received by month",
    "several": "A report can be counted under several answers.",
    "answer": "Answer",
    "reports": "Reports",
    "no_answer": "No answer",
    "all_others": "All others",
}

_MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
_NO_ANSWER = object()


def report_languages() -> frozenset[str]:
    """The languages `to_html` can write: English and every compiled catalogue."""
    return frozenset({"en"}) | {
        p.name for p in TRANSLATIONS.iterdir() if (p / "LC_MESSAGES" / "messages.mo").is_file()
    }


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
    """A self-contained report of the cases' counts, its schema labels in `lang`."""
    if lang not in report_languages():
        choices = ", ".join(sorted(report_languages()))
        raise ValueError(f"There is no report in {lang!r}; choose one of {choices}.")
    rtl = lang in RTL
    with _in_language(lang):
        tallies = [("month", REPORT_TEXT["by_month"], "", _months(cases))]
        for name in COUNTED_FIELDS:
            field = schema.FIELDS[name]
            note = REPORT_TEXT["several"] if schema.is_multi(field) else ""
            tallies.append((name, str(field.label), note, _tally(cases, field)))
    figures = [
        Figure(key, title, note, rows,
               _chart(rows, index=i, vertical=key == "month", rtl=rtl, title=title))
        for i, (key, title, note, rows) in enumerate(tallies)
    ]
    days = sorted(visible(case.received_on) for case in cases)
    summary = REPORT_TEXT["summary"].format(
        count=len(cases), first=days[0], last=days[-1]
    ) if days else REPORT_TEXT["empty"]
    return _template.render(
        lang=lang,
        direction="rtl" if rtl else "ltr",
        title=REPORT_TEXT["title"],
        summary=summary,
        figures=figures,
        answer=REPORT_TEXT["answer"],
        reports=REPORT_TEXT["reports"],
    )


@contextlib.contextmanager
def _in_language(lang: str) -> Iterator[None]:
    """Lazy schema strings and country names resolve in `lang` inside this block.

    They read the locale from a Flask request context; a throwaway application
    with Babel gives them one. Nothing is served.
    """
    from flask import Flask
    from flask_babel import Babel

    app = Flask(__name__)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS)
    Babel(app, locale_selector=lambda: lang)
    with app.test_request_context():
        yield


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
            counts.update(_in_schema_order(field, value or []))
        elif value in (None, "") or isinstance(value, list | dict):
            counts[_NO_ANSWER] += 1
        else:
            counts[str(value)] += 1
    labels = _choice_labels(field)
    order = {value: index for index, value in enumerate(labels)}

    def label(value: Any) -> str:
        if value is _NO_ANSWER:
            return REPORT_TEXT["no_answer"]
        # A value the schema does not know is shown as it is, made visible.
        return labels.get(value) or visible(value)

    ranked = sorted(counts, key=lambda v: (-counts[v], order.get(v, len(order)), str(v)))
    return [(label(value), counts[value]) for value in ranked]


def _choice_labels(field: schema.Field) -> dict[str, str]:
    choices = schema.country_choices() if field.kind == "country" else field.choices
    return {choice.value: str(choice.label) for choice in choices}


def _chart(
    rows: list[tuple[str, int]], *, index: int, vertical: bool, rtl: bool, title: str,
) -> Markup:
    """A bar chart of `rows` as an inline <svg> element."""
    if not vertical and len(rows) > MAX_BARS:
        rest = sum(count for _label, count in rows[MAX_BARS - 1:])
        rows = [*rows[: MAX_BARS - 1], (REPORT_TEXT["all_others"], rest)]
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

