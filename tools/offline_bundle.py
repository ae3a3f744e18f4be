"""Make the offline installer for the reviewers' air-gapped computer.

    python tools/offline_bundle.py --wheel dist/intake-0.1.0-py3-none-any.whl \
        --lock requirements/review.txt --out dist

writes ``dist/intake-offline-<version>.tar`` (``…-cp313.tar`` for ``--python-version 3.13``),
an uncompressed tar (the wheels are compressed already) of one folder of the same name:

- ``wheels/``: the intake wheel and a wheel of every package of the review profile (pip
  among them), for the target: x86_64 Linux with glibc 2.36 or newer (Debian 12; Tails 7 has
  glibc 2.41) and CPython 3.11 (``--python-version`` for another);
- ``requirements.txt``: the committed lock file, whose hashes every wheel must match (pip
  downloads with ``--require-hashes``: a file the index serves that the lock does not name is
  refused, so no hash here comes from the index on the day), and the intake wheel's own hash;
- ``INSTALL.txt``: the installation, in four commands.

It refuses a bundle over ``MAX_BUNDLE_BYTES`` (a standing gate: see docs/release.md), and
prints the size and the SHA-256, in full and as the 25-digit groups the admin reads out.
Downloading needs the package index; installing needs nothing but the bundle.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

MiB = 1024 * 1024
#: The ceiling for the whole bundle, a standing gate. Measured 2026-11-30 for CPython 3.11:
#: 63,795,200 bytes (60.8 MiB) in 38 wheels, mostly numpy 16.1, babel 10.5, matplotlib 9.4,
#: pillow 6.8, fonttools 5.2 and cryptography 4.5 MiB. Already announced for the reviewers'
#: side: xkcdpass 2.6, phonenumbers 2.5 and zxcvbn 0.4 MiB (about 66.4 MiB with them). The
#: ceiling leaves some 8 % over that for version drift; anything bigger (a new heavy library,
#: a second copy of one) stops here and is weighed, and the ceiling raised, on purpose: every
#: MiB is carried by hand to the air-gapped computer at every update.
MAX_BUNDLE_BYTES = 72 * MiB
#: The oldest glibc of the supported offline systems: Debian 12 (Tails 7 has 2.41).
TARGET_GLIBC = (2, 36)
#: The first bits of the SHA-256 that the admin reads out: 80 bits, 25 decimal digits.
FINGERPRINT_BYTES = 10
#: Debian 12's CPython; a bundle for another one is named after it (…-cp313.tar for Tails 7).
DEFAULT_PYTHON = "3.11"
WHEEL_NAME = re.compile(r"intake-([0-9][0-9A-Za-z.+!-]*)-py3-none-any\.whl")


def manylinux_platforms(glibc: tuple[int, int] = TARGET_GLIBC) -> list[str]:
    """Every manylinux tag a system with this glibc runs, newest first (pip does not expand
    ``manylinux_2_36`` to the older tags by itself)."""
    major, minor = glibc
    tags = [f"manylinux_{major}_{m}_x86_64" for m in range(minor, 4, -1)]
    return [*tags, "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]


def sha256_file(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def spoken_fingerprint(hex_digest: str) -> str:
    """The first 80 bits of a SHA-256 as 25 decimal digits in groups of five, to read aloud.

    The reviewer computes the same with the one-line command in docs/reviewers.md.
    """
    number = int.from_bytes(bytes.fromhex(hex_digest)[:FINGERPRINT_BYTES], "big")
    text = f"{number:025d}"
    return " ".join(text[i : i + 5] for i in range(0, 25, 5))


def download_wheels(lock: Path, wheels: Path, python_version: str) -> None:
    """Every wheel of `lock` for the target, each checked against the lock's hashes."""
    digits = python_version.replace(".", "")
    command = [
        sys.executable, "-m", "pip", "download",
        "--quiet", "--disable-pip-version-check",
        "--only-binary=:all:", "--implementation", "cp", "--python-version", python_version,
        "--abi", f"cp{digits}", "--abi", "abi3", "--abi", "none",
        *(arg for tag in manylinux_platforms() for arg in ("--platform", tag)),
        "--require-hashes", "-r", str(lock), "--dest", str(wheels),
    ]  # fmt: skip
    subprocess.run(command, check=True)
    not_wheels = [p.name for p in wheels.iterdir() if p.suffix != ".whl"]
    if not_wheels:
        raise SystemExit(f"not wheels, which the offline install cannot use: {not_wheels}")


def install_text(folder: str, version: str, python_version: str, pip_wheel: str) -> str:
    return f"""intake {version}: installation without a network, on the reviewers' computer
For x86_64 Linux with CPython {python_version}: `python3 --version` must say {python_version}.x.

0. Check the SHA-256 of {folder}.tar first, against what the admin reads
   out to you on another channel (docs/reviewers.md, "Installing without a network").
1. Extract it (anywhere: it is needed only while installing):
     tar -xf {folder}.tar
2. Make the virtual environment that will hold the intake. On Tails it must be in the
   Persistent folder, which Tails keeps across restarts; on Debian 12 the same command
   works as it is:
     python3 -m venv --without-pip ~/Persistent/intake-venv
3. Install, from these files only, each checked against its hash:
     ~/Persistent/intake-venv/bin/python {folder}/wheels/{pip_wheel}/pip install \\
         --isolated --no-index --find-links {folder}/wheels --only-binary :all: \\
         --require-hashes -r {folder}/requirements.txt
4. Check it runs:
     ~/Persistent/intake-venv/bin/intake --version
     ~/Persistent/intake-venv/bin/intake review --help

Run the intake as ~/Persistent/intake-venv/bin/intake, or first
  . ~/Persistent/intake-venv/bin/activate
and then as `intake`.
"""


def add_file(tar: tarfile.TarFile, name: str, data: bytes | None = None,
             source: Path | None = None) -> None:
    """A member with no owner, no user name and no time of this machine in it."""
    info = tarfile.TarInfo(name)
    info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = 0o644, 0, 0, 0, "", ""
    if source is not None:
        info.size = source.stat().st_size
        with source.open("rb") as fh:
            tar.addfile(info, fh)
    else:
        assert data is not None
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime, info.uname, info.gname = tarfile.DIRTYPE, 0o755, 0, "", ""
    tar.addfile(info)


def make_bundle(wheel: Path, lock: Path, out_dir: Path, python_version: str) -> Path:
    found = WHEEL_NAME.fullmatch(wheel.name)
    if found is None:
        raise SystemExit(f"{wheel} is not an intake wheel (intake-<version>-py3-none-any.whl)")
    version = found.group(1)
    folder = f"intake-offline-{version}"
    if python_version != DEFAULT_PYTHON:
        folder += "-cp" + python_version.replace(".", "")
    with tempfile.TemporaryDirectory(prefix="intake-offline-") as tmp:
        wheels = Path(tmp) / "wheels"
        wheels.mkdir()
        download_wheels(lock, wheels, python_version)
        pip_wheels = sorted(p.name for p in wheels.glob("pip-*.whl"))
        if len(pip_wheels) != 1:
            raise SystemExit(f"{lock} must pin pip once: the offline install runs its wheel")
        shutil.copy2(wheel, wheels / wheel.name)
        requirements = (
            f"# intake {version}, review profile, for CPython {python_version} on x86_64 "
            f"Linux.\n# The pins and hashes are {lock.name} as committed; the last line is "
            "the intake wheel in this bundle.\n"
            + lock.read_text()
            + f"intake[review]=={version} \\\n    --hash=sha256:{sha256_file(wheel)}\n"
        )
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / f"{folder}.tar"
        partial = target.with_name(target.name + ".partial")
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
            add_dir(tar, folder)
            install = install_text(folder, version, python_version, pip_wheels[0])
            add_file(tar, f"{folder}/INSTALL.txt", install.encode())
            add_file(tar, f"{folder}/requirements.txt", requirements.encode())
            add_dir(tar, f"{folder}/wheels")
            for path in sorted(wheels.iterdir()):
                add_file(tar, f"{folder}/wheels/{path.name}", source=path)
        size = partial.stat().st_size
        if size > MAX_BUNDLE_BYTES:
            partial.unlink()
            raise SystemExit(
                f"the offline bundle is {size} bytes ({size / MiB:.1f} MiB), over the ceiling "
                f"of {MAX_BUNDLE_BYTES / MiB:.0f} MiB (tools/offline_bundle.py explains it)"
            )
        os.replace(partial, target)
        count = sum(1 for _ in wheels.iterdir())
    digest = sha256_file(target)
    print(
        f"{target}: {count} wheels, {size} bytes ({size / MiB:.1f} MiB; ceiling "
        f"{MAX_BUNDLE_BYTES / MiB:.0f} MiB)\n"
        f"SHA-256: {digest}\n"
        f"Read out to the reviewers, on another channel: {spoken_fingerprint(digest)}"
    )
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, required=True, help="The intake wheel.")
    parser.add_argument("--lock", type=Path, required=True, help="The review profile's lock.")
    parser.add_argument("--out", type=Path, required=True, help="Where to write the bundle.")
    parser.add_argument("--python-version", default=DEFAULT_PYTHON, help="The target's CPython.")
    args = parser.parse_args(argv)
    if re.fullmatch(r"3\.[0-9]{1,2}", args.python_version) is None:
        parser.error("--python-version is major.minor, such as 3.11")
    make_bundle(args.wheel, args.lock, args.out, args.python_version)


if __name__ == "__main__":
    main()
