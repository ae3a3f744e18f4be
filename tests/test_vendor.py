"""The vendored age bundle: what the page serves is what the lock file says, and it works.

``intake/static/vendor/age-encryption-<version>.js`` is built by ``make vendor``
from ``package-lock.json``. Anyone must be able to rebuild it and get the same
bytes, so that a served file that differs is evidence of tampering; the page
loads it with the integrity in ``SRI.json``; the CSP (``script-src 'self'``)
allows no eval. And its output must be age that rage (pyrage) decrypts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pyrage
import pytest
from conftest import require_tool

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "intake" / "static" / "vendor"
NPM_TIMEOUT = 600  # seconds; npm ci fetches the locked tarballs unless they are cached


def run(command: list[str], cwd: Path) -> None:
    env = {**os.environ, "npm_config_update_notifier": "false"}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, timeout=NPM_TIMEOUT)
    assert result.returncode == 0, (
        f"{command[:2]} failed:\n{result.stderr.decode(errors='replace')}"
    )


def committed_bundle() -> Path:
    bundles = sorted(VENDOR.glob("age-encryption-*.js"))
    assert len(bundles) == 1, f"expected exactly one vendored bundle, found {bundles}"
    return bundles[0]


def sha384_integrity(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode("ascii")


def test_bundle_is_named_after_the_locked_age_encryption_version():
    package = json.loads((ROOT / "package.json").read_text())
    lock = json.loads((ROOT / "package-lock.json").read_text())
    pinned = package["devDependencies"]["age-encryption"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned), "age-encryption must be pinned exactly"
    assert re.fullmatch(r"\d+\.\d+\.\d+", package["devDependencies"]["esbuild"])
    assert lock["lockfileVersion"] == 3
    assert lock["packages"]["node_modules/age-encryption"]["version"] == pinned
    assert committed_bundle().name == f"age-encryption-{pinned}.js"


def test_sri_json_matches_the_committed_bundle():
    bundle = committed_bundle()
    sri = json.loads((VENDOR / "SRI.json").read_text())
    assert sri == {"file": bundle.name, "integrity": sha384_integrity(bundle.read_bytes())}


def test_committed_bundle_needs_no_eval_and_is_a_classic_script():
    code = committed_bundle().read_text("utf-8")
    for forbidden in ("eval(", "new Function", "import(", "import.meta", "export{", "export "):
        assert forbidden not in code, f"the bundle contains {forbidden!r}"
    # One IIFE after the banner comment: nothing leaks into the page's scope but the global.
    assert re.match(r"/\*![^\n]*\*/\n\(\(\)=>\{", code)
    assert "self.ageEncryption=" in code


def test_committed_bundle_holds_no_build_machine_paths():
    code = committed_bundle().read_text("utf-8")
    for leak in ("/work", "/home/", "/tmp/", "node_modules", str(ROOT)):
        assert leak not in code, f"the bundle contains the path fragment {leak!r}"


def test_committed_bundle_keeps_the_licences():
    code = committed_bundle().read_text("utf-8")
    assert "Copyright 2023 The age Authors" in code  # age-encryption, BSD-3-Clause
    assert "Permission is hereby granted, free of charge" in code  # noble / scure, MIT


@pytest.mark.slow
def test_bundle_rebuilds_byte_for_byte_from_the_lock_file(tmp_path):
    npm, node = require_tool("npm"), require_tool("node")
    work = tmp_path / "rebuild"
    work.mkdir()
    for name in ("package.json", "package-lock.json"):
        shutil.copy2(ROOT / name, work / name)
    shutil.copytree(ROOT / "frontend", work / "frontend")
    out = tmp_path / "vendor"
    out.mkdir()
    stale = out / "age-encryption-0.0.1.js"
    stale.write_text("an older bundle the build must remove")

    run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=work)
    run([node, "frontend/build-vendor.mjs", "--outdir", str(out)], cwd=work)

    committed = committed_bundle()
    assert not stale.exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(["SRI.json", committed.name])
    rebuilt = (out / committed.name).read_bytes()
    assert rebuilt == committed.read_bytes(), "the committed bundle differs from a fresh build"
    sri = json.loads((out / "SRI.json").read_text())
    assert sri["integrity"] == sha384_integrity(committed.read_bytes())
    assert (out / "SRI.json").read_bytes() == (VENDOR / "SRI.json").read_bytes()


def encrypt_with_bundle(plaintext: bytes, recipients: list[str], mode: str) -> bytes:
    node = require_tool("node")
    result = subprocess.run(
        [
            node,
            str(ROOT / "frontend" / "encrypt-with-bundle.mjs"),
            str(committed_bundle()),
            mode,
            *recipients,
        ],
        input=plaintext,
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout


@pytest.mark.parametrize("mode", ["--stream", "--bytes"])
@pytest.mark.parametrize("size", [0, 1, 65536, 65537, 300_001])
def test_bundle_encrypts_to_every_recipient_and_rage_decrypts_it(reviewer_keys, mode, size):
    plaintext = os.urandom(size)
    recipients = [str(key.to_public()) for key in reviewer_keys]
    ciphertext = encrypt_with_bundle(plaintext, recipients, mode)
    assert ciphertext.startswith(b"age-encryption.org/v1\n")
    assert ciphertext.count(b"\n-> X25519 ") == len(reviewer_keys)
    for key in reviewer_keys:
        assert pyrage.decrypt(ciphertext, [key]) == plaintext


def test_bundle_output_is_not_the_plaintext(reviewer_keys):
    canary = b"CANARY-vendor-bundle-" * 1000
    ciphertext = encrypt_with_bundle(canary, [str(reviewer_keys[0].to_public())], "--stream")
    assert b"CANARY" not in ciphertext
    assert pyrage.decrypt(ciphertext, [reviewer_keys[0]]) == canary
