"""Errors meant for people.

An `IntakeError` carries one sentence that says what went wrong and what to do.
It never contains a traceback, a server path the user did not give, or any
byte of a report. The command line prints it and exits non-zero; the web layer
turns it into a 4xx page.
"""


class IntakeError(Exception):
    """A user-facing error: `str(err)` is one sentence that says what to do."""


class EnvelopeError(IntakeError):
    """Ciphertext that cannot be produced, parsed or opened."""


class ContainerError(IntakeError):
    """A report container that is malformed, hostile or over a limit."""


class KeyringError(IntakeError):
    """A keyring or admins file that the server must not trust."""


class IdentityError(IntakeError):
    """A key file that cannot be read, written or unlocked."""
