"""Hostile export bundles and return files, each with the exact outcome it must get.

`BUNDLES` maps a name to a builder and an `Expect`: what `intake review
import` must answer (exit status, a fragment of its one sentence, and how
many submissions end up added, not for these identities, quarantined or
refused). The builders need no server: they make real reports (the
container the server writes, age-encrypted to a reviewer), real junk (a
well-formed age header with random stanzas) and tar files byte by byte where
`tarfile` cannot write the attack (GNU and PAX sparse members).

`ACKS` maps a name to a builder of a return file and an `AckExpect`: what
`intake purge` must answer. Those builders take what a real export and a
real import produced (`AckWorld`), so that a proof is either genuine or
forged in exactly one way.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import os
import secrets
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyrage import x25519

from intake.crypto.container import Attachment, ContainerReader
from intake.crypto.envelope import encrypt_bytes
from intake.transfer import proof
from intake.transfer.ackfile import Opening, Reply, build_ack
from intake.transfer.bundle import MAX_BUNDLE_SUBMISSIONS, MAX_MANIFEST

MiB = 1024 * 1024
DAY = "2026-11-28"

# -- tar members, including what `tarfile` will not write ------------------------------------


@dataclass
class Member:
    """One tar member: `data` is what the file holds; `header` overrides its header bytes."""

    name: str
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    linkname: str = ""
    pax: dict[str, str] | None = None
    header: bytes | None = None  # a hand-made header (and any extension), used as it is


def _checksum(header: bytearray) -> bytes:
    header[148:156] = b" " * 8
    return b"%06o\x00 " % sum(header)


def gnu_sparse_header(name: str, real_size: int) -> bytes:
    """An old-GNU sparse member ('S') holding no data that expands to `real_size` bytes."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = 0, 0, 0o600
    info.type = tarfile.GNUTYPE_SPARSE
    header = bytearray(info.tobuf(format=tarfile.GNU_FORMAT))
    # One sparse region: 0 bytes of data at the very end; the rest is a hole.
    header[386:398] = b"%011o\x00" % real_size
    header[398:410] = b"%011o\x00" % 0
    header[482:483] = b"\x00"  # no extension headers
    header[483:495] = b"%011o\x00" % real_size
    header[148:156] = _checksum(header)
    return bytes(header)


def pax_sparse_member(name: str, real_size: int) -> Member:
    """A PAX 1.0 sparse member (``GNU.sparse.*``): a tiny map, a huge expanded size."""
    sparse_map = f"1\n{real_size}\n0\n".encode()
    sparse_map += bytes(-len(sparse_map) % 512)
    return Member(
        name="GNUSparseFile.0/" + name.rsplit("/", 1)[-1],
        data=sparse_map,
        pax={
            "GNU.sparse.major": "1",
            "GNU.sparse.minor": "0",
            "GNU.sparse.name": name,
            "GNU.sparse.realsize": str(real_size),
        },
    )


def tar_bytes(members: list[Member]) -> bytes:
    buffer = io.BytesIO()
    pax = any(m.pax for m in members)
    with tarfile.open(
        fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT if pax else tarfile.USTAR_FORMAT
    ) as tar:
        for member in members:
            if member.header is not None:
                tar.fileobj.write(member.header + member.data + bytes(-len(member.data) % 512))
                tar.offset += len(member.header) + len(member.data) + (-len(member.data) % 512)
                continue
            info = tarfile.TarInfo(member.name)
            info.type, info.linkname, info.mtime, info.mode = member.type, member.linkname, 0, 0o600
            info.size = len(member.data) if member.type == tarfile.REGTYPE else 0
            if member.pax:
                info.pax_headers = member.pax
            tar.addfile(info, io.BytesIO(member.data) if info.size else None)
    return buffer.getvalue()


# -- reports, junk and bundles ----------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode().rstrip("=")


def junk_age_file(payload: int = 4096) -> bytes:
    """A well-formed age header with random X25519 stanzas, then random bytes."""
    lines = ["age-encryption.org/v1"]
    for _ in range(2):
        lines += [f"-> X25519 {_b64(os.urandom(32))}", _b64(os.urandom(32))]
    lines.append(f"--- {_b64(os.urandom(32))}")
    return ("\n".join(lines) + "\n").encode() + os.urandom(payload)


def container(fields: dict[str, Any] | None = None, files: dict[str, bytes] | None = None,
              lang: str = "en") -> bytes:
    """The container the server writes, for `fields` and `files`."""
    attachments = [
        Attachment(name, "application/octet-stream", len(data), hashlib.sha256(data).hexdigest(),
                   lambda data=data: io.BytesIO(data))
        for name, data in (files or {}).items()
    ]
    return ContainerReader(lang, fields or {"narrative": "a report"}, attachments).read()


def raw_container(report: dict[str, Any], extra: list[Member]) -> bytes:
    """A container made by hand, as a tampered browser could: report.json, then `extra`."""
    document = json.dumps(report).encode()
    return tar_bytes([Member("report.json", document), *extra])


@dataclass
class Kit:
    """Reviewer keys and a folder; builds reports, junk and bundles."""

    directory: Path
    reviewers: list[x25519.Identity] = field(
        default_factory=lambda: [x25519.Identity.generate() for _ in range(2)]
    )
    stranger: x25519.Identity = field(default_factory=x25519.Identity.generate)

    def recipient(self, index: int = 0) -> str:
        return str(self.reviewers[index].to_public())

    def identity_file(self, who: x25519.Identity | None = None, name: str = "reviewer.key") -> Path:
        who = who or self.reviewers[0]
        path = self.directory / name
        path.write_text(f"# public key: {who.to_public()}\n{who}\n")
        path.chmod(0o600)
        return path

    def report(self, narrative: str = "a report", to: list[str] | None = None, **kw: Any) -> bytes:
        return encrypt_bytes(container({"narrative": narrative}, **kw),
                             to or [self.recipient(0), self.recipient(1)])

    def sealed(self, plaintext: bytes) -> bytes:
        return encrypt_bytes(plaintext, [self.recipient(0), self.recipient(1)])

    @staticmethod
    def entry(blob: bytes, submission_id: str | None = None) -> dict[str, Any]:
        return {
            "id": submission_id or secrets.token_hex(16),
            "received_on": DAY,
            "size": len(blob),
            "sha256": hashlib.sha256(blob).hexdigest(),
            "keyring_version": 1,
        }

    def challenges(self, for_reviewers: tuple[int, ...] = (0, 1)) -> list[dict[str, str]]:
        return [
            {
                "recipient_id": f"r{i}",
                "ciphertext": base64.b64encode(
                    proof.encrypt_challenge(proof.new_challenge(), self.recipient(i))
                ).decode(),
            }
            for i in for_reviewers
        ]

    def parts(
        self, blobs: list[bytes], *, challenges_for: tuple[int, ...] = (0, 1)
    ) -> tuple[dict[str, Any], list[Member]]:
        """A manifest and the members of a bundle of `blobs`, to change before `write`."""
        entries = [self.entry(blob) for blob in blobs]
        manifest = {
            "format": "intake-export/v1",
            "bundle": secrets.token_hex(16),
            "submissions": entries,
            "challenges": self.challenges(challenges_for),
        }
        members = [
            Member(f"submissions/{e['id']}.age", blob)
            for e, blob in zip(entries, blobs, strict=True)
        ]
        return manifest, members

    def write(self, manifest: dict[str, Any] | bytes, members: list[Member],
              name: str = "bundle.tar") -> Path:
        data = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
        path = self.directory / name
        path.write_bytes(tar_bytes([Member("manifest.json", data), *members]))
        return path

    def bundle(self, blobs: list[bytes], **kw: Any) -> Path:
        manifest, members = self.parts(blobs, **kw)
        return self.write(manifest, members)


# -- the bundle corpus ------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """What `intake review import` must do with a bundle."""

    exit_status: int
    message: str  # a fragment of standard error
    added: int = 0
    not_for_these_identities: int = 0
    quarantined: int = 0
    refused: int = 0
    identity: str = "reviewer"  # "reviewer" or "stranger"
    cases: int | None = None  # case folders made, when follow-ups go inside one (else added)


def _junk_first(kit: Kit) -> Path:
    return kit.bundle([junk_age_file(), kit.report("one"), kit.report("two")])


def _only_junk(kit: Kit) -> Path:
    return kit.bundle([junk_age_file(), junk_age_file()], challenges_for=())


def _only_junk_but_a_challenge(kit: Kit) -> Path:
    return kit.bundle([junk_age_file(), junk_age_file()])


def _a_stranger_s_report(kit: Kit) -> Path:
    stranger = str(kit.stranger.to_public())
    return kit.bundle([kit.report("theirs", to=[stranger]), kit.report("ours")])


def _wrong_identity(kit: Kit) -> Path:
    return kit.bundle([kit.report("one"), kit.report("two")])


def _hash_changed(kit: Kit) -> Path:
    manifest, members = kit.parts([kit.report("changed"), kit.report("intact")])
    manifest["submissions"][0]["sha256"] = "0" * 64
    return kit.write(manifest, members)


def _payload_cut_short(kit: Kit) -> Path:
    blob = kit.report("cut", files={"big.bin": os.urandom(200_000)})
    return kit.bundle([blob[: len(blob) - 70_000], kit.report("intact")])


def _payload_altered(kit: Kit) -> Path:
    blob = bytearray(kit.report("altered", files={"big.bin": os.urandom(100_000)}))
    blob[-200] ^= 1
    return kit.bundle([bytes(blob), kit.report("intact")])


def _header_mac_broken(kit: Kit) -> Path:
    """Made for this reviewer (the stanza opens), then its header altered: opened, damaged."""
    blob = bytearray(kit.report("mac"))
    mac = blob.index(b"\n--- ") + 6
    blob[mac] = ord("A") if blob[mac] != ord("A") else ord("B")
    return kit.bundle([bytes(blob), kit.report("intact")])


def _a_link_in_the_container(kit: Kit) -> Path:
    report = {"schema": "intake-report/v1", "lang": "en", "fields": {}, "attachments": []}
    link = Member("attachments/01-x", type=tarfile.SYMTYPE, linkname="/etc/passwd")
    return kit.bundle([kit.sealed(raw_container(report, [link])), kit.report("intact")])


def _categories_is_a_number(kit: Kit) -> Path:
    blob = encrypt_bytes(container({"categories": 5}), [kit.recipient(0)])
    return kit.bundle([blob, kit.report("intact")])


def _a_field_the_form_does_not_have(kit: Kit) -> Path:
    blob = encrypt_bytes(container({"evil\x1b]52;c;aGk=\x07": "x"}), [kit.recipient(0)])
    return kit.bundle([blob, kit.report("intact")])


def _not_a_tar(kit: Kit) -> Path:
    path = kit.directory / "bundle.tar"
    path.write_bytes(os.urandom(5000))
    return path


def _empty(kit: Kit) -> Path:
    path = kit.directory / "bundle.tar"
    path.write_bytes(b"")
    return path


def _cut_inside_a_blob(kit: Kit) -> Path:
    path = kit.bundle([kit.report("one"), kit.report("two", files={"f": os.urandom(50_000)})])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 30_000])
    return path


def _cut_inside_the_manifest(kit: Kit) -> Path:
    path = kit.bundle([kit.report("one")])
    path.write_bytes(path.read_bytes()[:700])
    return path


def _cut_at_a_member_boundary(kit: Kit) -> Path:
    manifest, members = kit.parts([kit.report("one"), kit.report("two")])
    path = kit.write(manifest, members[:1])
    # Without its end-of-archive marker either: as if the copy stopped between two files.
    data = path.read_bytes().rstrip(b"\x00")
    path.write_bytes(data + bytes(-len(data) % 512))
    return path


def _no_manifest(kit: Kit) -> Path:
    _, members = kit.parts([kit.report("one")])
    path = kit.directory / "bundle.tar"
    path.write_bytes(tar_bytes(members))
    return path


def _manifest_not_first(kit: Kit) -> Path:
    manifest, members = kit.parts([kit.report("one")])
    path = kit.directory / "bundle.tar"
    path.write_bytes(tar_bytes([*members, Member("manifest.json", json.dumps(manifest).encode())]))
    return path


def _manifest_too_large(kit: Kit) -> Path:
    manifest, members = kit.parts([kit.report("one")])
    data = json.dumps(manifest).encode()
    return kit.write(data + b" " * (MAX_MANIFEST + 1 - len(data)), members)


def _manifest_not_json(kit: Kit) -> Path:
    _, members = kit.parts([kit.report("one")])
    return kit.write(b"{\"format\": \"intake-export/v1\", \"submissions\": [", members)


def _manifest_nested_deep(kit: Kit) -> Path:
    _, members = kit.parts([kit.report("one")])
    return kit.write(b"[" * 200_000 + b"]" * 200_000, members)


def _manifest_huge_number(kit: Kit) -> Path:
    manifest, members = kit.parts([kit.report("one")])
    data = json.dumps(manifest).encode().replace(b'"keyring_version": 1', b'"keyring_version": '
                                                 + b"9" * 50_000)
    return kit.write(data, members)


def _manifest_extra_key(kit: Kit) -> Path:
    manifest, members = kit.parts([kit.report("one")])
    manifest["submissions"][0]["source_ip"] = "192.0.2.1"
    return kit.write(manifest, members)


def _manifest_repeated_key(kit: Kit) -> Path:
    manifest, members = kit.parts([kit.report("one")])
    data = json.dumps(manifest).encode().replace(b'"format": ', b'"bundle": "x", "format": ', 1)
    return kit.write(data, members)


def _id_ends_in_a_newline(kit: Kit) -> Path:
    manifest, members = kit.parts([kit.report("one")])
    manifest["submissions"][0]["id"] += "\n"
    return kit.write(manifest, members)


def _day_in_arabic_indic_digits(kit: Kit) -> Path:
    manifest, members = kit.parts([kit.report("one")])
    manifest["submissions"][0]["received_on"] = "٢٠٢٦-١١-٢٨"
    return kit.write(manifest, members)


def _size_is_true(kit: Kit) -> Path:
    manifest, members = kit.parts([kit.report("one")])
    manifest["submissions"][0]["size"] = True
    return kit.write(manifest, members)


def _too_many_entries(kit: Kit) -> Path:
    manifest, members = kit.parts([kit.report("one")])
    template = manifest["submissions"][0]
    manifest["submissions"] = [
        {**template, "id": f"{i:032x}"} for i in range(MAX_BUNDLE_SUBMISSIONS + 1)
    ]
    return kit.write(manifest, members)


def _a_submission_listed_twice(kit: Kit) -> Path:
    manifest, members = kit.parts([kit.report("one")])
    manifest["submissions"].append(dict(manifest["submissions"][0]))
    return kit.write(manifest, members)


def _a_member_twice(kit: Kit) -> Path:
    manifest, members = kit.parts([kit.report("one")])
    return kit.write(manifest, [*members, members[0]])


def _a_member_not_listed(kit: Kit) -> Path:
    manifest, members = kit.parts([kit.report("one")])
    return kit.write(manifest, [*members, Member(f"submissions/{'f' * 32}.age", b"junk")])


def _path_tricks(kit: Kit) -> Path:
    manifest, members = kit.parts([kit.report("one")])
    tricks = [Member("../../evil", b"evil"), Member("/tmp/evil-abs", b"evil"),
              Member("submissions/../../evil.age", b"evil")]
    return kit.write(manifest, [*members, *tricks])


def _a_missing_member(kit: Kit) -> Path:
    manifest, members = kit.parts([kit.report("one"), kit.report("two")])
    return kit.write(manifest, members[:1])


def _size_not_as_listed(kit: Kit) -> Path:
    manifest, members = kit.parts([kit.report("one")])
    manifest["submissions"][0]["size"] += 1
    return kit.write(manifest, members)


def _as_link(kind: bytes) -> Callable[[Kit], Path]:
    def build(kit: Kit) -> Path:
        manifest, members = kit.parts([kit.report("one")])
        members[0] = Member(members[0].name, type=kind, linkname="/etc/passwd")
        return kit.write(manifest, members)

    return build


def gnu_sparse_bundle(kit: Kit, real_size: int = 200 * MiB) -> Path:
    """2.5 KB on disk: a manifest, and a GNU sparse member that claims `real_size` bytes."""
    manifest, members = kit.parts([b"x"], challenges_for=())
    name = members[0].name
    manifest["submissions"][0]["size"] = real_size
    path = kit.write(manifest, [Member(name, header=gnu_sparse_header(name, real_size))])
    # Without tarfile's padding to 10 KiB: three blocks and the end-of-archive marker.
    data = path.read_bytes()[: 3 * 512]
    path.write_bytes(data + bytes(1024))
    return path


def _pax_sparse(kit: Kit) -> Path:
    manifest, members = kit.parts([kit.report("one")])
    manifest["submissions"][0]["size"] = 200 * MiB
    members[0] = pax_sparse_member(members[0].name, 200 * MiB)
    return kit.write(manifest, members)


def _extension_header(kind: bytes, size: int) -> bytes:
    info = tarfile.TarInfo("././@LongLink")
    info.type, info.size, info.mtime = kind, size, 0
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def _a_long_name_of_2_gib(kit: Kit) -> Path:
    """A GNU long-name header that would make tarfile read 2 GiB into memory."""
    manifest, members = kit.parts([kit.report("one")])
    members.insert(0, Member("x", header=_extension_header(tarfile.GNUTYPE_LONGNAME, 2**31)))
    return kit.write(manifest, members)


def _a_chain_of_pax_headers(kit: Kit) -> Path:
    manifest, members = kit.parts([kit.report("one")])
    record = b"20 comment=xxxxxxxx\n"
    chain = [Member("x", data=record, header=_extension_header(tarfile.XHDTYPE, len(record)))
             for _ in range(6)]
    return kit.write(manifest, [*chain, *members])


def _challenge_not_base64(kit: Kit) -> Path:
    manifest, members = kit.parts([kit.report("one")])
    manifest["challenges"][0]["ciphertext"] = "not base64!"
    return kit.write(manifest, members)


def _unknown_manifest_field(kit: Kit) -> Path:
    manifest, members = kit.parts([kit.report("one")])
    manifest["source_links"] = {"a": "b"}
    return kit.write(manifest, members)


# -- threads.age: which submissions come from one source ---------------------------------------


def sealed_threads(kit: Kit, document: dict[str, Any] | bytes,
                   to: list[str] | None = None) -> tuple[Member, dict[str, Any]]:
    """threads.age sealing `document` (to both reviewers, or `to`), and its manifest listing."""
    plaintext = document if isinstance(document, bytes) else json.dumps(document).encode()
    sealed = encrypt_bytes(plaintext, to or [kit.recipient(0), kit.recipient(1)])
    return Member("threads.age", sealed), {"size": len(sealed),
                                           "sha256": hashlib.sha256(sealed).hexdigest()}


def with_threads(kit: Kit, manifest: dict[str, Any], members: list[Member],
                 document: dict[str, Any] | bytes, *, to: list[str] | None = None) -> Path:
    """The bundle with a threads.age sealing `document`, listed in the manifest."""
    member, manifest["threads"] = sealed_threads(kit, document, to)
    return kit.write(manifest, [member, *members])


def a_thread(submission_id: str, thread: str | None = None) -> dict[str, str]:
    return {"id": submission_id, "thread": thread or "a" * 32,
            "reply_to": str(x25519.Identity.generate().to_public())}


def _threads_two_from_one_source(kit: Kit) -> Path:
    manifest, members = kit.parts([kit.report("first"), kit.report("more")])
    ids = [e["id"] for e in manifest["submissions"]]
    one = a_thread(ids[0])
    return with_threads(kit, manifest, members, {"format": "intake-threads/v1", "submissions": [
        one, {**one, "id": ids[1]}]})


def _threads_hash_changed(kit: Kit) -> Path:
    manifest, members = kit.parts([kit.report("one")])
    member, manifest["threads"] = sealed_threads(kit, {
        "format": "intake-threads/v1", "submissions": [a_thread(manifest["submissions"][0]["id"])]})
    manifest["threads"]["sha256"] = "0" * 64
    return kit.write(manifest, [member, *members])


def _threads_name_another_bundles_submission(kit: Kit) -> Path:
    manifest, members = kit.parts([kit.report("one")])
    return with_threads(kit, manifest, members, {"format": "intake-threads/v1", "submissions": [
        a_thread(secrets.token_hex(16))]})


def _threads_reply_to_not_a_key(kit: Kit) -> Path:
    manifest, members = kit.parts([kit.report("one")])
    bad = {**a_thread(manifest["submissions"][0]["id"]), "reply_to": "age1\x1b[2J" + "q" * 54}
    return with_threads(kit, manifest, members, {"format": "intake-threads/v1",
                                                 "submissions": [bad]})


def _threads_not_json(kit: Kit) -> Path:
    manifest, members = kit.parts([kit.report("one")])
    return with_threads(kit, manifest, members, b"[" * 100_000)


def _threads_for_a_stranger(kit: Kit) -> Path:
    manifest, members = kit.parts([kit.report("first"), kit.report("more")])
    ids = [e["id"] for e in manifest["submissions"]]
    one = a_thread(ids[0])
    return with_threads(kit, manifest, members, {"format": "intake-threads/v1", "submissions": [
        one, {**one, "id": ids[1]}]}, to=[str(kit.stranger.to_public())])


def _threads_listed_but_missing(kit: Kit) -> Path:
    manifest, members = kit.parts([kit.report("one")])
    manifest["threads"] = {"size": 300, "sha256": "0" * 64}
    return kit.write(manifest, members)


AGAIN = "ask the admin to export again"

BUNDLES: dict[str, tuple[Callable[[Kit], Path], Expect]] = {
    # One junk or foreign submission never blocks the others (issue 10, item 1).
    "junk first": (_junk_first, Expect(3, "1 not for these identities", added=2,
                                       not_for_these_identities=1)),
    "a stranger's report": (_a_stranger_s_report, Expect(3, "1 not for these identities",
                                                         added=1, not_for_these_identities=1)),
    "only junk, no challenge for us": (_only_junk, Expect(
        1, "cannot open any report in this bundle", not_for_these_identities=0)),
    "only junk, a challenge for us": (_only_junk_but_a_challenge, Expect(
        3, "2 not for these identities", not_for_these_identities=2)),
    "the wrong identity": (_wrong_identity, Expect(
        1, "cannot open any report in this bundle", identity="stranger")),
    # Opened, then damaged: quarantined as it arrived.
    "a hash that changed": (_hash_changed, Expect(4, "does not match the manifest", added=1,
                                                   quarantined=1)),
    "a payload cut short": (_payload_cut_short, Expect(4, "does not decrypt", added=1,
                                                       quarantined=1)),
    "a payload altered": (_payload_altered, Expect(4, "does not decrypt", added=1,
                                                   quarantined=1)),
    "a header MAC broken": (_header_mac_broken, Expect(4, "does not decrypt", added=1,
                                                       quarantined=1)),
    # Opened, but breaks the rules: refused with the reason.
    "a link in the container": (_a_link_in_the_container, Expect(4, "container is refused",
                                                                 added=1, refused=1)),
    "categories is a number": (_categories_is_a_number, Expect(4, "'categories'", added=1,
                                                               refused=1)),
    "a field the form does not have": (_a_field_the_form_does_not_have, Expect(
        4, "the form does not have ('evil\\x1b]52;c;aGk=\\x07')", added=1, refused=1)),
    # The bundle as a whole: one sentence, nothing imported.
    "not a tar": (_not_a_tar, Expect(1, "not an intake export bundle")),
    "an empty file": (_empty, Expect(1, "is empty")),
    "cut inside a blob": (_cut_inside_a_blob, Expect(1, "cut short")),
    "cut inside the manifest": (_cut_inside_the_manifest, Expect(1, "cut short")),
    "cut between two members": (_cut_at_a_member_boundary, Expect(1, "lacks submissions/")),
    "no manifest": (_no_manifest, Expect(1, "does not start with manifest.json")),
    "the manifest last": (_manifest_not_first, Expect(1, "does not start with manifest.json")),
    "a manifest too large": (_manifest_too_large, Expect(1, "larger than any export writes")),
    "a manifest that is not JSON": (_manifest_not_json, Expect(1, "not valid JSON")),
    "a manifest nested 200,000 deep": (_manifest_nested_deep, Expect(1, "not valid JSON")),
    "a 50,000-digit number": (_manifest_huge_number, Expect(1, "not valid JSON")),
    "an entry with an extra field": (_manifest_extra_key, Expect(1, "malformed submission")),
    "a key repeated in the manifest": (_manifest_repeated_key, Expect(1, "repeats a key")),
    "an id ending in a newline": (_id_ends_in_a_newline, Expect(1, "malformed submission")),
    "a day in Arabic-Indic digits": (_day_in_arabic_indic_digits, Expect(
        1, "malformed submission")),
    "a size that is true": (_size_is_true, Expect(1, "malformed submission")),
    "too many entries": (_too_many_entries, Expect(1, f"more than {MAX_BUNDLE_SUBMISSIONS}")),
    "a submission listed twice": (_a_submission_listed_twice, Expect(1, "lists a submission "
                                                                     "twice")),
    "a member twice": (_a_member_twice, Expect(1, "twice; it was refused")),
    "a member not listed": (_a_member_not_listed, Expect(1, "does not list")),
    "path tricks": (_path_tricks, Expect(1, "does not list ('../../evil')")),
    "a missing member": (_a_missing_member, Expect(1, "lacks submissions/")),
    "a size not as listed": (_size_not_as_listed, Expect(1, "not the size its manifest gives")),
    "a symlink": (_as_link(tarfile.SYMTYPE), Expect(1, "holds a link")),
    "a hard link": (_as_link(tarfile.LNKTYPE), Expect(1, "holds a link")),
    "a character device": (_as_link(tarfile.CHRTYPE), Expect(1, "special or sparse file")),
    "a FIFO": (_as_link(tarfile.FIFOTYPE), Expect(1, "special or sparse file")),
    "a directory": (_as_link(tarfile.DIRTYPE), Expect(1, "special or sparse file")),
    "a contiguous file": (_as_link(tarfile.CONTTYPE), Expect(1, "special or sparse file")),
    "a GNU sparse member of 200 MiB": (gnu_sparse_bundle, Expect(1, "special or sparse file")),
    "a PAX sparse member of 200 MiB": (_pax_sparse, Expect(1, "sparse file")),
    "a long name of 2 GiB": (_a_long_name_of_2_gib, Expect(1, "oversized extended tar header")),
    "a chain of PAX headers": (_a_chain_of_pax_headers, Expect(1, "chain of extended tar headers")),
    "a challenge that is not base64": (_challenge_not_base64, Expect(1, "malformed challenge")),
    "a manifest field this version does not know": (_unknown_manifest_field, Expect(
        1, "fields this version does not know")),
    # threads.age: who sent what, sealed; damaged or hostile, the bundle is refused whole.
    "two submissions from one source": (_threads_two_from_one_source, Expect(
        0, "1 of those added came from a source with a case here", added=2, cases=1)),
    "a threads.age whose hash changed": (_threads_hash_changed, Expect(
        1, "threads.age does not match its manifest")),
    "a threads.age naming another bundle's submission": (
        _threads_name_another_bundles_submission, Expect(1, "threads.age is malformed")),
    "a threads.age whose reply key is not a key": (_threads_reply_to_not_a_key, Expect(
        1, "threads.age is malformed")),
    "a threads.age nested 100,000 deep": (_threads_not_json, Expect(
        1, "threads.age is malformed")),
    "a threads.age for someone else": (_threads_for_a_stranger, Expect(
        0, "your identity cannot open that part", added=2)),
    "a threads.age listed but missing": (_threads_listed_but_missing, Expect(
        1, "lacks threads.age")),
}


# -- the return-file corpus -------------------------------------------------------------------


@dataclass
class AckWorld:
    """What a real export and import left: the bundle's manifest and the reviewers' openings."""

    manifest: dict[str, Any]
    openings: dict[str, Opening]  # recipient id -> what that reviewer's identity opened
    other_bundle: str  # a bundle id the server also knows (a second export)

    @property
    def acked(self) -> list[tuple[str, str]]:
        return [(e["id"], e["sha256"]) for e in self.manifest["submissions"]]

    def signed(self, reviewer: str = "r0", submissions: list[tuple[str, str]] | None = None,
               replies: list[Reply] | None = None) -> dict[str, Any]:
        acked = self.acked if submissions is None else submissions
        return build_ack([self.openings[reviewer]], acked, replies or [])


@dataclass(frozen=True)
class AckExpect:
    """What `intake purge` must do with a return file, at quorum 1."""

    exit_status: int
    message: str  # a fragment of standard error
    deleted: int = 0  # of the bundle's two submissions
    accept_unproven: bool = False
    quorum: int = 1


def _v2_without_proof(world: AckWorld) -> dict[str, Any]:
    """The forgery issue 10 describes: the hashes copied from the manifest."""
    return {"format": "intake-ack/v2", "reviewer": "r0", "proofs": [],
            "submissions": [{"id": i, "sha256": s} for i, s in world.acked], "replies": []}


def _random_signature(world: AckWorld) -> dict[str, Any]:
    document = _v2_without_proof(world)
    document["proofs"] = [{"bundle": world.manifest["bundle"], "recipient_id": "r0",
                           "signature": base64.b64encode(os.urandom(64)).decode()}]
    return document


def _proof_for_another_bundle(world: AckWorld) -> dict[str, Any]:
    document = world.signed()
    document["proofs"][0]["bundle"] = world.other_bundle
    return document


def _proof_for_an_unknown_bundle(world: AckWorld) -> dict[str, Any]:
    document = world.signed()
    document["proofs"][0]["bundle"] = secrets.token_hex(16)
    return document


def _proof_claimed_for_another_reviewer(world: AckWorld) -> dict[str, Any]:
    document = world.signed()
    document["proofs"][0]["recipient_id"] = "r1"
    return document


def _proof_lifted_onto_other_submissions(world: AckWorld) -> dict[str, Any]:
    """A genuine proof from an ack of one submission, pasted into an ack of both."""
    lifted = world.signed(submissions=world.acked[:1])["proofs"]
    document = world.signed()
    document["proofs"] = lifted
    return document


def _v1(world: AckWorld) -> dict[str, Any]:
    return {"format": "intake-ack/v1",
            "submissions": [{"id": i, "sha256": s} for i, s in world.acked]}


def _unknown_submission(world: AckWorld) -> dict[str, Any]:
    return world.signed(submissions=[*world.acked, (secrets.token_hex(16), "a" * 64)])


def _hash_mismatch(world: AckWorld) -> dict[str, Any]:
    (first, _), second = world.acked
    return world.signed(submissions=[(first, "b" * 64), second])


def _a_reply_for_an_unknown_thread(world: AckWorld) -> dict[str, Any]:
    stranger = str(x25519.Identity.generate().to_public())
    reply = Reply(secrets.token_hex(16), secrets.token_hex(16),
                  base64.b64encode(encrypt_bytes(b"hello", [stranger])).decode())
    return world.signed(replies=[reply])


def _a_reply_that_is_not_age(world: AckWorld) -> dict[str, Any]:
    reply = Reply(secrets.token_hex(16), secrets.token_hex(16),
                  base64.b64encode(os.urandom(300)).decode())
    return world.signed(replies=[reply])


def _malformed(change: Callable[[dict[str, Any]], None]) -> Callable[[AckWorld], dict[str, Any]]:
    def build(world: AckWorld) -> dict[str, Any]:
        document = copy.deepcopy(world.signed())
        change(document)
        return document

    return build


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        target = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


_REPLY = {"reply_id": "1" * 32, "thread": "2" * 32, "ciphertext": "YWdl"}

ACKS: dict[str, tuple[Callable[[AckWorld], dict[str, Any]], AckExpect]] = {
    "hashes copied from the manifest, no proof": (_v2_without_proof, AckExpect(
        1, "carries no valid reviewer proof")),
    "a random signature": (_random_signature, AckExpect(1, "(1 forged or altered, 0 for")),
    "a proof for another bundle": (_proof_for_another_bundle, AckExpect(
        1, "(1 forged or altered, 0 for")),
    "a proof for a bundle the server never made": (_proof_for_an_unknown_bundle, AckExpect(
        1, "(0 forged or altered, 1 for bundles this server does not know")),
    "a proof claimed for another reviewer": (_proof_claimed_for_another_reviewer, AckExpect(
        1, "(1 forged or altered, 0 for")),
    "a genuine proof lifted onto more submissions": (_proof_lifted_onto_other_submissions,
                                                     AckExpect(1, "(1 forged or altered, 0 for")),
    "v1 without --accept-unproven": (_v1, AckExpect(1, "carries no proof")),
    "v1 at quorum 2": (_v1, AckExpect(1, "counts only with quorum 1", accept_unproven=True,
                                      quorum=2)),
    "v1 accepted": (_v1, AckExpect(0, "proves nothing", deleted=2, accept_unproven=True)),
    "an unknown submission": (_unknown_submission, AckExpect(1, "unknown here", deleted=2)),
    "a hash that does not match": (_hash_mismatch, AckExpect(1, "hash does not match",
                                                             deleted=1)),
    # The proof holds, so the acks count; the reply has nowhere to go, and says so.
    "a reply for a thread the server does not have": (_a_reply_for_an_unknown_thread, AckExpect(
        1, "1 for a mailbox this server does not have", deleted=2)),
    "a reply that is not an age file": (_a_reply_that_is_not_age, AckExpect(
        1, "1 not an age file", deleted=2)),
    "a reply without its thread": (_malformed(_set(("replies",), [
        {"reply_id": "1" * 32, "ciphertext": "YWdl"}])), AckExpect(1, "malformed reply")),
    "a reply id with a newline": (_malformed(_set(("replies",), [
        {**_REPLY, "reply_id": "1" * 32 + "\n"}])), AckExpect(1, "malformed reply")),
    "a reply too large": (_malformed(_set(("replies",), [
        {**_REPLY, "ciphertext": "A" * (97 * 1024)}])), AckExpect(1, "malformed reply")),
    "a reply twice": (_malformed(_set(("replies",), [_REPLY, _REPLY])),
                      AckExpect(1, "carries a reply twice")),
    "a reviewer id with an escape": (_malformed(_set(("reviewer",), "r0\x1b[2K")),
                                     AckExpect(1, "malformed reviewer id")),
    "an extra field": (_malformed(_set(("note",), "x")), AckExpect(1, "exactly its five fields")),
    "an id in Arabic-Indic digits": (_malformed(_set(("submissions",), [
        {"id": "١" * 32, "sha256": "a" * 64}])), AckExpect(1, "malformed submission entry")),
    "a signature of the wrong length": (_malformed(_set(("proofs", 0, "signature"), "AAAA")),
                                        AckExpect(1, "malformed proof")),
}
