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
import json
import secrets
import shutil
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pyrage import x25519

from intake.crypto.container import extract_container
from intake.crypto.envelope import decrypt_stream
from intake.errors import IntakeError
from intake.fsutil import atomic_write, fsync_dir
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


def import_bundle(
    bundle: Path,
    identities: Sequence[x25519.Identity],
    cases_dir: Path,
    progress: Progress | None = None,
) -> ImportResult:
    cases_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    archive, entries = read_bundle(bundle)
    result = ImportResult()
    existing = case_ids(cases_dir)
    opened_any = False
    with archive:
        for index, entry in enumerate(entries, start=1):
            if progress:
                progress(index - 1, len(entries))
            if entry["id"] in existing:
                result.already.append(entry["id"])
                continue
            staging = cases_dir / f".import-{secrets.token_hex(8)}"
            staging.mkdir(mode=0o700)
            blob_path = staging / "blob.age"
            plain_path = staging / "container.tar"
            try:
                digest = hashlib.sha256()
                with (
                    archive.extractfile(member_name(entry["id"])) as src,
                    blob_path.open("wb") as out,
                ):
                    while block := src.read(1 << 20):
                        digest.update(block)
                        out.write(block)
                if digest.hexdigest() != entry["sha256"]:
                    _quarantine(
                        cases_dir,
                        entry,
                        blob_path,
                        "its sha256 does not match the manifest: changed on the way",
                    )
                    result.quarantined.append((entry["id"], "hash mismatch"))
                    continue
                try:
                    with blob_path.open("rb") as src, plain_path.open("wb") as out:
                        decrypt_stream(src, out, identities)
                except IntakeError as exc:
                    if not opened_any and "None of the given identities" in str(exc):
                        raise IntakeError(
                            "The identity cannot open the reports in this bundle; "
                            "check --identity (nothing was imported)."
                        ) from None
                    _quarantine(cases_dir, entry, blob_path, f"it does not decrypt: {exc}")
                    result.quarantined.append((entry["id"], str(exc)))
                    continue
                opened_any = True
                case_dir = staging / "case"
                try:
                    with plain_path.open("rb") as src:
                        report = extract_container(src, case_dir)
                except IntakeError as exc:
                    _quarantine(cases_dir, entry, blob_path, f"its container is refused: {exc}")
                    result.quarantined.append((entry["id"], str(exc)))
                    continue
                meta = {
                    "case_id": entry["id"],
                    "received_on": entry["received_on"],
                    "keyring_version": entry["keyring_version"],
                    "sha256": entry["sha256"],
                }
                atomic_write(case_dir / "case.json", json.dumps(meta, indent=1).encode())
                html = render_report(
                    "IC-" + entry["id"][:8].upper(),
                    entry["received_on"],
                    entry["keyring_version"],
                    report.document,
                )
                atomic_write(case_dir / "report.html", html.encode("utf-8"))
                case_dir.rename(cases_dir / entry["id"])
                fsync_dir(cases_dir)
                result.added.append(entry["id"])
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        if progress:
            progress(len(entries), len(entries))
    return result


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
