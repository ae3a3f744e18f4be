"""Attachments are handled as hostile: re-encoded, shown as text, or only saved.

Against the desk app with its real image subprocess: an image comes back as
a PNG that carries no EXIF, GPS or text (read back and checked), while the
page lists what was removed; a decompression bomb, a damaged image and one
that would exhaust memory are refused with one sentence; text is escaped;
everything else can only be saved as octet-stream; and no view changes a
byte of the original or writes anything into the case folder.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from pathlib import Path

import pytest
from desk_support import (
    CAMERA,
    GPS_DECIMAL,
    desk_client,
    jpeg_with_gps,
    png_bomb,
    png_chunk_types,
    write_case,
)
from markupsafe import escape
from PIL import Image

from intake.review.desk.images import Limits

FIELDS = {"narrative": "Photos of the message and the phone.", "country": "LB"}


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file of the case folders under `folder`: its SHA-256 and its modification time.

    The case store's database (cases.db and its WAL) sits beside the case folders and is
    written by the store (its index, the triage); only the folders are the record.
    """
    return {
        str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                     p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not (p.parent == folder and p.name.startswith("cases.db"))
    }


@pytest.fixture
def cases(tmp_path):
    folder = tmp_path / "cases"
    folder.mkdir()
    return folder


def page_text(answer) -> str:
    assert answer.status_code == 200, answer.status_code
    return answer.get_data(as_text=True)


def test_an_image_is_shown_as_a_png_without_its_exif_gps_and_the_page_lists_them(cases):
    photo = jpeg_with_gps()
    assert b"Pixel 7 Pro" in photo and b"checkpoint" in photo  # the metadata is really there
    case_id = write_case(cases, FIELDS, files=[("IMG_2041.jpg", photo, "image/jpeg")])
    desk = desk_client(cases)
    page = page_text(desk.get(f"/en/cases/{case_id}/attachments/1"))
    answer = desk.get(f"/en/cases/{case_id}/attachments/1/image.png")
    assert answer.status_code == 200 and answer.mimetype == "image/png"
    png = answer.get_data()
    # Only pixels: no eXIf, tEXt, zTXt, iTXt, iCCP, tIME chunk can be in it.
    assert set(png_chunk_types(png)) <= {b"IHDR", b"IDAT", b"IEND"}, png_chunk_types(png)
    for marker in (b"Pixel", b"Google", b"checkpoint", b"Exif", b"GPS"):
        assert marker not in png
    shown = Image.open(io.BytesIO(png))
    assert shown.size == (640, 480)
    assert dict(shown.getexif()) == {} and shown.info == {}
    red, green, blue = shown.getpixel((300, 20))  # the same picture: red, with white dots
    assert red > 150 and green < 100 and blue < 100
    # The page keeps, as evidence, what was removed: the camera and the place.
    assert f'(latitude, longitude): <bdi dir="ltr" class="mono">{GPS_DECIMAL}</bdi>' in page
    assert CAMERA in page and "taken at the checkpoint" in page
    assert "Metadata removed from the shown copy" in page
    assert "still has the SHA-256 recorded at import" in page


def test_hostile_metadata_is_shown_as_inert_text(cases):
    from PIL.PngImagePlugin import PngInfo

    text = PngInfo()
    text.add_itxt("Author", "<script>alert(1)</script>\u202egpj.exe")
    text.add_text("Comment", "\x1b[2J" + "A" * 5000)  # ESC, and far too long
    out = io.BytesIO()
    Image.new("RGB", (40, 30), "white").save(out, "PNG", pnginfo=text)
    case_id = write_case(cases, FIELDS, files=[("x.png", out.getvalue(), "image/png")])
    page = page_text(desk_client(cases).get(f"/en/cases/{case_id}/attachments/1"))
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "\u202e" not in page and "\x1b" not in page
    assert "[U+202E]" in page and "[U+001B]" in page
    assert "A" * 301 not in page and "A" * 290 in page  # bounded


def test_a_decompression_bomb_is_refused_before_decoding(cases):
    bomb = png_bomb(40000)  # 1.6 billion pixels in about 200 KB
    assert len(bomb) < 400_000
    case_id = write_case(cases, FIELDS, files=[("bomb.png", bomb, "image/png")])
    desk = desk_client(cases)
    started = time.monotonic()
    page = page_text(desk.get(f"/en/cases/{case_id}/attachments/1"))
    assert time.monotonic() - started < 20
    assert "more pixels than the desk decodes safely" in page
    assert "<img" not in page
    image = desk.get(f"/en/cases/{case_id}/attachments/1/image.png")
    assert image.status_code == 422 and image.mimetype == "text/plain"
    assert image.get_data(as_text=True).count(".") == 1  # one sentence


@pytest.mark.parametrize("damage", ["truncated", "garbage_after_signature", "corrupt_header"])
def test_a_damaged_image_is_refused_with_one_sentence(cases, damage):
    photo = jpeg_with_gps()
    data = {
        "truncated": photo[: len(photo) // 3],
        "garbage_after_signature": photo[:4] + os.urandom(5000),
        "corrupt_header": b"\x89PNG\r\n\x1a\n" + b"\0\0\0\rIHDR" + os.urandom(200),
    }[damage]
    case_id = write_case(cases, FIELDS, files=[("broken.jpg", data, "image/jpeg")])
    desk = desk_client(cases)
    page = page_text(desk.get(f"/en/cases/{case_id}/attachments/1"))
    assert "could not be read as an image" in page
    assert desk.get(f"/en/cases/{case_id}/attachments/1/image.png").status_code == 422


def test_garbage_that_only_claims_to_be_an_image_is_not_decoded_and_is_flagged(cases):
    case_id = write_case(cases, FIELDS, files=[("photo.jpg", os.urandom(4096), "image/jpeg")])
    desk = desk_client(cases)
    page = page_text(desk.get(f"/en/cases/{case_id}/attachments/1"))
    assert "does not match what the bytes are" in page
    assert "The desk does not show this kind of file" in page
    assert desk.get(f"/en/cases/{case_id}/attachments/1/image.png").status_code == 404


def test_an_image_that_would_exhaust_memory_is_stopped_by_the_limit(cases):
    # As if a decoder bug let the bomb past the pixel cap: the address-space limit stops the
    # child, and the desk answers with one sentence and goes on serving.
    case_id = write_case(cases, FIELDS, files=[("bomb.png", png_bomb(40000), "image/png"),
                                               ("fine.jpg", jpeg_with_gps(), "image/jpeg")])
    desk = desk_client(cases, image_limits=Limits(max_pixels=10**10))
    page = page_text(desk.get(f"/en/cases/{case_id}/attachments/1"))
    assert "needed more memory or time than the desk allows" in page
    assert desk.get(f"/en/cases/{case_id}/attachments/2/image.png").status_code == 200


def test_plain_text_is_shown_escaped_and_bounded(cases):
    text = ("<script>alert(1)</script>\nسطر بالعربية\n\u202eexe.txt\n\x1b[31mred\n"
            + "x" * 150_000)
    case_id = write_case(cases, FIELDS, files=[("notes.txt", text.encode(), "text/plain")])
    desk = desk_client(cases)
    page = page_text(desk.get(f"/en/cases/{case_id}/attachments/1"))
    assert '<pre class="source-text" dir="auto"' in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;\nسطر بالعربية\n" in page
    assert "<script>" not in page and "\u202e" not in page and "\x1b" not in page
    assert "only its first 100,000 characters are shown" in page
    assert "x" * 100_001 not in page


def test_invalid_utf8_declared_as_text_can_only_be_saved(cases):
    data = b"caf\xe9 au lait\n" * 10  # Latin-1, not UTF-8
    case_id = write_case(cases, FIELDS, files=[("menu.txt", data, "text/plain")])
    page = page_text(desk_client(cases).get(f"/en/cases/{case_id}/attachments/1"))
    assert "<pre" not in page and "The desk does not show this kind of file" in page


def test_anything_else_can_only_be_saved_after_a_warning_naming_dangerzone(cases):
    program = b"MZ\x90\x00" + os.urandom(2000)
    case_id = write_case(cases, FIELDS, files=[("<b>inv\u202eoice.pdf", program,
                                                "application/pdf")])
    desk = desk_client(cases)
    page = page_text(desk.get(f"/en/cases/{case_id}/attachments/1"))
    assert "Dangerzone" in page and "does not match what the bytes are" in page
    assert "application/vnd.microsoft.portable-executable" in page
    saved = desk.get(f"/en/cases/{case_id}/attachments/1/file")
    assert saved.status_code == 200
    assert saved.headers["Content-Type"] == "application/octet-stream"
    assert saved.headers["X-Content-Type-Options"] == "nosniff"
    disposition = saved.headers["Content-Disposition"]
    assert disposition.startswith("attachment; filename=\"01-")
    assert disposition.isascii() and "<" not in disposition and "\u202e" not in disposition
    assert saved.get_data() == program


def test_viewing_never_changes_the_original_nor_writes_into_the_case(cases):
    files = [("a.jpg", jpeg_with_gps(), "image/jpeg"), ("b.png", png_bomb(20000), "image/png"),
             ("c.txt", "نص\n".encode(), "text/plain"), ("d.bin", os.urandom(3000), "")]
    case_id = write_case(cases, FIELDS, files=files)
    before = snapshot(cases)
    desk = desk_client(cases)
    for lang in ("en", "ar"):
        desk.get(f"/{lang}/")
        desk.get(f"/{lang}/cases/{case_id}")
        for index in range(1, 5):
            for suffix in ("", "/image.png", "/file"):
                desk.get(f"/{lang}/cases/{case_id}/attachments/{index}{suffix}")
    assert snapshot(cases) == before
    for name, data, _type in files:
        stored = next((cases / case_id / "attachments").glob(f"*-{Path(name).stem}*"))
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()


def test_a_changed_original_is_reported_against_the_recorded_sha256(cases):
    case_id = write_case(cases, FIELDS, files=[("c.txt", b"first words\n", "text/plain")])
    stored = next((cases / case_id / "attachments").iterdir())
    stored.write_bytes(b"other words\n")
    page = page_text(desk_client(cases).get(f"/en/cases/{case_id}/attachments/1"))
    assert "no longer has the SHA-256 recorded at import" in page
    assert hashlib.sha256(b"other words\n").hexdigest() in page


def test_report_json_cannot_point_the_desk_outside_the_case(cases, tmp_path):
    import json

    secret = tmp_path / "secret.txt"
    secret.write_text("the reviewer's own file\n")
    case_id = write_case(cases, FIELDS, files=[("a.txt", b"a\n", "text/plain"),
                                               ("b.txt", b"b\n", "text/plain")])
    folder = cases / case_id
    (folder / "attachments" / "02-b.txt").unlink()
    (folder / "attachments" / "02-b.txt").symlink_to(secret)
    report = json.loads((folder / "report.json").read_text())
    report["attachments"].append({**report["attachments"][0], "path": "../../secret.txt"})
    report["attachments"].append({**report["attachments"][0], "path": "attachments/../../x"})
    (folder / "report.json").write_text(json.dumps(report))
    desk = desk_client(cases)
    page = page_text(desk.get(f"/en/cases/{case_id}"))
    assert page.count("(not found in the case folder)") == 3
    for index in (2, 3, 4):
        for suffix in ("", "/file"):
            answer = desk.get(f"/en/cases/{case_id}/attachments/{index}{suffix}")
            assert "the reviewer's own file" not in answer.get_data(as_text=True)
        assert desk.get(f"/en/cases/{case_id}/attachments/{index}/file").status_code == 404
    assert desk.get(f"/en/cases/{case_id}/attachments/5").status_code == 404
    assert desk.get(f"/en/cases/{case_id}/attachments/0").status_code == 404


@pytest.mark.parametrize("name, data, declared", [
    ("invite.svg", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>'
                   b"alert(2)</script></svg>", "image/svg+xml"),
    ("login.html", b"<!DOCTYPE html><html><body><script>alert(1)</script>"
                   b"<form action=https://evil.example/></form></body></html>", "text/html"),
    ("message.eml", b"From: support@evil.example\nSubject: Verify\n\n<a href=x>click</a>\n",
     "message/rfc822"),
])
def test_textual_formats_are_shown_as_their_source_never_rendered(cases, name, data, declared):
    case_id = write_case(cases, FIELDS, files=[(name, data, declared)])
    desk = desk_client(cases)
    page = page_text(desk.get(f"/en/cases/{case_id}/attachments/1"))
    assert '<pre class="source-text" dir="auto"' in page
    assert str(escape(data.decode())) in page
    for raw in ("<svg xmlns", "<script>alert", "<form action=https", "<a href=x>"):
        assert raw not in page
    assert desk.get(f"/en/cases/{case_id}/attachments/1/image.png").status_code == 404
    assert "does not match" not in page  # the declared type is what the bytes are
