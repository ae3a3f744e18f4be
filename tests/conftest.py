"""Shared fixtures and the strict-mode rule.

Without INTAKE_STRICT_TESTS a test that needs a missing system tool is skipped
with a reason; with it, every skip is turned into a failure, so that a green CI
run means every test ran.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from helpers import STRONG_PASSPHRASE
from pyrage import x25519

STRICT = bool(os.environ.get("INTAKE_STRICT_TESTS"))


def require_tool(name: str) -> str:
    """The path of a system tool, or skip (fail in strict mode) if it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"the system tool {name!r} is not installed (.ci/run installs it)")
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"INTAKE_STRICT_TESTS forbids skipping: {reason}"


@pytest.fixture(scope="session")
def reviewer_keys() -> list[x25519.Identity]:
    """Three throwaway reviewer identities (unencrypted, in memory)."""
    return [x25519.Identity.generate() for _ in range(3)]


@pytest.fixture(scope="session")
def passphrase_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("secrets") / "passphrase"
    path.write_text(STRONG_PASSPHRASE + "\n")
    return path


@pytest.fixture
def identity_text_file(tmp_path, reviewer_keys) -> Path:
    """The first reviewer identity as plain age-keygen text (for the age tool)."""
    ident = reviewer_keys[0]
    path = tmp_path / "plain.key"
    path.write_text(
        f"# created: 2026-11-28T00:00:00Z\n# public key: {ident.to_public()}\n{ident}\n"
    )
    path.chmod(0o600)
    return path
