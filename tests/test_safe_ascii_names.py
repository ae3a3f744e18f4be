"""Names and ids that look safe to a careless regex are refused or normalised, never kept.

Python's ``$`` also matches before a final newline, ``\\d`` matches any script's
digits (Arabic-Indic ``١٢`` included), and a Unicode ``\\b`` sees no edge
between an Arabic letter and a digit. So every validation regex in
intake/crypto, intake/web and intake/storage uses ``fullmatch`` with explicit
ASCII classes; the first test holds the source to that rule, the others pin
down the inputs that used to get through. (Container entry names such as
``'01-a.pdf\\n'`` and ``'١٢-x'`` are in the hostile corpus,
tests/hostile/containers.py.)
"""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path

import pytest

from intake.crypto import keyring as kr
from intake.crypto.container import safe_name
from intake.errors import KeyringError
from intake.storage.blobs import check_id
from intake.storage.uploads import FilesystemUploadStore, UploadGone
from intake.web.security import PrivacyFilter

ROOT = Path(__file__).resolve().parent.parent
CHECKED = [ROOT / "intake" / part for part in ("crypto", "web", "storage")]
RE_FUNCTIONS = {"compile", "match", "fullmatch", "search", "sub", "split", "findall", "finditer"}


def regex_calls(tree: ast.AST):
    """(function name, pattern text, flags source) of each re.* call with a literal pattern."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "re"
            and node.func.attr in RE_FUNCTIONS
            and node.args
        ):
            pattern = node.args[0]
            text = None
            if isinstance(pattern, ast.Constant) and isinstance(pattern.value, str | bytes):
                text = pattern.value
            elif isinstance(pattern, ast.JoinedStr):
                text = "".join(
                    v.value for v in pattern.values if isinstance(v, ast.Constant)
                )
            if text is not None:
                flags = ast.unparse(node.args[2]) if len(node.args) > 2 else ""
                flags += " ".join(ast.unparse(k.value) for k in node.keywords)
                text = text.decode("latin-1") if isinstance(text, bytes) else text
                yield node.func.attr, text, flags


def compiled_names(tree: ast.AST) -> set[str]:
    return {
        target.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Attribute)
        and node.value.func.attr == "compile"
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def test_every_regex_in_crypto_web_and_storage_is_ascii_and_fully_anchored():
    problems = []
    for path in sorted(p for folder in CHECKED for p in folder.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = path.relative_to(ROOT)
        for function, pattern, flags in regex_calls(tree):
            if "\\d" in pattern:
                problems.append(f"{where}: \\d in {pattern!r} (use [0-9])")
            if "\\w" in pattern and "ASCII" not in flags:
                problems.append(f"{where}: \\w without re.ASCII in {pattern!r}")
            if pattern.endswith("$") and not pattern.endswith("\\$"):
                problems.append(f"{where}: trailing $ in {pattern!r} (use fullmatch)")
            if function == "match":
                problems.append(f"{where}: re.match({pattern!r}) (use re.fullmatch)")
        validators = compiled_names(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "match"
                and isinstance(node.value, ast.Name)
                and node.value.id in validators
            ):
                problems.append(f"{where}:{node.lineno}: {node.value.id}.match (use fullmatch)")
    assert problems == []


@pytest.mark.parametrize("recipient_id", ["r-amal-2026\n", "r-١٢", "r-amal\u200b", "\nr-amal"])
def test_a_recipient_id_with_a_newline_or_other_digits_is_refused_when_added(
    reviewer_keys, recipient_id
):
    with pytest.raises(KeyringError):
        kr.add_recipient(
            kr.empty_keyring_document(),
            str(reviewer_keys[0].to_public()),
            recipient_id=recipient_id,
            label="Reviewer A",
        )


def test_a_keyring_listing_an_id_that_ends_in_a_newline_is_refused(reviewer_keys):
    document = kr.add_recipient(
        kr.empty_keyring_document(),
        str(reviewer_keys[0].to_public()),
        recipient_id="r-amal",
        label="Reviewer A",
    ).document
    document["recipients"][0]["id"] = "r-amal\n"
    with pytest.raises(KeyringError):
        kr.Keyring(document)


@pytest.mark.parametrize("suffix", ["\n", "\r\n", " ", "\u0660"])
def test_a_submission_id_that_ends_in_anything_more_is_refused(suffix):
    with pytest.raises(ValueError):
        check_id("0123456789abcdef0123456789abcdef" + suffix)


@pytest.mark.parametrize("suffix", ["\n", "\u0661"])
def test_an_upload_id_that_ends_in_anything_more_is_unknown(tmp_path, suffix):
    # path() needs no database
    store = FilesystemUploadStore(tmp_path / "uploads", session_factory=None)
    with pytest.raises(UploadGone):
        store.path("A" * 32 + suffix)


@pytest.mark.parametrize("name", ["١٢-x.pdf", "01-a.pdf\n", "۰۱-report.pdf", "٠١"])
def test_safe_name_turns_other_digits_and_newlines_into_ascii(name):
    safe = safe_name(name, 3)
    assert re.fullmatch(r"03-[A-Za-z0-9_-][A-Za-z0-9._-]*", safe, re.ASCII), safe


@pytest.mark.parametrize(
    "message",
    ["مرسل192.0.2.10 وصل", "x=198.51.100.7", "peer 203.0.113.5", "مرسل198.51.100.7"],
)
def test_the_log_filter_blanks_an_address_even_right_after_an_arabic_letter(message):
    record = logging.LogRecord("gunicorn.error", logging.INFO, __file__, 1, message, None, None)
    PrivacyFilter().filter(record)
    assert not re.search(r"[0-9]{1,3}(\.[0-9]{1,3}){3}", record.getMessage())
