"""Re-encode one untrusted image as plain PNG pixels, in a process of its own.

Run by `intake.review.desk.images` as ``python -I image_child.py MEMORY CPU PIXELS SIDE``
with the image's bytes on standard input. Before it reads a byte it limits
itself: address space (MEMORY bytes), CPU time (CPU seconds), no file writes,
no core dump. It imports nothing of the intake, only Pillow, so that the code
exposed to a hostile file is as small as it can be.

It refuses, without decoding any pixel, a file Pillow cannot identify as one of
`FORMATS`, and an image of more than PIXELS pixels (a decompression bomb). It
then decodes the first frame, applies the EXIF orientation, shrinks it to at
most SIDE pixels on its longer side, and copies the bare pixels into a new
image, so that nothing of the original file (EXIF, GPS, XMP, ICC profile,
comments, text chunks) can ride along into the PNG.

Standard output: a 4-byte big-endian length, a JSON header of that length,
then the PNG (absent when the header says ``"ok": false``). The header names
the metadata that was removed, as bounded text, for the reviewer's evidence, and the
GPS position it records, if any, in decimal degrees.
Exit status 0 with a PNG, 2 with a refusal; anything else (a signal from a
limit, a crash) is the parent's to explain.
"""

from __future__ import annotations

import io
import json
import resource
import sys

#: The formats Pillow may open here: what phones, browsers and screenshots make.
FORMATS = ("PNG", "JPEG", "GIF", "WEBP")
#: Bound on the metadata reported back: entries, and characters per value.
MAX_METADATA_ENTRIES = 200
MAX_METADATA_VALUE = 300
MAX_XMP_SHOWN = 2000
#: Keys of Pillow's `info` that describe the encoding, not the picture's author or place.
FORMAT_DETAILS = frozenset({
    "jfif", "jfif_version", "jfif_unit", "jfif_density", "progressive", "progression",
    "adobe", "adobe_transform", "interlace", "aspect", "dpi", "gamma", "srgb", "chromaticity",
    "transparency", "duration", "loop", "background", "version", "extension", "compression",
    "lossless", "bbox",
})


def limit_resources(memory: int, cpu_seconds: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def emit(header: dict, png: bytes = b"") -> None:
    encoded = json.dumps(header, ensure_ascii=True).encode("ascii")
    out = sys.stdout.buffer
    out.write(len(encoded).to_bytes(4, "big") + encoded + png)
    out.flush()


def refuse(reason: str) -> None:
    emit({"ok": False, "reason": reason})
    sys.exit(2)


def _text(value: object) -> str:
    """A metadata value as short text; bytes that are not printable ASCII are counted, not shown."""
    if isinstance(value, bytes):
        stripped = value.rstrip(b"\0")
        if stripped and all(32 <= b < 127 for b in stripped):
            value = stripped.decode("ascii")
        else:
            return f"<{len(value)} bytes>"
    elif isinstance(value, tuple | list):
        value = ", ".join(_text(v) for v in value[:16])
    text = str(value)
    return text if len(text) <= MAX_METADATA_VALUE else text[:MAX_METADATA_VALUE] + "…"


def _degrees(dms: object, ref: object) -> float | None:
    try:
        degrees, minutes, seconds = (float(x) for x in dms)  # type: ignore[union-attr]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    value = degrees + minutes / 60 + seconds / 3600
    return -value if str(ref).strip("\0 ").upper() in ("S", "W") else value


def gps_position(image) -> str | None:
    """The EXIF GPS position as "latitude, longitude" in decimal degrees, or None."""
    from PIL import ExifTags

    gps = image.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    latitude = _degrees(gps.get(ExifTags.GPS.GPSLatitude), gps.get(ExifTags.GPS.GPSLatitudeRef))
    longitude = _degrees(
        gps.get(ExifTags.GPS.GPSLongitude), gps.get(ExifTags.GPS.GPSLongitudeRef)
    )
    if latitude is None or longitude is None:
        return None
    return f"{latitude:.6f}, {longitude:.6f}"


def removed_metadata(image) -> list[list[str]]:
    """(name, value) for every piece of metadata the PNG will not carry."""
    from PIL import ExifTags

    entries: list[list[str]] = []

    def add(name: str, value: object) -> None:
        if len(entries) < MAX_METADATA_ENTRIES:
            entries.append([name, _text(value)])

    exif = image.getexif()
    for tag, value in exif.items():
        if tag not in (ExifTags.IFD.Exif, ExifTags.IFD.GPSInfo, ExifTags.IFD.Interop):
            add(ExifTags.TAGS.get(tag, f"EXIF 0x{tag:04X}"), value)
    for tag, value in exif.get_ifd(ExifTags.IFD.Exif).items():
        add(ExifTags.TAGS.get(tag, f"EXIF 0x{tag:04X}"), value)
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    for tag, value in gps.items():
        add("GPS " + ExifTags.GPSTAGS.get(tag, f"0x{tag:04X}"), value)
    for key, value in image.info.items():
        if key == "exif" or key in FORMAT_DETAILS:
            continue
        if key == "icc_profile" and isinstance(value, bytes):
            add("ICC colour profile", f"{len(value)} bytes")
        elif key in ("xmp", "XML:com.adobe.xmp"):
            raw = value if isinstance(value, bytes) else str(value).encode("utf-8", "replace")
            shown = raw[:MAX_XMP_SHOWN].decode("utf-8", "replace")
            if len(entries) < MAX_METADATA_ENTRIES:
                entries.append(["XMP", shown + ("…" if len(raw) > MAX_XMP_SHOWN else "")])
        else:
            add(str(key)[:80], value)
    return entries


def reencode(data: bytes, max_pixels: int, max_side: int) -> tuple[dict, bytes]:
    import warnings

    from PIL import Image, ImageOps

    Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.simplefilter("error", Image.DecompressionBombWarning)
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        refuse("too_many_pixels")
    except (OSError, SyntaxError, ValueError):
        refuse("not_an_image")
    source_format = image.format or ""
    width, height = image.size
    # Our own check, before any pixel is decoded: Pillow's warns at MAX_IMAGE_PIXELS
    # and only refuses at twice that.
    if width <= 0 or height <= 0 or width * height > max_pixels:
        refuse("too_many_pixels")
    frames = getattr(image, "n_frames", 1)
    if image.format == "JPEG":
        image.draft("RGB", (max_side, max_side))  # decode at a reduced scale where it can
    image.load()
    metadata = removed_metadata(image)
    position = gps_position(image)
    image = ImageOps.exif_transpose(image)
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        has_alpha = "A" in image.getbands() or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    # A new image from the bare pixels: no info, no EXIF, no ICC profile, no text.
    plain = Image.frombytes(image.mode, image.size, image.tobytes())
    out = io.BytesIO()
    plain.save(out, format="PNG", compress_level=1)  # fast; the size is bounded by SIDE anyway
    header = {
        "ok": True,
        "format": source_format,
        "width": width,
        "height": height,
        "shown_width": plain.width,
        "shown_height": plain.height,
        "frames": frames,
        "removed": metadata,
        "gps_position": position,
    }
    return header, out.getvalue()


def main(argv: list[str]) -> None:
    memory, cpu_seconds, max_pixels, max_side, max_input = (int(a) for a in argv[1:6])
    sys.dont_write_bytecode = True
    limit_resources(memory, cpu_seconds)
    data = sys.stdin.buffer.read(max_input + 1)
    if len(data) > max_input:
        refuse("too_large")
    try:
        header, png = reencode(data, max_pixels, max_side)
    except MemoryError:
        refuse("memory")
    except SystemExit:
        raise
    except Exception:  # any other failure on a hostile file is a refusal, not a crash
        refuse("not_an_image")
    emit(header, png)


if __name__ == "__main__":
    main(sys.argv)
