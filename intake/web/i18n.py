"""The page languages: in the URL (``/ar/``, ``/en/``, ``/fr/``, ``/fa/``), never in a cookie.

``/`` picks one from the browser's Accept-Language, Arabic by default: most
people who report read Arabic first. Every page links to the same page in
the other languages. Arabic and Persian pages are right to left.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Request, abort, g, request, url_for
from flask_babel import format_date


@dataclass(frozen=True)
class Language:
    code: str
    name: str  # its own name, the way its readers look for it
    direction: str


LANGUAGES: dict[str, Language] = {
    "ar": Language("ar", "العربية", "rtl"),
    "en": Language("en", "English", "ltr"),
    "fr": Language("fr", "Français", "ltr"),
    "fa": Language("fa", "فارسی", "rtl"),
}
DEFAULT_LANGUAGE = "ar"


def language_prefixed(bp: Blueprint) -> Blueprint:
    """Make `bp`'s pages take their language from the URL's `<lang>` (404 for any
    other) and keep it in every URL they build."""

    @bp.url_value_preprocessor
    def pull_language(endpoint: str | None, values: dict[str, Any] | None) -> None:
        lang = (values or {}).pop("lang", None)
        if lang not in LANGUAGES:
            abort(404)
        g.lang = lang

    @bp.url_defaults
    def add_language(endpoint: str, values: dict[str, Any]) -> None:
        values.setdefault("lang", g.get("lang", DEFAULT_LANGUAGE))

    return bp

#: The digits each page prints numbers in (the receipt, days, counts).
PAGE_DIGITS = {"ar": "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669",
               "fa": "\u06f0\u06f1\u06f2\u06f3\u06f4\u06f5\u06f6\u06f7\u06f8\u06f9"}


def page_digits(value: object) -> str:
    """`value` as text, its ASCII digits in the page's own digits."""
    digits = PAGE_DIGITS.get(current_language().code)
    text = str(value)
    return text.translate(str.maketrans("0123456789", digits)) if digits else text


def long_day(value: datetime.date | str) -> str:
    """A day written out in the page's language and digits ("4 March 2026")."""
    day = datetime.date.fromisoformat(value) if isinstance(value, str) else value
    return page_digits(format_date(day, format="long"))


def choose_language(req: Request) -> str:
    return req.accept_languages.best_match(list(LANGUAGES), default=DEFAULT_LANGUAGE)


def current_language() -> Language:
    return LANGUAGES.get(g.get("lang", DEFAULT_LANGUAGE), LANGUAGES[DEFAULT_LANGUAGE])


def language_links() -> list[tuple[Language, str, bool]]:
    """(language, URL of this page in it, is current) for the switcher on every page."""
    endpoint = request.endpoint if request.method == "GET" else None
    links = []
    for language in LANGUAGES.values():
        if (endpoint and endpoint.startswith(("report.", "followup."))
                and request.view_args is not None):
            href = url_for(endpoint, **{**request.view_args, "lang": language.code})
        elif (request.endpoint or "").startswith("followup."):
            # A mailbox page is an answer to a form: the way back in is the receipt.
            href = url_for("followup.entry", lang=language.code)
        else:
            href = url_for("report.safety", lang=language.code)
        links.append((language, href, language.code == current_language().code))
    return links
