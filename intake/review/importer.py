"""`intake review import` and `intake review ack`, on the air-gapped machine.

Import checks the bundle's shape first (the manifest, and exactly the files
it lists), then for each submission: its sha256 against the manifest, age
decryption with the reviewer's identity, safe extraction of the container,
and a case folder built in a temporary folder and renamed into place. A blob
that fails any step is quarantined and reported; the rest go on. Importing
the same bundle again adds nothing. Ack lists only what is safely filed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import shutil
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from pyrage import x25519

from intake.crypto.container import extract_container
from intake.crypto.envelope import decrypt_stream
from intake.errors import IntakeError
from intake.fsutil import fsync_dir
from intake.review.casestore import QUARANTINE, case_ids, load_case
from intake.review.render import render_report
from intake.transfer.bundle import ACK_FORMAT, MAX_MANIFEST, member_name, parse_manifest

Progress = Callable[[int, int], None]


@dataclass
class ImportResult:
    added: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    quarantined: list[tuple[str, str]] = field(default_factory=list)


def read_bundle(bundle: Path) -> tuple[tarfile.TarFile, list[dict]]:
    """Open a bundle and check it holds exactly the manifest and the files it lists."""
    try:
        archive = tarfile.open(bundle, mode="r:")  # noqa: SIM115 (returned to the caller)
    except FileNotFoundError:
        raise IntakeError(f"There is no bundle at {bundle}.") from None
    except tarfile.TarError:
        raise IntakeError(f"{bundle} is not an intake export bundle (not a tar file).") from None
    members = {m.name: m for m in archive.getmembers()}
    manifest = members.get("manifest.json")
    if manifest is None or not manifest.isreg() or manifest.size > MAX_MANIFEST:
        archive.close()
        raise IntakeError("The bundle has no manifest.json; it is not a complete export.")
    entries = parse_manifest(archive.extractfile(manifest).read())
    expected = {member_name(e["id"]) for e in entries} | {"manifest.json"}
    missing = sorted(expected - set(members))
    extra = sorted(set(members) - expected)
    if missing:
        archive.close()
        raise IntakeError(
            f"The bundle lacks {missing[0]} (and {len(missing) - 1} more); "
            "export it again on the server."
        )
    if extra:
        archive.close()
        raise IntakeError(
            f"The bundle holds a file its manifest does not list ({extra[0][:60]}); it was refused."
        )
    if any(not members[name].isreg() for name in expected):
        archive.close()
        raise IntakeError("The bundle holds a link or special file; it was refused.")
    return archive, entries


def _quarantine(cases_dir: Path, entry: dict, data_path: Path | None, reason: str) -> None:
    target = cases_dir / QUARANTINE
    target.mkdir(mode=0o700, exist_ok=True)
    if data_path is not None and data_path.exists():
        shutil.move(str(data_path), target / f"{entry['id']}.age")
    (target / f"{entry['id']}.txt").write_text(reason + "\n", encoding="utf-8")


def _remove_leftovers(cases_dir: Path) -> None:
    """Staging folders of an import that was interrupted (a crash, a full disk)."""
    for leftover in cases_dir.glob(".import-*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def import_bundle(
    bundle: Path,
    identities: Sequence[x25519.Identity],
    cases_dir: Path,
    progress: Progress | None = None,
) -> ImportResult:
    """File every submission of `bundle` as a case; see the module docstring.

    Cases are built in staging folders without a sync per file; once all are
    built, the file system is synced once and each case is renamed into place,
    so a case in the store is always complete and durable.
    """
    cases_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _remove_leftovers(cases_dir)
    archive, entries = read_bundle(bundle)
    result = ImportResult()
    existing = case_ids(cases_dir)
    staged: list[tuple[str, Path]] = []
    opened_any = False
    try:
        with archive:
            for index, entry in enumerate(entries, start=1):
                if progress:
                    progress(index - 1, len(entries))
                if entry["id"] in existing:
                    result.already.append(entry["id"])
                    continue
                staging = cases_dir / f".import-{secrets.token_hex(8)}"
                outcome = _import_one(
                    archive, entry, identities, cases_dir, staging, first=not opened_any
                )
                if outcome is None:
                    staged.append((entry["id"], staging))
                    opened_any = True
                else:
                    result.quarantined.append((entry["id"], outcome))
        os.sync()  # one sync for every staged case, before any becomes visible
        for case_id, staging in staged:
            staging.rename(cases_dir / case_id)
            result.added.append(case_id)
        fsync_dir(cases_dir)
    finally:
        _remove_leftovers(cases_dir)
    if progress:
        progress(len(entries), len(entries))
    return result


#: Blobs up to this size are checked and decrypted in memory; larger ones stream via files.
IN_MEMORY = 16 * 1024 * 1024


def _import_one(
    archive: tarfile.TarFile,
    entry: dict,
    identities: Sequence[x25519.Identity],
    cases_dir: Path,
    staging: Path,
    *,
    first: bool,
) -> str | None:
    """Build one case in the folder `staging`; return None, or why it was quarantined."""
    spill = staging.with_name(staging.name + ".age")
    plain_spill = staging.with_name(staging.name + ".tar")
    digest = hashlib.sha256()
    with archive.extractfile(member_name(entry["id"])) as src:
        if entry["size"] <= IN_MEMORY:
            blob: bytes | None = src.read(IN_MEMORY + 1)
            digest.update(blob)
        else:
            blob = None
            with spill.open("wb") as out:
                while block := src.read(1 << 20):
                    digest.update(block)
                    out.write(block)

    def quarantine(reason: str) -> str:
        if blob is not None:
            spill.write_bytes(blob)
        _quarantine(cases_dir, entry, spill, reason)
        return reason

    if digest.hexdigest() != entry["sha256"]:
        return quarantine("its sha256 does not match the manifest: changed on the way")
    try:
        if blob is not None:
            plaintext: BinaryIO = io.BytesIO()
            decrypt_stream(io.BytesIO(blob), plaintext, identities)
        else:
            plaintext = plain_spill.open("w+b")
            with spill.open("rb") as src:
                decrypt_stream(src, plaintext, identities)
    except IntakeError as exc:
        if first and "None of the given identities" in str(exc):
            raise IntakeError(
                "The identity cannot open the reports in this bundle; "
                "check --identity (nothing was imported)."
            ) from None
        return quarantine(f"it does not decrypt: {exc}")
    try:
        plaintext.seek(0)
        with plaintext:
            report = extract_container(plaintext, staging, durable=False)
    except IntakeError as exc:
        return quarantine(f"its container is refused: {exc}")
    finally:
        plain_spill.unlink(missing_ok=True)
        spill.unlink(missing_ok=True)
    meta = {
        "case_id": entry["id"],
        "received_on": entry["received_on"],
        "keyring_version": entry["keyring_version"],
        "sha256": entry["sha256"],
    }
    (staging / "case.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    html = render_report(
        "IC-" + entry["id"][:8].upper(),
        entry["received_on"],
        entry["keyring_version"],
        report.document,
    )
    (staging / "report.html").write_text(html, encoding="utf-8")
    return None


def make_ack(bundle: Path, cases_dir: Path) -> dict:
    """The ack for the bundle's submissions that are filed in the case store, hash checked."""
    archive, entries = read_bundle(bundle)
    archive.close()
    filed = case_ids(cases_dir)
    acked = []
    for entry in entries:
        if entry["id"] in filed and load_case(cases_dir / entry["id"]).sha256 == entry["sha256"]:
            acked.append({"id": entry["id"], "sha256": entry["sha256"]})
    return {"format": ACK_FORMAT, "submissions": acked}
