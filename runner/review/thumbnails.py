"""Thumbnails: `thumbs/<image>.jpg`, one JPEG per item's first image, and
`thumbs/refs/<sha256>.jpg`, one per reference file the legend shows.

Owns making them (on the worker threads, decoding JPEGs at reduced scale), keeping
one that is newer than its image (a reference's is named by the content hash of what
was sent, so one that exists is up to date), and telling an entry or a reference why
it has none (missing, unreadable, outside the job folder, changed since it was
sent). Must not write anywhere but `thumbs/`.
"""

from __future__ import annotations

import hashlib
import io
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from runner import outputs
from runner.review.workers import parallel

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from runner.review.grid import Entry
    from runner.review.legend import ReferenceFile, ReferenceSet

THUMBS_DIR = "thumbs"

# px, longest side: sharp in the page's 216 px frames on a 2x screen, and exactly
# twice SHEET_CELL, so a sheet cell is the thumbnail decoded at half scale (no resize)
THUMB_SIZE = 512
THUMB_QUALITY = 82
REF_THUMBS_DIR = f"{THUMBS_DIR}/refs"
# px, longest side: the legend shows references at 96 px at most (2x screens)
REF_THUMB_SIZE = 192
# A reference larger than this was not what was sent (the API's inline limit).
REF_MAX_BYTES = 7 * 1024 * 1024


def make_thumbnails(job_folder: Path, entries: Sequence[Entry]) -> int:
    """Give every entry with an image its thumbnail, on the worker threads; returns
    how many were (re)made."""
    maker = Thumbnailer(job_folder)
    todo = maker.missing(entries)
    made = parallel(_thumbnail_task, [(src, dst) for _, src, dst in todo])
    for (entry, _, dst), result in zip(todo, made, strict=True):
        maker.apply(entry, dst, result)
    return sum(1 for result in made if not isinstance(result, str))


class Thumbnailer:
    """Thumbnails of one job folder's images, one at a time or as a list to make
    (`missing`, then `apply` each result); the review during a run uses one."""

    def __init__(self, job_folder: Path) -> None:
        self.job_folder = job_folder
        self._images = _Images(job_folder)

    def locate(self, image: str) -> tuple[Path, Path] | str:
        """(image file, its thumbnail) for an image path as stored, or why it has
        none; the thumbnail is named after the image file (the link's target)."""
        try:
            src, _ = self._images.find(image)
        except FileNotFoundError:
            return "image file missing"
        except ValueError:
            return "image path is outside the job folder"
        return src, self.job_folder / THUMBS_DIR / f"{src.stem}.jpg"

    def missing(self, entries: Iterable[Entry]) -> list[tuple[Entry, Path, Path]]:
        """The entries whose thumbnail must be made, with (image, thumbnail); the
        others get their up-to-date thumbnail, or a note saying why there is none."""
        todo = []
        for entry in entries:
            if entry.image is None:
                continue
            try:
                src, src_mtime = self._images.find(entry.image)
            except FileNotFoundError:
                entry.note = "image file missing"
                continue
            except ValueError:
                entry.note = "image path is outside the job folder"
                continue
            dst = self.job_folder / THUMBS_DIR / f"{src.stem}.jpg"
            cached = _cached_thumbnail(src_mtime, dst)
            if cached is None:
                todo.append((entry, src, dst))
            else:
                entry.thumb, entry.thumb_mtime = self._rel(dst), cached
        return todo

    def make(self, image: str) -> tuple[str, int] | str:
        """Make one image's thumbnail (this thread): (path relative to the job
        folder, mtime_ns), or why it has none."""
        found = self.locate(image)
        if isinstance(found, str):
            return found
        result = _thumbnail_task(found)
        if isinstance(result, str):
            return result
        return self._rel(found[1]), result[1]

    def apply(
        self, entry: Entry, dst: Path, result: tuple[tuple[int, int], int] | str
    ) -> None:
        """An entry's thumbnail (or note) from what making it gave."""
        if isinstance(result, str):
            entry.note = result
        else:
            entry.thumb, entry.thumb_mtime, entry.note = self._rel(dst), result[1], None

    def _rel(self, dst: Path) -> str:
        return f"{THUMBS_DIR}/{dst.name}"


def make_reference_thumbnails(job_folder: Path, legend: Iterable[ReferenceSet]) -> int:
    """Give every reference file of the legend its thumbnail, named by the content
    hash the requests sent; returns how many were made."""
    files: dict[str, list[ReferenceFile]] = {}
    for ref_set in legend:
        for ref in ref_set.files:
            files.setdefault(ref.sha256, []).append(ref)
    todo: list[tuple[Path, str, Path]] = []
    for sha256, same in files.items():
        rel = f"{REF_THUMBS_DIR}/{sha256[:32]}.jpg"
        if (job_folder / rel).is_file():
            for ref in same:
                ref.thumb = rel
        else:
            todo.append((Path(same[0].abs_path), sha256, job_folder / rel))
    made = parallel(_reference_task, todo)
    for (_, sha256, dst), result in zip(todo, made, strict=True):
        for ref in files[sha256]:
            if result is None:
                ref.thumb = dst.relative_to(job_folder).as_posix()
            else:
                ref.note = result
    return sum(1 for result in made if result is None)


class _Images:
    """Where a job's image paths (relative, as stored) point, checked to stay inside
    the job folder: each folder is resolved once, and an image only when it is a
    symbolic link (a resolve per image cost seconds at 100,000 images)."""

    def __init__(self, job_folder: Path) -> None:
        self.job_folder, self.root = job_folder, job_folder.resolve()
        self._folders: dict[str, Path | None] = {}

    def find(self, rel: str) -> tuple[Path, int]:
        """The image's path and mtime_ns; ValueError if it is outside the folder,
        FileNotFoundError if it is missing."""
        parent, _, name = rel.rpartition("/")
        if name in ("", ".", ".."):
            return self._resolved(self.job_folder / rel)
        if parent not in self._folders:
            resolved = (self.job_folder / parent).resolve()
            inside = resolved.is_relative_to(self.root)
            self._folders[parent] = resolved if inside else None
        folder = self._folders[parent]
        if folder is None:
            raise ValueError(rel)
        src = folder / name
        info = src.lstat()
        if stat.S_ISLNK(info.st_mode):
            return self._resolved(src)
        return src, info.st_mtime_ns

    def _resolved(self, path: Path) -> tuple[Path, int]:
        src = path.resolve()
        if not src.is_relative_to(self.root):
            raise ValueError(path)
        return src, src.stat().st_mtime_ns


def _cached_thumbnail(src_mtime: int, dst: Path) -> int | None:
    """The mtime_ns of `dst` if it is newer than its image; None if it must be made
    (thumbnails are written whole, by rename, so one that exists is complete)."""
    try:
        done = dst.stat()
    except OSError:
        return None
    return done.st_mtime_ns if done.st_mtime_ns >= src_mtime and done.st_size else None


def _thumbnail_task(paths: tuple[Path, Path]) -> tuple[tuple[int, int], int] | str:
    """Worker: make one thumbnail; (size, mtime_ns), or why the image has none."""
    src, dst = paths
    try:
        return _thumbnail(src, dst)
    except FileNotFoundError:
        return "image file missing"
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        return f"image unreadable ({type(exc).__name__})"


def _reference_task(job: tuple[Path, str, Path]) -> str | None:
    """Worker: one reference's thumbnail, if the file still holds the bytes that
    were sent (else its thumbnail would show something else); None, or why not."""
    src, sha256, dst = job
    try:
        with src.open("rb") as file:
            data = file.read(REF_MAX_BYTES + 1)
        if hashlib.sha256(data).hexdigest() != sha256:
            return "file changed since it was sent"
        _thumbnail(io.BytesIO(data), dst, REF_THUMB_SIZE)
    except FileNotFoundError:
        return "file missing"
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        return f"file unreadable ({type(exc).__name__})"
    return None


def _thumbnail(
    src: Path | io.BytesIO, dst: Path, size: int = THUMB_SIZE
) -> tuple[tuple[int, int], int]:
    """Write `dst`, a JPEG of `src` at most `size` px; returns (size, mtime_ns).
    Written whole by rename and not synced: a thumbnail is made again from its
    image, so a crash may lose one but never leaves half of one."""
    with Image.open(src) as image:
        image.draft("RGB", (size, size))  # JPEG: decode at 1/2..1/8
        small = shrink(_flatten(image), size)
        small.load()  # before the file closes: an RGB `small` is `image` itself
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=THUMB_QUALITY)
    return small.size, outputs.write_whole(dst, buffer.getvalue())


def shrink(image: Image.Image, size: int) -> Image.Image:
    """`image` fitted into a `size` px square: averaged down by the largest whole
    factor (`reduce`, cheap), then bicubic for what is left (less than 2x). A
    1024 px square becomes 512 px with `reduce` alone; Lanczos for the rest cost
    twice the decode of a simulated PNG and showed no difference at 216 px."""
    width, height = image.size
    scale = min(1.0, size / max(width, height))
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    factor = min(width // target[0], height // target[1])
    if factor > 1:
        image = image.reduce(factor)
    if image.size != target:
        image = image.resize(target, Image.Resampling.BICUBIC)
    return image


def _flatten(image: Image.Image) -> Image.Image:
    """RGB, with any transparency composited onto white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")
