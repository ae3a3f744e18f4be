"""intake: a secure, encrypted incident-reporting intake.

Sources report surveillance through a minimal web form; every report is
encrypted to the coalition reviewers' age keys, in the browser when it can be
and on receipt when it cannot, and only reviewers' offline keys can open it.
Importing this package has no side effects.
"""

__version__ = "0.1.0"
