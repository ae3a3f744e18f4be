"""The build steps that pyproject.toml cannot say.

- `templates/` stays at the top of the repository (the design card puts it there) and is
  carried into the package as `intake.templates`, through a package-dir mapping: the app
  finds it by importing `intake.templates`, the same way from a checkout (editable install)
  and from a wheel.
- The translation catalogues are compiled with Babel: into the wheel for a normal build, next
  to their `.po` files for an editable install. The `.mo` files are never committed, and a
  catalogue with an error stops the build rather than ship a page in the wrong language.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import find_namespace_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
#: Every catalogue directory: the intake's pages, the review side's and the desk's strings.
CATALOGUES = (
    Path("intake", "translations"),
    Path("intake", "review", "translations"),
    Path("intake", "review", "desk", "translations"),
)


def compile_catalogues(source: Path, target: Path) -> list[str]:
    """Compile every `<lang>/LC_MESSAGES/messages.po` under `source` into `target`.

    Fuzzy entries are left out (as `pybabel compile` does). Returns the files written.
    """
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    written = []
    for po_path in sorted(source.glob("*/LC_MESSAGES/messages.po")):
        lang = po_path.parent.parent.name
        with po_path.open("rb") as fh:
            catalog = read_po(fh, locale=lang)
        errors = [
            f"{po_path}: {message.id!r}: {error}"
            for message, message_errors in catalog.check()
            for error in message_errors
        ]
        if errors:
            raise SystemExit("catalogue errors:\n" + "\n".join(errors))
        mo_path = target / lang / "LC_MESSAGES" / "messages.mo"
        mo_path.parent.mkdir(parents=True, exist_ok=True)
        with mo_path.open("wb") as fh:
            write_mo(fh, catalog, use_fuzzy=False)
        written.append(str(mo_path))
    if not written:
        raise SystemExit(f"no catalogue found under {source}")
    return written


class BuildPyWithCatalogues(build_py):
    """build_py, then the compiled catalogues (in the build tree, or in place when editable)."""

    def run(self) -> None:
        super().run()
        self._catalogues = []
        for catalogues in CATALOGUES:
            source = HERE / catalogues
            if self.editable_mode:
                compile_catalogues(source, source)
            else:
                target = Path(self.build_lib) / catalogues
                self._catalogues += compile_catalogues(source, target)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), *getattr(self, "_catalogues", [])]


setup(
    # Namespace discovery lists the data-only folders (static/, translations/, migrations/)
    # as packages too, as setuptools wants for the package data inside them.
    packages=[
        *find_namespace_packages(include=["intake", "intake.*"], exclude=["*.__pycache__"]),
        "intake.templates",
    ],
    package_dir={"intake.templates": "templates"},
    cmdclass={"build_py": BuildPyWithCatalogues},
)
