"""Helpers shared by the sub-commands: passphrases, path options, messages."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click

from intake.crypto.passphrase import (
    GENERATED_WORDS,
    MIN_BITS,
    WORD_LIST_NAME,
    check_new_passphrase,
    generate_passphrase,
    generated_bits,
)
from intake.errors import IntakeError

MAX_PASSPHRASE_FILE = 4096


def read_passphrase_file(path: Path) -> str:
    try:
        data = Path(path).read_bytes()[: MAX_PASSPHRASE_FILE + 1]
    except OSError as exc:
        raise IntakeError(f"The passphrase file {path} cannot be read ({exc.strerror}).") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise IntakeError(f"The passphrase file {path} is not UTF-8 text.") from None
    lines = text.splitlines()
    passphrase = lines[0] if lines else ""
    if not passphrase:
        raise IntakeError(
            f"The passphrase file {path} is empty; put the passphrase on its first line."
        )
    return passphrase


def passphrase_source(passphrase_file: Path | None, *, what: str) -> Callable[[], str]:
    """A callable that returns the passphrase of an existing key file, asking at most once.

    From `passphrase_file` when given; otherwise prompted on the terminal.
    """
    cache: list[str] = []

    def get() -> str:
        if cache:
            return cache[0]
        if passphrase_file is not None:
            value = read_passphrase_file(passphrase_file)
        else:
            if not sys.stdin.isatty():
                raise IntakeError(
                    "There is no terminal to ask for the passphrase; use --passphrase-file."
                )
            value = click.prompt(f"Passphrase for {what}", hide_input=True, err=True)
            if not value:
                raise IntakeError("The passphrase is empty; type the key file's passphrase.")
        cache.append(value)
        return value

    return get


def _show_generated(passphrase: str) -> None:
    info(
        f"A passphrase made for you: {passphrase_words(GENERATED_WORDS)} drawn at random from "
        f"{WORD_LIST_NAME}, about {int(generated_bits())} bits:\n\n"
        f"    {passphrase}\n\n"
        "Write it down now, exactly, with single spaces, and keep it apart from the key file: "
        "nobody can recover it."
    )


def passphrase_words(count: int) -> str:
    names = {6: "six words", 7: "seven words", 8: "eight words"}
    return names.get(count, f"{count} words")


def new_passphrase(
    passphrase_file: Path | None, *, what: str, generate: bool, context: tuple[str, ...] = ()
) -> str:
    """The passphrase for a new key file, at least as strong as six diceware words.

    `generate`: make one and show it. `passphrase_file`: its first line, refused
    if weak. Otherwise, on a terminal: offer a generated one first, then let the
    person type their own (twice), asking again while it is too weak.
    """
    if generate and passphrase_file is not None:
        raise IntakeError(
            "Give either --passphrase-file or --generate-passphrase, not both."
        )
    if generate:
        made = generate_passphrase()
        _show_generated(made)
        return made
    if passphrase_file is not None:
        value = read_passphrase_file(passphrase_file)
        check_new_passphrase(value, context=context, where=f"in {passphrase_file}")
        return value
    if not sys.stdin.isatty():
        raise IntakeError(
            "There is no terminal to ask for the passphrase; use --passphrase-file, or "
            "--generate-passphrase to have a strong one made and shown."
        )
    offered = generate_passphrase()
    _show_generated(offered)
    if click.confirm("Use this passphrase?", default=False, err=True):
        while True:
            typed = click.prompt(
                "Type it once, to show it is written down", err=True, default="",
                show_default=False,
            )
            if typed == offered:
                return offered
            info("That is not the same passphrase (single spaces between the words); try again.")
    info(
        f"Then type a passphrase of your own: at least as strong as "
        f"{passphrase_words(6)} chosen at random (about {MIN_BITS} bits)."
    )
    while True:
        value = click.prompt(
            f"New passphrase for {what}", hide_input=True, confirmation_prompt="Repeat it",
            err=True,
        )
        try:
            check_new_passphrase(value, context=context)
        except IntakeError as exc:
            info(str(exc))
            continue
        return value


def info(message: str) -> None:
    """A message for the person at the terminal (standard error)."""
    click.echo(message, err=True)


def path_option(
    *names: str, envvar: str | None = None, default: str | None = None, help: str
) -> Callable:
    return click.option(
        *names,
        envvar=envvar,
        default=default,
        show_default=True,
        type=click.Path(path_type=Path, dir_okay=False),
        help=help,
    )


keyring_option = path_option(
    "--keyring", envvar="INTAKE_KEYRING", default="keys/keyring.json", help="The keyring file."
)
admins_option = path_option(
    "--admins", envvar="INTAKE_ADMINS", default="keys/admins.json", help="The admins file."
)
passphrase_file_option = path_option(
    "--passphrase-file",
    help="Read the passphrase from the first line of this file instead of asking.",
)
generate_passphrase_option = click.option(
    "--generate-passphrase",
    is_flag=True,
    help=f"Make a passphrase of {GENERATED_WORDS} random words from {WORD_LIST_NAME} "
    "and show it, instead of asking for one.",
)


def terminal_progress(label: str) -> Callable[[int, int], None] | None:
    """A progress bar on standard error when it is a terminal; nothing otherwise."""
    if not sys.stderr.isatty():
        return None
    state: dict[str, int] = {"last": -1}

    def update(done: int, total: int) -> None:
        percent = 100 if total == 0 else int(done * 100 / total)
        if percent != state["last"]:
            state["last"] = percent
            bar = "#" * (percent // 4)
            click.echo(f"\r{label} [{bar:<25}] {percent:3d}%", err=True, nl=percent == 100)

    return update


cases_option = click.option(
    "--cases",
    "cases_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default="cases",
    show_default=True,
    help="The case store folder.",
)


def write_document(text: str, out: Path | None) -> None:
    """Write a document to standard output, or to `out`.

    A regular file (or a new one) is replaced atomically, mode 0600. Anything
    else that already exists at `out` (``/dev/null``, a FIFO, a terminal) is
    written to in place: replacing it would put a regular file where the
    device was (``--out /dev/null`` once turned the machine's /dev/null into a
    file).
    """
    if out is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    import os
    import stat

    from intake.fsutil import atomic_write

    data = text.encode("utf-8")
    try:
        mode = os.stat(out).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        if stat.S_ISDIR(mode):
            raise IntakeError(f"{out} is a folder; give a file name to write to.")
        with open(out, "wb") as fh:  # a device or a pipe: write through it, never replace it
            fh.write(data)
        return
    atomic_write(out, data, mode=0o600)
    info(f"Wrote {out}.")
