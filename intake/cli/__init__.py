"""The `intake` command.

Every sub-command explains bad input in one sentence on standard error and
exits non-zero; none prints a traceback for a user's mistake (set
INTAKE_DEBUG=1 to see one for a bug). Documents go to standard output, messages
and progress to standard error.

Sub-commands are imported only when they run, so that the reviewers' install (`intake[review]`,
without the server's libraries) runs `intake keys` and `intake review`, and `intake --version`
imports neither the web app nor the database. A command whose extra is not installed says in
one sentence which one to install.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
import sys
from dataclasses import dataclass

import click

from intake.errors import IntakeError

EXIT_USER_ERROR = 1
EXIT_INTERNAL = 70


@dataclass(frozen=True)
class Lazy:
    """Where a sub-command lives, and the extra (pip install 'intake[extra]') it needs."""

    module: str
    attribute: str
    extra: str | None


#: Every sub-command. `keys` needs only the base install (both machines use it).
COMMANDS: dict[str, Lazy] = {
    "keys": Lazy("intake.cli.keys", "keys", None),
    "review": Lazy("intake.cli.review", "review", "review"),
    "serve": Lazy("intake.cli.server", "serve", "server"),
    "demo": Lazy("intake.cli.server", "demo", "server"),
    "db": Lazy("intake.cli.server", "database", "server"),
    "export": Lazy("intake.cli.admin", "export", "server"),
    "purge": Lazy("intake.cli.admin", "purge", "server"),
}

#: What each extra is for, in the sentence that asks for it.
EXTRA_PURPOSE = {
    "server": "runs on the server",
    "review": "runs on the reviewers' computer",
}


class MissingExtra(IntakeError):
    """A sub-command whose libraries (an extra of the package) are not installed."""


def missing_distributions(extra: str) -> list[str]:
    """The distributions that `intake[extra]` requires and that are not installed.

    Read from the installed package's metadata, so that pyproject.toml stays the one list.
    Run from a source tree with no metadata, nothing is reported and an import will tell.
    """
    try:
        requirements = importlib.metadata.requires("intake") or []
    except importlib.metadata.PackageNotFoundError:
        return []
    missing = []
    for requirement in requirements:
        spec, _, marker = requirement.partition(";")
        if not re.search(rf"""extra\s*==\s*["']{re.escape(extra)}["']""", marker):
            continue
        name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", spec.strip())
        if name is None:
            continue
        try:
            importlib.metadata.distribution(name.group(0))
        except importlib.metadata.PackageNotFoundError:
            missing.append(name.group(0))
    return missing


def require_extra(command: str, extra: str) -> None:
    missing = missing_distributions(extra)
    if missing:
        raise MissingExtra(
            f"`intake {command}` {EXTRA_PURPOSE[extra]} and needs libraries that are not "
            f"installed here ({', '.join(missing)}): install them with "
            f"pip install 'intake[{extra}]'."
        )


class LazyGroup(click.Group):
    """A group whose sub-commands are imported when they run (or when --help lists them)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        lazy = COMMANDS.get(cmd_name)
        if lazy is None:
            return None
        return getattr(importlib.import_module(lazy.module), lazy.attribute)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        # Only a command that is about to run is checked: `intake --help` lists them all.
        name, command, rest = super().resolve_command(ctx, args)
        lazy = COMMANDS.get(name or "")
        if lazy is not None and lazy.extra is not None:
            require_extra(name, lazy.extra)
        return name, command, rest


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="intake")
def cli() -> None:
    """intake: a secure, encrypted incident-reporting intake."""


def main(argv: list[str] | None = None) -> None:
    try:
        result = cli.main(args=argv, prog_name="intake", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("intake: interrupted; nothing was changed by the step in progress.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except IntakeError as exc:
        click.echo(f"intake: {exc}", err=True)
        sys.exit(EXIT_USER_ERROR)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        click.echo(
            f"intake: {exc.strerror or exc}{where}; check the path and its permissions.", err=True
        )
        sys.exit(EXIT_USER_ERROR)
    except Exception as exc:
        if os.environ.get("INTAKE_DEBUG"):
            raise
        click.echo(
            f"intake: unexpected internal error ({type(exc).__name__}); run again with "
            "INTAKE_DEBUG=1 and report it.",
            err=True,
        )
        sys.exit(EXIT_INTERNAL)
    sys.exit(result if isinstance(result, int) else 0)
