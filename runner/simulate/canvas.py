"""The simulated model's images: a PNG per answer with its prompt drawn on it.

Owns: drawing a prompt (colours, wrapping, fonts), the cache of drawn prompts, the
per-answer label and the padding that makes PNGs as large as real ones. Must not know
HTTP, Gemini bodies, models (models.py has their pixel sizes) or faults.
"""

from __future__ import annotations

import colorsys
import hashlib
import random
import struct
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass

import anyio
from PIL import Image, ImageDraw, ImageFont


class Canvases:
    """Thread-safe LRU of drawn prompts bounded by an estimate of their memory; each
    answer's PNG is a cached prompt finished with its own label.

    A canvas is built once even when many requests for it arrive together: sixteen
    parallel 4K builds would cost seconds where one costs a few hundred milliseconds.
    """

    budget = 64 * 1024 * 1024

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[str, int, int], _Canvas] = OrderedDict()
        self._building: dict[tuple[str, int, int], threading.Lock] = {}
        self._used = 0
        self._serial = 0

    async def png(
        self, text: str, width: int, height: int, caption: str, *, pad_bytes: int
    ) -> bytes:
        """The PNG of one answer: `text` drawn at width x height, labelled with a
        serial number, `caption` and the size."""
        with self._lock:
            self._serial += 1
            serial = self._serial
        label = f"#{serial}  {caption}  {width}x{height}"
        args = (text, width, height, label)
        if width * height > 300_000:
            # big images: keep the event loop free for the other connections
            png = await anyio.to_thread.run_sync(self._render, *args)
        else:
            png = self._render(*args)
        return _pad_png(png, pad_bytes)

    def _render(self, text: str, width: int, height: int, label: str) -> bytes:
        return _finish_png(self._canvas((text, width, height)), label)

    def _canvas(self, key: tuple[str, int, int]) -> _Canvas:
        with self._lock:
            canvas = self._cached(key)
            if canvas is not None:
                return canvas
            building = self._building.setdefault(key, threading.Lock())
        with building:
            with self._lock:
                canvas = self._cached(key)
            if canvas is not None:
                return canvas
            canvas = _make_canvas(*key)
            with self._lock:
                self._building.pop(key, None)
                self._items[key] = canvas
                self._used += canvas.cost
                while self._used > self.budget and len(self._items) > 1:
                    _, old = self._items.popitem(last=False)
                    self._used -= old.cost
            return canvas

    def _cached(self, key: tuple[str, int, int]) -> _Canvas | None:
        canvas = self._items.get(key)
        if canvas is not None:
            self._items.move_to_end(key)
        return canvas


# -- private helpers --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Canvas:
    """A rendered prompt with its top part already deflated.

    Each answer redraws only the bottom label strip and deflates it from a copy of the
    compressor state, so answers differ while a 4K image costs a fraction of an encode.
    """

    width: int
    height: int
    head: bytes  # PNG signature + IHDR
    compressor: zlib._Compress  # state after the top rows
    top_data: bytes  # deflate output of the top rows so far
    strip: Image.Image
    font_size: int
    ink: tuple[int, int, int]
    margin: int

    @property
    def cost(self) -> int:
        return len(self.top_data) + self.width * self.strip.height * 3 + 300_000


def _make_canvas(text: str, width: int, height: int) -> _Canvas:
    digest = hashlib.sha256(text.encode()).digest()
    hue = digest[0] / 255
    saturation = 0.35 + digest[1] / 255 * 0.35
    value = 0.45 + digest[2] / 255 * 0.4
    background = _rgb(colorsys.hsv_to_rgb(hue, saturation, value))
    luminance = 0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2]
    ink = (20, 20, 20) if luminance > 140 else (245, 245, 245)
    band = _rgb(colorsys.hsv_to_rgb(hue, saturation, value * 0.7))
    font_size = max(8, min(width, height) // 14)
    font = _font(font_size)
    strip_height = min(height, max(8, font_size + font_size // 2))
    strip_y = height - strip_height

    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    margin = max(2, font_size // 2)
    draw.rectangle((0, strip_y, width, height), fill=band)
    line_height = font_size + font_size // 4
    max_lines = max(0, (strip_y - margin) // line_height)
    lines = _wrap(text, font, width - 2 * margin, max_lines)
    top = max(margin, (strip_y - len(lines) * line_height) // 2)
    for index, line in enumerate(lines):
        draw.text((margin, top + index * line_height), line, font=font, fill=ink)

    level = 6 if width * height <= 512 * 512 else 1
    compressor = zlib.compressobj(level)
    top_data = compressor.compress(_scanlines(image.crop((0, 0, width, strip_y))))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return _Canvas(
        width=width,
        height=height,
        head=b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr),
        compressor=compressor,
        top_data=top_data,
        strip=image.crop((0, strip_y, width, height)),
        font_size=font_size,
        ink=ink,
        margin=margin,
    )


def _finish_png(canvas: _Canvas, label: str) -> bytes:
    strip = canvas.strip.copy()
    position = (canvas.margin, canvas.margin // 2)
    font = _font(canvas.font_size)
    ImageDraw.Draw(strip).text(position, label, font=font, fill=canvas.ink)
    compressor = canvas.compressor.copy()
    data = canvas.top_data + compressor.compress(_scanlines(strip)) + compressor.flush()
    return canvas.head + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def _scanlines(image: Image.Image) -> bytes:
    """Raw RGB rows each prefixed with PNG filter type 0 (None)."""
    raw = image.tobytes()
    stride = image.width * 3
    if not raw:
        return b""
    return b"".join(
        b"\x00" + raw[start : start + stride] for start in range(0, len(raw), stride)
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data)
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _wrap(
    text: str,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    width: int,
    max_lines: int,
) -> list[str]:
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        current = ""
        for word in paragraph.split():
            candidate = f"{current} {word}".strip()
            if font.getlength(candidate) <= width:
                current = candidate
                continue
            if current:
                lines.append(current)
            while font.getlength(word) > width and len(word) > 1:
                cut = len(word) - 1
                while cut > 1 and font.getlength(word[:cut]) > width:
                    cut -= 1
                lines.append(word[:cut])
                word = word[cut:]
            current = word
        lines.append(current)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        if lines:
            lines[-1] = lines[-1][:-1] + "…" if lines[-1] else "…"
    return lines


# Per thread: canvases are drawn both on the event loop and in worker threads, and a
# FreeType face is not safe to share between threads.
_FONTS = threading.local()


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    fonts: dict[int, ImageFont.FreeTypeFont | ImageFont.ImageFont]
    fonts = _FONTS.__dict__.setdefault("by_size", {})
    font = fonts.get(size)
    if font is None:
        # load_default(size) needs FreeType; the bitmap fallback is still readable
        font = fonts[size] = ImageFont.load_default(size=size)
    return font


def _rgb(values: tuple[float, float, float]) -> tuple[int, int, int]:
    red, green, blue = (round(v * 255) for v in values)
    return red, green, blue


_PAD_CACHE: dict[int, bytes] = {}


def _pad_png(png: bytes, pad: int) -> bytes:
    """`png` with a private ancillary chunk of `pad` random bytes before IEND:
    still a valid PNG (decoders skip it), as large as a real 4K answer."""
    if pad <= 0:
        return png
    data = _PAD_CACHE.get(pad)
    if data is None:
        data = _PAD_CACHE[pad] = random.Random(pad).randbytes(pad)
    chunk = _chunk(b"prVt", data)  # ancillary, private, safe to copy
    iend = png.rfind(b"IEND") - 4
    return png[:iend] + chunk + png[iend:]
