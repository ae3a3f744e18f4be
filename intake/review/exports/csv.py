"""The cases as CSV for spreadsheets, and the codebook that explains its codes.

`to_csv` writes one row per case: ``case_id``, ``received_on``, one column per
schema field in form order (``attachments`` holds the number of files), then
``code``, ``status``, ``tags``, ``assignee`` and ``damaged``. By default the
header and the answers are labels in the chosen language; ``codes=True``
keeps the machine values (field names, choice values, "yes"/"no"), for
scripts. Multi-selects are joined with "; " in schema order. ``redact=True``
leaves out every free-text field (the narrative, the notification text, the
contact handle, the verification phrase and the indicators: a phishing link
can carry a token that names its target).

The boundary filter for spreadsheets lives here and is applied to every cell
of every CSV this module writes (`defuse`): a spreadsheet runs a cell that
starts with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return before
one) as a formula, and a spreadsheet in a locale whose separator is ``;``
(French, Arabic) splits ``see below;=HYPERLINK(…)`` into a second cell that
does. So a ``'`` is put before such a character at the start of the cell and
after every ``,`` ``;`` tab, CR or LF inside it. Every field is quoted, and
the file starts with a UTF-8 byte order mark so that Excel reads Arabic and
Persian as UTF-8.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TextIO

from intake import schema
from intake.review import labels, triage
from intake.review.casestore import Case

if TYPE_CHECKING:
    from intake.review.store import Triage

#: Field kinds whose answers are typed, not chosen: what ``redact`` leaves out.
FREE_TEXT_KINDS = frozenset({"text", "textarea"})
MULTI_SEPARATOR = "; "
BOM = "\ufeff"
#: Columns after the schema's fields: the case code and the reviewers' triage.
TRAILING_COLUMNS = ("code", "status", "tags", "assignee", "damaged")

# Where a spreadsheet may start a cell: the cell's start, or after a separator or
# line break inside it (any locale's). Quotes and spaces a parser may drop are skipped.
_CELL_STARTS = re.compile(r'(^|[,;\t\r\n])([ "]*)(?=[=+\-@\t\r])')


def defuse(text: str) -> str:
    """`text` with no place a spreadsheet could start a formula (see the module doc)."""
    return _CELL_STARTS.sub(r"\1\2'", text)


class _Writer:
    """A csv writer that quotes every field and defuses every cell."""

    def __init__(self, out: TextIO):
        out.write(BOM)
        self._writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n")

    def row(self, cells: Iterable[str]) -> None:
        self._writer.writerow([defuse(cell) for cell in cells])


def csv_columns(redact: bool = False) -> list[str]:
    """The machine names of the columns, in order."""
    fields = [
        name for name, field in schema.FIELDS.items()
        if not (redact and field.kind in FREE_TEXT_KINDS)
    ]
    return ["case_id", "received_on", *fields, *TRAILING_COLUMNS]


def to_csv(
    cases: Iterable[Case],
    out: TextIO,
    *,
    redact: bool = False,
    codes: bool = False,
    triage_of: Mapping[str, Triage] | None = None,
) -> None:
    """Write one row per case to `out` (open it with ``newline=""``).

    Labels are in the language of the surrounding `intake.review.i18n.in_language`
    block. `triage_of` maps case ids to their triage (empty columns without it).
    """
    columns = csv_columns(redact)
    writer = _Writer(out)
    writer.row(columns if codes else [labels.field_label(c) for c in columns])
    for case in cases:
        writer.row(_cells(case, columns, codes, (triage_of or {}).get(case.case_id)))


def _cells(case: Case, columns: list[str], codes: bool, triaged: Triage | None) -> list[str]:
    cells = []
    for name in columns:
        if name == "case_id":
            cells.append(case.case_id)
        elif name == "received_on":
            cells.append(case.received_on)
        elif name == "code":
            cells.append(case.code)
        elif name == "status":
            status = triaged.status if triaged else ""
            cells.append(status if codes else labels.status_label(status))
        elif name == "tags":
            cells.append(MULTI_SEPARATOR.join(triaged.tags) if triaged else "")
        elif name == "assignee":
            cells.append(triaged.assignee if triaged else "")
        elif name == "damaged":
            cells.append(_yes_no(case.damaged, codes))
        else:
            field = schema.FIELDS[name]
            if field.kind == "files":
                cells.append(str(len(case.attachments)))
            elif codes:
                cells.append(csv_value(field, case.fields.get(name)))
            else:
                cells.append(labels.answer_label(field, case.fields.get(name)))
    return cells


def _yes_no(value: bool, codes: bool) -> str:
    if codes:
        return "yes" if value else "no"
    return labels.yes_no(value)


def csv_value(field: schema.Field, value: Any) -> str:
    """One answer as a machine-value cell: choice values, "yes"/"no", multi-selects joined."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if schema.is_multi(field) or isinstance(value, list | tuple):
        return MULTI_SEPARATOR.join(in_schema_order(field, value))
    return str(value)


def in_schema_order(field: schema.Field, value: Any) -> list[str]:
    given = [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]
    given = [v for v in dict.fromkeys(given) if v]
    order = {choice.value: index for index, choice in enumerate(field.choices)}
    return sorted(given, key=lambda v: order.get(v, len(order)))


def write_codebook(out: TextIO) -> None:
    """The codebook: for each column, its label, and for each code it can hold, the label.

    Columns ``column``, ``code``, ``label``; a row with an empty code gives the
    column's own label. Labels in the surrounding language.
    """
    writer = _Writer(out)
    writer.row(["column", "code", "label"])
    for column in csv_columns():
        writer.row([column, "", labels.field_label(column)])
        if column == "status":
            for status in triage.STATUSES:
                writer.row([column, status, labels.status_label(status)])
        elif column == "damaged":
            for flag in (True, False):
                writer.row([column, _yes_no(flag, True), labels.yes_no(flag)])
        elif column in schema.FIELDS:
            field = schema.FIELDS[column]
            if field.kind == "checkbox":
                for flag in (True, False):
                    writer.row([column, _yes_no(flag, True), labels.yes_no(flag)])
            elif field.choices or field.kind == "country":
                for choice in labels.choices(column):
                    writer.row([column, choice.value, str(choice.label)])
