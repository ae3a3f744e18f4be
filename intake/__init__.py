"""intake: a secure, encrypted incident-reporting intake.

Sources report surveillance through a minimal web form; every report is
encrypted to the coalition reviewers' age keys, in the browser when it can be
and on receipt when it cannot, and only reviewers' offline keys can open it.
Importing this package has no side effects.
"""

__version__ = "0.1.0"


def create_app(test_config: dict | None = None):
    """The Flask application, configured from the environment (see `intake.config`).

    `test_config` overrides Flask settings; an ``INTAKE_ENV`` mapping in it
    replaces the process environment for the intake's own settings.
    """
    from intake.config import settings_from_env
    from intake.web.app import build_app

    test_config = dict(test_config or {})
    settings = settings_from_env(test_config.pop("INTAKE_ENV", None))
    return build_app(settings, test_config)
