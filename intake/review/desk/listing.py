"""The list and group pages' questions: filters from the query string, pages, refusals.

`read_query` turns the query string of ``/<lang>/`` and ``/<lang>/groups``
into an `intake.review.store.CaseFilter`, the values to keep in the form and
in every link (`ListQuery.chosen`), and a page number. The case store checks
the values when it lists; what it refuses (a `FilterError`, which names the
filter) and what this module refuses itself (a page that is not a number, a
name no case is given to) becomes `refusal`: one sentence in the reviewer's
language that lists the valid values, shown above the form with a 400,
never a 500.

The form offers only valid values (statuses, the form's answers, the tags,
names and countries in use), so a refusal comes from an edited address.
Values arrive bounded (`MAX_VALUE`); what the page shows of them goes through
`display.shown` like any other text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from flask_babel import gettext as _
from markupsafe import Markup, escape

from intake import schema
from intake.review import labels, triage
from intake.review.desk.display import shown, without_controls
from intake.review.store import CaseFilter, CaseStore, FilterError

#: Cases on one page of the list, groups on one page of the group view.
PAGE_SIZE = 50
GROUPS_PAGE_SIZE = 25
#: Bounds on what one group and one case page list (the rest is a link away).
GROUP_MEMBERS_SHOWN = 30
GROUP_INDICATORS_SHOWN = 20
RELATED_SHOWN = 100
#: The assignee filter's value for "given to nobody": no name is only a dash
#: (`intake.review.triage.clean_name` wants a letter or a digit).
NOBODY = "-"
#: Longer query values are cut before anything reads them.
MAX_VALUE = 500
MAX_PAGE = 1_000_000
#: Query parameter -> `CaseFilter` field, in the order the form shows them.
PARAMETERS = {
    "q": "search", "status": "status", "tag": "tag", "category": "category",
    "country": "country", "risk": "risk", "tool": "tool", "assignee": "assignee",
    "since": "since", "until": "until", "indicator": "indicator",
}
#: `CaseFilter` field -> the query parameter that sets it.
_PARAMETER_OF = {name: parameter for parameter, name in PARAMETERS.items()}
#: Filters on the schema's answers: `CaseFilter` field -> schema field.
SCHEMA_FILTERS = {"category": "categories", "risk": "risk_now", "tool": "suspected_tool"}


class Refused(Exception):
    """A query value the list cannot use; `sentence` says why, in the reviewer's language."""

    def __init__(self, sentence: Markup, parameter: str):
        super().__init__(sentence)
        self.sentence = sentence
        self.parameter = parameter


@dataclass
class ListQuery:
    filters: CaseFilter
    #: The query parameters given (non-empty), to keep in the form and in every link.
    chosen: dict[str, str] = field(default_factory=dict)
    page: int = 1

    @property
    def filtered(self) -> bool:
        return any(name != "page" for name in self.chosen)


def read_query(args: Mapping[str, str]) -> ListQuery:
    """The filters and the page of a query string; `Refused` for a page that is not one."""
    chosen: dict[str, str] = {}
    values: dict[str, str] = {}
    for parameter, name in PARAMETERS.items():
        # No filter value can hold a control (the store's rules refuse them in tags and
        # names, and search folding drops them), and what is given back must not act.
        value = without_controls(str(args.get(parameter, ""))[:MAX_VALUE])
        if value.strip():
            chosen[parameter] = value
            values[name] = value
    if values.get("assignee") == NOBODY:
        values["assignee"] = ""
    page_text = str(args.get("page", "1"))[:20]
    # A page past the last shows the last; MAX_PAGE only keeps the offset an SQLite integer.
    page = min(int(page_text), MAX_PAGE) if page_text.isascii() and page_text.isdigit() else 0
    if page < 1:
        raise Refused(
            _sentence(_("“%(value)s” is not a page number; pages are numbered from 1."),
                      value=page_text),
            "page",
        )
    if page > 1:
        chosen["page"] = str(page)
    return ListQuery(CaseFilter(**values), chosen, page)


def check_assignee(query: ListQuery, store: CaseStore) -> None:
    """Refuse a name no case is given to, as the store refuses a tag no case has."""
    name = query.filters.assignee
    if name and name not in store.assignees():
        raise FilterError(f"No case is given to {name[:40]!a}.", "assignee")


def refusal(error: FilterError, query: ListQuery, store: CaseStore) -> Refused:
    """The store's refusal of a filter, said in the reviewer's language with the valid values."""
    option = error.option
    parameter = _PARAMETER_OF.get(option, option)
    value = query.chosen.get(parameter, "")[:60]
    if option == "status":
        sentence = _sentence(_("There is no status “%(value)s”. Choose one of: %(choices)s."),
                             value=value,
                             choices=_listed(labels.status_label(s) for s in triage.STATUSES))
    elif option == "tag":
        in_use = store.tags()
        sentence = (
            _sentence(_("No case has the tag “%(value)s”. The tags in use are: %(choices)s."),
                      value=value, choices=_listed(in_use))
            if in_use else
            _sentence(_("No case has the tag “%(value)s”: no case has a tag yet."), value=value)
        )
    elif option in SCHEMA_FILTERS:
        choices = labels.choices(SCHEMA_FILTERS[option])
        sentence = _sentence(_("“%(value)s” is not one of the form’s answers for “%(filter)s”. "
                               "Choose one of: %(choices)s."),
                             value=value, filter=filter_label(option),
                             choices=_listed(str(c.label) for c in choices))
    elif option == "country":
        countries = sorted(labels.choice_label("country", code) for code in store.countries())
        sentence = (
            _sentence(_("“%(value)s” is not a country code. The cases come from: %(choices)s."),
                      value=value, choices=_listed(countries))
            if countries else
            _sentence(_("“%(value)s” is not a country code, and no case gives a country yet."),
                      value=value)
        )
    elif option == "assignee":
        sentence = _sentence(_("No case is given to “%(value)s”. Choose one of: %(choices)s."),
                             value=value, choices=_listed([_("nobody"), *store.assignees()]))
    elif option in ("since", "until"):
        sentence = _sentence(_("“%(value)s” is not a day. Write it as YYYY-MM-DD, for example "
                               "2026-11-30."), value=value)
    elif option == "search":
        sentence = _sentence(_("The search has no word in it. Type a word to search for."))
    else:  # indicator: only the desk's own links make one
        sentence = _sentence(_("“%(value)s” is not an indicator the desk can look for. The "
                               "group view lists the indicators cases share."), value=value)
    return Refused(sentence, parameter)


def _isolated(text: str) -> Markup:
    """A value inside a sentence: inert (`display.shown`) and in its own direction."""
    return Markup("<bdi>{}</bdi>").format(shown(text))


def _listed(values: Iterable[str]) -> Markup:
    return Markup(", ").join(_isolated(v) for v in values)


def _sentence(template: str, **values: str | Markup) -> Markup:
    """A translated sentence (its placeholders still in) with every value inert and isolated.

    Plain strings are what someone typed or stored: each becomes an isolated, inert value;
    Markup (a list made by `_listed`) goes in as it is.
    """
    return escape(template) % {
        name: value if isinstance(value, Markup) else _isolated(value)
        for name, value in values.items()
    }


def filter_label(option: str) -> str:
    """The name of a filter (a `CaseFilter` field) as the form shows it."""
    names = {
        "search": _("Search"), "status": _("Status"), "tag": _("Tag"),
        "category": _("Category"), "country": _("Country"), "risk": _("Risk now"),
        "tool": _("Suspected tool"), "assignee": _("Assigned to"),
        "since": _("Received from"), "until": _("Received until"),
    }
    return names.get(option, option)


@dataclass
class FilterForm:
    """What the filter form offers: (value, label) per select, in the reviewer's language."""

    statuses: list[tuple[str, str]]
    tags: list[tuple[str, str]]
    categories: list[tuple[str, str]]
    countries: list[tuple[str, str]]
    risks: list[tuple[str, str]]
    tools: list[tuple[str, str]]
    assignees: list[tuple[str, str]]


def filter_form(store: CaseStore) -> FilterForm:
    def answers(field_name: str) -> list[tuple[str, str]]:
        return [(c.value, str(c.label)) for c in schema.FIELDS[field_name].choices]

    countries = sorted(((code, labels.choice_label("country", code))
                        for code in store.countries()), key=lambda pair: pair[1])
    return FilterForm(
        statuses=[(s, labels.status_label(s)) for s in triage.STATUSES],
        tags=[(t, t) for t in typable_tags(store)],
        categories=answers("categories"),
        countries=countries,
        risks=answers("risk_now"),
        tools=answers("suspected_tool"),
        assignees=[(NOBODY, _("nobody")), *((a, a) for a in typable_names(store))],
    )


def typable_tags(store: CaseStore) -> list[str]:
    """The tags in use that the store's rules allow: the ones a form may offer as values.

    Another program could write any text into the database; such a tag is still
    shown (marked) on its case, but never put into a form's value.
    """
    return [tag for tag in store.tags() if _passes(triage.clean_tag, tag)]


def typable_names(store: CaseStore) -> list[str]:
    """The names cases are given to that the store's rules allow (see `typable_tags`)."""
    return [name for name in store.assignees() if _passes(triage.clean_name, name)]


def _passes(clean, value: str) -> bool:
    try:
        return clean(value) == value
    except triage.TriageError:
        return False


def pages(total: int, size: int) -> int:
    """How many pages `total` items make (one, when there are none)."""
    return max(1, (total + size - 1) // size)
