"""Images from a source, shown as plain PNG pixels and never parsed in the desk's process.

`ImageReencoder.reencode(data)` runs `image_child.py` in a fresh Python
process (``-I``: no environment, no user site) with the bytes on its standard
input, under an address-space limit, a CPU-time limit, a wall-clock timeout
and a pixel cap, and reads back a PNG and the list of metadata it removed.
Every way that can fail (a decompression bomb, a damaged file, a limit that
killed the child) becomes an `ImageRefused` with one sentence for the
reviewer. At most `MAX_PARALLEL` children run at once. Results are kept in
memory only (never on disk), bounded in bytes, keyed by the file's SHA-256.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from flask_babel import lazy_gettext as _l

CHILD = Path(__file__).resolve().parent / "image_child.py"
MiB = 1024 * 1024

#: Address space the child may use: Python and Pillow take about 30 MiB; the rest is pixels.
MEMORY_LIMIT = 768 * MiB
#: CPU seconds the child may use, and the wall-clock seconds the desk waits for it.
CPU_LIMIT = 20
WALL_LIMIT = 40
#: Images of more pixels are refused before decoding (64 MP: a 48 MP phone photo fits).
MAX_PIXELS = 64_000_000
#: The longer side of the PNG shown: larger images are shrunk to this.
MAX_SIDE = 2560
#: Image files larger than this are not decoded at all.
MAX_INPUT = 64 * MiB
#: Bound on what the child may answer: the header and a MAX_SIDE² RGBA PNG, stored uncompressed.
MAX_OUTPUT = 4 + 1 * MiB + MAX_SIDE * (MAX_SIDE * 4 + 1) + 1 * MiB
#: Children at once, and bytes of PNG kept in memory.
MAX_PARALLEL = 2
CACHE_BYTES = 128 * MiB

REASONS = {
    "too_many_pixels": _l(
        "This image has more pixels than the desk decodes safely (it may be a decompression "
        "bomb); save it only to inspect it with Dangerzone."
    ),
    "too_large": _l(
        "This image file is larger than the desk decodes; save it only to inspect it with "
        "Dangerzone."
    ),
    "not_an_image": _l(
        "This file could not be read as an image: it is damaged or not what it claims to be; "
        "save it only to inspect it with Dangerzone."
    ),
    "memory": _l(
        "Showing this image needed more memory or time than the desk allows, so it was "
        "stopped; save it only to inspect it with Dangerzone."
    ),
}


class ImageRefused(Exception):
    """The image cannot be shown; `reason` is a key of `REASONS`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason if reason in REASONS else "not_an_image"

    @property
    def sentence(self) -> str:
        return str(REASONS[self.reason])


@dataclass(frozen=True)
class Reencoded:
    png: bytes
    source_format: str
    width: int
    height: int
    shown_width: int
    shown_height: int
    frames: int
    removed: list[tuple[str, str]]
    gps_position: str | None  # "latitude, longitude" in decimal degrees


@dataclass(frozen=True)
class Limits:
    memory: int = MEMORY_LIMIT
    cpu_seconds: int = CPU_LIMIT
    wall_seconds: int = WALL_LIMIT
    max_pixels: int = MAX_PIXELS
    max_side: int = MAX_SIDE
    max_input: int = MAX_INPUT


class ImageReencoder:
    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._slots = threading.BoundedSemaphore(MAX_PARALLEL)
        self._cache: OrderedDict[str, Reencoded | ImageRefused] = OrderedDict()
        self._cache_lock = threading.Lock()

    def reencode(self, data: bytes, key: str) -> Reencoded:
        """The image in `data` as plain PNG pixels, or `ImageRefused`.

        `key` names the bytes (their SHA-256): a second look is answered from memory.
        """
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                cached = self._cache[key]
                if isinstance(cached, ImageRefused):
                    raise ImageRefused(cached.reason)
                return cached
        try:
            result: Reencoded | ImageRefused = self._run(data)
        except ImageRefused as refused:
            result = refused
        self._remember(key, result)
        if isinstance(result, ImageRefused):
            raise ImageRefused(result.reason)
        return result

    def _remember(self, key: str, result: Reencoded | ImageRefused) -> None:
        with self._cache_lock:
            self._cache[key] = result
            self._cache.move_to_end(key)
            while self._cache_size() > CACHE_BYTES and len(self._cache) > 1:
                self._cache.popitem(last=False)

    def _cache_size(self) -> int:
        return sum(len(r.png) for r in self._cache.values() if isinstance(r, Reencoded))

    def _run(self, data: bytes) -> Reencoded:
        if len(data) > self.limits.max_input:
            raise ImageRefused("too_large")
        limits = self.limits
        command = [
            sys.executable, "-I", str(CHILD),
            str(limits.memory), str(limits.cpu_seconds), str(limits.max_pixels),
            str(limits.max_side), str(limits.max_input),
        ]
        with self._slots:
            try:
                done = subprocess.run(  # our own script, no shell, fixed arguments
                    command,
                    input=data,
                    capture_output=True,
                    timeout=limits.wall_seconds,
                    env={},
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise ImageRefused("memory") from None
        return _parse(done.returncode, done.stdout)


def _parse(returncode: int, out: bytes) -> Reencoded:
    """The child's answer, or ImageRefused; a killed or crashed child is a refusal."""
    if returncode not in (0, 2) or len(out) < 4 or len(out) > MAX_OUTPUT:
        # Killed by RLIMIT_CPU (SIGXCPU), by the kernel, or aborted when RLIMIT_AS made an
        # allocation fail inside a decoder: the limits did their work.
        raise ImageRefused("memory")
    size = int.from_bytes(out[:4], "big")
    try:
        header = json.loads(out[4 : 4 + size].decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise ImageRefused("not_an_image") from None
    if not isinstance(header, dict) or header.get("ok") is not True or returncode != 0:
        reason = header.get("reason") if isinstance(header, dict) else None
        raise ImageRefused(reason if isinstance(reason, str) else "not_an_image")
    png = out[4 + size :]
    if not png.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ImageRefused("not_an_image")
    return Reencoded(
        png=png,
        source_format=str(header.get("format", ""))[:16],
        width=int(header["width"]),
        height=int(header["height"]),
        shown_width=int(header["shown_width"]),
        shown_height=int(header["shown_height"]),
        frames=int(header.get("frames", 1)),
        removed=[(str(k), str(v)) for k, v in header.get("removed", [])],
        gps_position=_position(header.get("gps_position")),
    )


def _position(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    return value if re.fullmatch(r"-?[0-9]{1,3}\.[0-9]{6}, -?[0-9]{1,3}\.[0-9]{6}", value) else None
