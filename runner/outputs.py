"""The results folder: file names, image files and the manifest.

Owns: `output/<job>/` layout, the image file name of SPEC section 4, the extension
sniffed from the bytes, atomic (temp file + rename) writes of images and of
`manifest.jsonl`, and disk space: what an image may take, what a folder has free.
Must not use the network or make scheduling decisions.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from runner.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

IMAGES_DIR = "images"
MANIFEST = "manifest.jsonl"
JOURNAL = "journal.jsonl"  # answers not yet in the store (runner.scheduler.journal)

# Bytes an image may take on disk, from its pixels. Pixels: the largest cell of
# Google's table per size class (ai.google.dev/gemini-api/docs/image-generation
# #aspect_ratios_and_image_size: 384x3072 at 1K for 1:8, the other ratios about
# 1 MP; 512, 2K and 4K halve, double and quadruple each side). Bytes per pixel:
# unconfirmed, so a parameter here. Answers come as PNG (gemini-2.5-flash-image) or
# as JPEG at a quality near 100 (3 Pro Image, googleapis/python-genai#1824; 3.1
# Flash Image, python-genai#2346: 3.5 MB for one image); a photographic PNG takes
# about half its 3 raw bytes a pixel, such a JPEG about 1 or less. 1.5 covers both,
# so an estimate errs on the side of more bytes: 1.8 MB at 1K, 28 MB at 4K.
BYTES_PER_PIXEL = 1.5
KEEP_FREE = 64 * 1024 * 1024  # besides images: room for the store, journal, manifest
_PIXELS_1K = 384 * 3072
_SIDE_FACTOR = {"512": 0.5, "1K": 1.0, "2K": 2.0, "4K": 4.0}

# Magic numbers of the formats the API returns; the declared mime type is not trusted.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)


def job_dir(output_root: Path, job_name: str) -> Path:
    """`<output_root>/<job_name>`, refusing any name that would escape the root."""
    root = output_root.resolve()
    path = (root / job_name).resolve()
    if path.parent != root or job_name in ("", ".", ".."):
        raise UsageError(
            f"job name {job_name!r} would write outside {output_root}; use letters, "
            "digits, '.', '_' and '-' only"
        )
    return path


def sniff_extension(data: bytes) -> str | None:
    """File extension for the image format in `data`, or None if not an image."""
    for magic, ext in _SIGNATURES:
        if data.startswith(magic):
            return ext
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


class ItemNames(Protocol):
    """What names an item's images (the store's WorkItem and OpenAttempt)."""

    @property
    def prompt_id(self) -> str: ...
    @property
    def aspect_ratio(self) -> str: ...
    @property
    def ref_label(self) -> str: ...
    @property
    def sample(self) -> int: ...
    @property
    def key(self) -> str: ...


def image_name(
    *,
    prompt_id: str,
    aspect_ratio: str,
    ref_label: str,
    sample: int,
    key: str,
    index: int,
    ext: str,
) -> str:
    """`<prompt-id>_<aspect>_<ref-set>_s<sample>_<key8>[_<n>].<ext>`, n from 2."""
    aspect = aspect_ratio.replace(":", "x")
    suffix = "" if index == 0 else f"_{index + 1}"
    return f"{prompt_id}_{aspect}_{ref_label}_s{sample}_{key[:8]}{suffix}.{ext}"


def item_image_name(item: ItemNames, index: int, ext: str) -> str:
    """`image_name` of one of this item's images."""
    return image_name(
        prompt_id=item.prompt_id,
        aspect_ratio=item.aspect_ratio,
        ref_label=item.ref_label,
        sample=item.sample,
        key=item.key,
        index=index,
        ext=ext,
    )


def image_stem(item: ItemNames) -> str:
    """What every image name of this item starts with: its first image's name
    without the extension (a second image adds `_2`)."""
    return item_image_name(item, 0, "x")[: -len(".x")]


def image_bytes(image_size: str | None) -> int:
    """The most bytes one image of this size class is expected to take (1K when
    the request names no size; see BYTES_PER_PIXEL)."""
    factor = _SIDE_FACTOR.get(image_size or "1K", 4.0)  # unknown: the largest
    return int(_PIXELS_1K * factor * factor * BYTES_PER_PIXEL)


def describe_bytes(n: int) -> str:
    """A byte count for a message: "1.8 MB"."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n} bytes"


def free_bytes(folder: Path) -> int:
    """Bytes free for this process on the file system holding `folder` (or its
    nearest existing parent)."""
    path = folder
    while not path.exists() and path.parent != path:
        path = path.parent
    return shutil.disk_usage(path).free


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so a reader sees the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def move_into_place(tmp: Path, path: Path) -> None:
    """Rename a finished temp file (same folder) to `path`, durably."""
    with tmp.open("rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_head(path: Path, size: int = 16) -> bytes:
    """The first bytes of a file, enough for `sniff_extension`."""
    with path.open("rb") as fh:
        return fh.read(size)


def write_manifest(job_folder: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Rewrite `manifest.jsonl` atomically, one JSON object per item."""
    lines = [json.dumps(row, ensure_ascii=False, sort_keys=False) for row in rows]
    path = job_folder / MANIFEST
    write_atomic(path, ("\n".join(lines) + ("\n" if lines else "")).encode("utf-8"))
    return path


def remove_stale_temp_files(job_folder: Path) -> int:
    """Delete temp files a killed process left behind; returns how many."""
    removed = 0
    for folder in (job_folder, job_folder / IMAGES_DIR):
        if not folder.is_dir():
            continue
        for tmp in folder.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed
