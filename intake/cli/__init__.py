"""The `intake` command.

Every sub-command explains bad input in one sentence on standard error and
exits non-zero; none prints a traceback for a user's mistake (set
INTAKE_DEBUG=1 to see one for a bug). Documents go to standard output, messages
and progress to standard error.
"""

from __future__ import annotations

import os
import sys

import click

from intake.cli.admin import export, purge
from intake.cli.keys import keys
from intake.cli.review import review
from intake.cli.server import database, demo, serve
from intake.errors import IntakeError

EXIT_USER_ERROR = 1
EXIT_INTERNAL = 70


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="intake")
def cli() -> None:
    """intake: a secure, encrypted incident-reporting intake."""


cli.add_command(keys)
cli.add_command(serve)
cli.add_command(database)
cli.add_command(demo)
cli.add_command(export)
cli.add_command(purge)
cli.add_command(review)


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
