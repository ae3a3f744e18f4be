"""What a person reads for each machine value: field, choice, status and column labels.

Every function returns plain text in the language of the surrounding
`intake.review.i18n.in_language` block (or of the desk's request). Schema
labels come from the intake's catalogue and country names from CLDR; the
review side's own words from its catalogue. A value the schema does not know
(a damaged case's) is returned as it is: callers pass it through their
output's filter like any other value from a report.
"""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from intake import schema
from intake.review import triage

#: Columns the exports add to the schema's fields, with their labels.
EXTRA_COLUMNS = {
    "case_id": _l("Case id"),
    "received_on": _l("Received on"),
    "code": _l("Case code"),
    "status": _l("Status"),
    "tags": _l("Tags"),
    "assignee": _l("Assignee"),
    "damaged": _l("Damaged"),
}


#: The review tools' own words, by key, for the terminal, the exports and the pages.
WORDS = {
    "case": _l("Case"),
    "cases": _l("Cases: %(count)d"),
    "damaged_cases": _l("Damaged cases (counted with the answers that could be read): %(count)d"),
    "by_month": _l("By month"),
    "by_status": _l("By status"),
    "by_country": _l("By country"),
    "by_category": _l("By category"),
    "by_tool": _l("By suspected tool"),
    "by_risk": _l("By risk"),
    "related": _l("Related cases"),
    "notes": _l("Notes"),
    "none": _l("None."),
    "indicators": _l("Indicators"),
    "attachments": _l("Attachments"),
    "attachments_warning": _l(
        "Attachments from a targeted person may be malware. Do not open them with this "
        "machine's usual programs; open documents with a sanitiser such as Dangerzone."
    ),
    # The follow-up channel: what the source sent later, and the replies to them.
    "follow_ups": _l("Sent later by the same source"),
    "follow_up": _l("Received %(day)s"),
    "replies": _l("Replies to the source"),
    "reply_queued": _l("written %(day)s; waits for the next return file"),
    "reply_sent": _l("written %(day)s; sent in a return file on %(sent)s"),
    "can_reply": _l("The source can be answered: intake review reply %(code)s --text-file FILE"),
    "no_way_back": _l("The source cannot be answered: the report came without a receipt."),
}


#: Indicator kinds (`intake.review.indicators.KINDS`) as a person reads them, in a sentence.
INDICATOR_KINDS = {
    "domain": _l("domain"), "url": _l("URL"), "ipv4": _l("IPv4 address"),
    "ipv6": _l("IPv6 address"), "email": _l("e-mail address"), "sha256": "SHA-256",
    "sha1": "SHA-1", "md5": "MD5", "phone": _l("phone number"), "app_id": _l("app id"),
    "file_name": _l("file name"), "unknown": _l("not recognised"),
}


def indicator_kind(kind: str) -> str:
    """The name of an indicator kind; an unknown kind stays itself."""
    label = INDICATOR_KINDS.get(kind)
    return str(label) if label is not None else kind


def word(key: str, **variables: Any) -> str:
    """One of `WORDS` in the current language, with its %(name)s variables filled in."""
    text = str(WORDS[key])
    return text % variables if variables else text


def field_label(name: str) -> str:
    field = schema.FIELDS.get(name)
    if field is not None:
        return str(field.label)
    extra = EXTRA_COLUMNS.get(name)
    return str(extra) if extra is not None else name


def choices(field_name: str) -> tuple[schema.Choice, ...]:
    field = schema.FIELDS[field_name]
    return schema.country_choices() if field.kind == "country" else field.choices


def choice_label(field_name: str, value: str) -> str:
    """The label of one answer; "" stays "" and an unknown value stays itself."""
    if not value:
        return ""
    for choice in choices(field_name):
        if choice.value == value:
            return str(choice.label)
    return value


def status_label(status: str) -> str:
    label = triage.STATUSES.get(status)
    return str(label) if label is not None else status


def yes_no(value: bool) -> str:
    return _("Yes") if value else _("No")


def no_answer() -> str:
    return _("No answer")


def answer_label(field: schema.Field, value: Any) -> str:
    """An answer as a person reads it: labels joined with "; ", Yes/No, text as it is."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return yes_no(value)
    if isinstance(value, list):
        order = {c.value: i for i, c in enumerate(choices(field.name))} if field.choices or (
            field.kind == "country") else {}
        given = sorted(dict.fromkeys(str(v) for v in value), key=lambda v: order.get(v, len(order)))
        return "; ".join(choice_label(field.name, v) for v in given)
    if field.choices or field.kind == "country":
        return choice_label(field.name, str(value))
    return str(value)
