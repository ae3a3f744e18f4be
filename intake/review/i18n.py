"""The reviewer side's languages: its own catalogue merged with the intake's.

The review tools' own words (statuses, headings, column titles) live in
``intake/review/translations/<lang>/LC_MESSAGES/messages.po``, apart from the
intake's catalogue (``intake/translations``), which keeps the schema's labels.
Both are loaded together: `TRANSLATION_DIRECTORIES` is the value the reviewers'
desk gives Flask-Babel's ``BABEL_TRANSLATION_DIRECTORIES``, and `in_language`
gives the command line and the exports the same merged catalogue for a block of
code. Strings are marked with Flask-Babel's ``gettext`` / ``lazy_gettext``;
they are extracted with ``intake/review/babel.cfg`` into the review catalogue
only. The reviewer's language is chosen independently of the source's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from flask import has_request_context

from intake import schema
from intake.errors import IntakeError

#: The languages the review tools speak, in the order they are offered.
LANGUAGES = ("en", "ar", "fr", "fa")
RTL = frozenset({"ar", "fa"})
DEFAULT_LANGUAGE = "en"

REVIEW_TRANSLATIONS = Path(__file__).resolve().parent / "translations"
INTAKE_TRANSLATIONS = Path(schema.__file__).resolve().parent / "translations"
#: Flask-Babel's BABEL_TRANSLATION_DIRECTORIES: both catalogues, merged.
TRANSLATION_DIRECTORIES = f"{INTAKE_TRANSLATIONS};{REVIEW_TRANSLATIONS}"


class UnknownLanguage(IntakeError):
    """A language the review tools have no catalogue for."""


def check_language(lang: str) -> str:
    """`lang` if the review tools speak it; otherwise an error listing the ones they do."""
    if lang not in LANGUAGES:
        shown = lang[:20].encode("ascii", "backslashreplace").decode("ascii")
        raise UnknownLanguage(
            f"There is no language {shown!r} for the review tools; "
            f"choose one of {', '.join(sorted(LANGUAGES))}."
        )
    return lang


def direction(lang: str) -> str:
    return "rtl" if lang in RTL else "ltr"


@contextlib.contextmanager
def in_language(lang: str) -> Iterator[None]:
    """Inside this block, gettext, lazy strings and country names resolve in `lang`.

    They read the locale from a Flask request context; a throwaway application
    with Babel and both catalogues gives them one. Nothing is served. Inside a
    request of the reviewers' desk, the desk's own context is kept: it has
    chosen the language already.
    """
    check_language(lang)
    if has_request_context():
        yield
        return
    from flask import Flask
    from flask_babel import Babel

    app = Flask(__name__)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = TRANSLATION_DIRECTORIES
    Babel(app, locale_selector=lambda: lang)
    with app.test_request_context():
        yield
