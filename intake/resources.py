"""Where the package's files that are not Python live, and a check that they are there.

The page templates (`templates/` at the top of the repository, installed as the package
`intake.templates`), the compiled catalogues (`intake/translations/<lang>/LC_MESSAGES/
messages.mo`, made by the build, never committed) and the static files are found through
the import system, the same way from a checkout (editable install) and from a wheel.

`check_installed` refuses to start without them: a missing template or catalogue is one
clear sentence at start-up, not an error page on every request. It promises nothing about
their content; the tests check that.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path

from intake.errors import IntakeError

PACKAGE_DIR = Path(__file__).resolve().parent
STATIC = PACKAGE_DIR / "static"
TRANSLATIONS = PACKAGE_DIR / "translations"
#: Every page extends it: if it is there, the build carried the templates in.
BASE_TEMPLATE = "base.html"

REINSTALL = (
    "reinstall intake from a wheel or an sdist (pip install intake-<version>.whl), or "
    "run `make install` in a checkout"
)


class MissingResources(IntakeError):
    """The installation lacks its templates, catalogues or static files."""


def templates_dir() -> Path:
    """The directory of the page templates (the package `intake.templates`)."""
    try:
        package = importlib.import_module("intake.templates")
    except ImportError:
        raise MissingResources(
            f"This installation of the intake lacks the page templates (intake.templates); "
            f"{REINSTALL}."
        ) from None
    return Path(next(iter(package.__path__))).resolve()


def catalogue(lang: str) -> Path:
    """The compiled catalogue of a language (which may not exist)."""
    return TRANSLATIONS / lang / "LC_MESSAGES" / "messages.mo"


def check_installed(languages: Iterable[str]) -> Path:
    """The templates directory, once the templates, the catalogues of `languages` and the
    static files are known to be present; otherwise `MissingResources` says what is not.
    """
    templates = templates_dir()
    missing = []
    if not (templates / BASE_TEMPLATE).is_file():
        missing.append(f"the page templates ({templates})")
    languages_without = sorted(lang for lang in languages if not catalogue(lang).is_file())
    if languages_without:
        missing.append(
            f"the compiled catalogues for {', '.join(languages_without)} ({TRANSLATIONS})"
        )
    if not STATIC.is_dir():
        missing.append(f"the static files ({STATIC})")
    if missing:
        raise MissingResources(f"This installation of the intake lacks {' and '.join(missing)}; "
                               f"{REINSTALL}.")
    return templates
