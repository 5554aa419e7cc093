"""The results folder: file names, image files and the manifest.

Owns: `output/<job>/` layout, the image file name of SPEC section 4, the extension
sniffed from the bytes, atomic (temp file + rename) writes of images and of
`manifest.jsonl`. Must not use the network or make scheduling decisions.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

IMAGES_DIR = "images"
MANIFEST = "manifest.jsonl"

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
