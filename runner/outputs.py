"""The results folder: file names, image files and the manifest.

Owns: `output/<job>/` layout, the image file name of SPEC section 4 (with the
earlier name, without var values, that files written before still have), the
extension sniffed from the bytes, atomic (temp file + rename) writes of images and
of `manifest.jsonl` with the permissions of any tool's output (the umask's), and
disk space: what an image may take, what a folder has free. Must not use the
network or make scheduling decisions.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import shutil
import unicodedata
from typing import TYPE_CHECKING, Any, Protocol

from runner.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from pathlib import Path

IMAGES_DIR = "images"
MANIFEST = "manifest.jsonl"
JOURNAL = "journal.jsonl"  # answers not yet in the store (runner.scheduler.journal)
BATCHES_DIR = "batches"  # Batch API inputs being built or sent (SPEC 7)

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

# Var values in image names: each slugged to at most VAR_VALUE_CHARS, all of them
# to at most VAR_PART_CHARS, so a name stays near 200 bytes at worst (a 100-char
# prompt id, the rest of the fields, a temp file's `.<name>.<16 hex>.tmp`), well
# under the 255 most file systems allow.
VAR_VALUE_CHARS = 24
VAR_PART_CHARS = 60
_NOT_SLUG = re.compile(r"[^a-z0-9]+")

# Files are created as open() creates them, mode 0o666 less the process umask
# (0644 under the usual 022, SPEC 4), not mkstemp's 0600: a gallery is meant to be
# shared or served. The kernel applies the umask (or a folder's default ACL) when
# the file is created, so nothing reads or sets the process-wide umask, which
# os.umask can only read by changing it, racing every other thread.
FILE_MODE = 0o666
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
# write_whole's temp files: named by process and count, so one a dead process of
# the same id left is overwritten
_TEMP_FILE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
_temp_count = itertools.count()
_WHOLE_TEMP_NAME = re.compile(r"\.(\d+)-\d+\.tmp$")

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
    def var_values(self) -> Sequence[str]: ...
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
    var_values: Sequence[str] = (),
    aspect_ratio: str,
    ref_label: str,
    sample: int,
    key: str,
    index: int,
    ext: str,
) -> str:
    """`<prompt-id>[_<var values>]_<aspect>_<ref-set>_s<sample>_<key8>[_<n>].<ext>`,
    n from 2; var values as `var_part` writes them, in the order given."""
    aspect = aspect_ratio.replace(":", "x")
    suffix = "" if index == 0 else f"_{index + 1}"
    values = var_part(var_values)
    head = f"{prompt_id}_{values}" if values else prompt_id
    return f"{head}_{aspect}_{ref_label}_s{sample}_{key[:8]}{suffix}.{ext}"


def var_part(values: Sequence[str]) -> str:
    """Var values for a file name: each slugged (lowercase ASCII letters and
    digits, any run of anything else one '-', accents dropped) and cut to
    VAR_VALUE_CHARS, joined by '_'; a value with nothing left is skipped; past
    VAR_PART_CHARS every value gets an equal share."""
    slugs = [s for s in (slug(v)[:VAR_VALUE_CHARS].rstrip("-") for v in values) if s]
    part = "_".join(slugs)
    if len(part) > VAR_PART_CHARS:
        share = max(1, (VAR_PART_CHARS + 1) // len(slugs) - 1)
        part = "_".join(s[:share].rstrip("-") for s in slugs)
        part = part[:VAR_PART_CHARS].rstrip("-_")
    return part


def slug(text: str) -> str:
    """`text` as lowercase ASCII letters, digits and single '-': "Café au lait!"
    is "cafe-au-lait"."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore")
    return _NOT_SLUG.sub("-", ascii_text.decode("ascii").lower()).strip("-")


def item_image_name(
    item: ItemNames, index: int, ext: str, *, with_vars: bool = True
) -> str:
    """`image_name` of one of this item's images (without `with_vars`: the name
    written before var values were in names)."""
    return image_name(
        prompt_id=item.prompt_id,
        var_values=item.var_values if with_vars else (),
        aspect_ratio=item.aspect_ratio,
        ref_label=item.ref_label,
        sample=item.sample,
        key=item.key,
        index=index,
        ext=ext,
    )


def image_stems(item: ItemNames) -> tuple[str, ...]:
    """What every image name of this item starts with: its first image's name
    without the extension (a second image adds `_2`). The first stem is today's;
    an item with var values also has the stem without them, which files written
    before var values were in names still carry (names already written stay
    valid, SPEC 4)."""
    stems = (item_image_name(item, 0, "x", with_vars=v)[:-2] for v in (True, False))
    return tuple(dict.fromkeys(stems))


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
    """Write `data` to `path` so a reader sees the old file or the whole new one;
    a new file and its folders follow the umask (FILE_MODE)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, _NEW_FILE, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_whole(path: Path, data: bytes) -> int:
    """`write_atomic` without the fsync, for files made again from others
    (thumbnails, contact sheets): a killed process leaves the old file or the new
    one, whole (a power cut may lose it). Fewer system calls: the folder is made
    only if missing, the temp file named by process and count. Returns the file's
    mtime_ns."""
    tmp = path.parent / f".{path.name}.{os.getpid()}-{next(_temp_count)}.tmp"
    try:
        fd = os.open(tmp, _TEMP_FILE, FILE_MODE)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, _TEMP_FILE, FILE_MODE)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            mtime = os.fstat(fd).st_mtime_ns  # a rename keeps it
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return mtime


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


def remove_stale_temp_files(job_folder: Path, also: Iterable[str] = ()) -> int:
    """Delete temp files a killed process left behind in the job folder, its
    images folder and the subfolders `also` names; returns how many."""
    removed = 0
    for folder in (
        job_folder,
        job_folder / IMAGES_DIR,
        *(job_folder / a for a in also),
    ):
        if not folder.is_dir():
            continue
        for tmp in folder.glob(".*.tmp"):
            if _being_written(tmp.name):
                continue
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def _being_written(name: str) -> bool:
    """Whether a temp file of `write_whole` belongs to another process still alive
    (a `runner review` building this job's gallery while a run starts): its
    rename is yet to come. A recycled process id only leaves a hidden file for
    a later run to remove."""
    match = _WHOLE_TEMP_NAME.search(name)
    if match is None or int(match[1]) == os.getpid():
        return False
    try:
        os.kill(int(match[1]), 0)
    except ProcessLookupError:
        return False
    except OSError:  # alive, another user's
        return True
    return True
