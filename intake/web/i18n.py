"""The page languages: in the URL (``/ar/``, ``/en/``, ``/fr/``, ``/fa/``), never in a cookie.

``/`` picks one from the browser's Accept-Language, Arabic by default: most
people who report read Arabic first. Every page links to the same page in
the other languages. Arabic and Persian pages are right to left.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Request, g, request, url_for


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


def choose_language(req: Request) -> str:
    return req.accept_languages.best_match(list(LANGUAGES), default=DEFAULT_LANGUAGE)


def current_language() -> Language:
    return LANGUAGES.get(g.get("lang", DEFAULT_LANGUAGE), LANGUAGES[DEFAULT_LANGUAGE])


def language_links() -> list[tuple[Language, str, bool]]:
    """(language, URL of this page in it, is current) for the switcher on every page."""
    endpoint = request.endpoint if request.method == "GET" else None
    links = []
    for language in LANGUAGES.values():
        if endpoint and endpoint.startswith("report.") and request.view_args is not None:
            href = url_for(endpoint, **{**request.view_args, "lang": language.code})
        else:
            href = url_for("report.safety", lang=language.code)
        links.append((language, href, language.code == current_language().code))
    return links
