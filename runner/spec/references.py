"""Reference image files: where a written path points, and whether it is an image.

Owns: resolving a path against the job file's folder, reading the file within the
API's size limit, checking it with Pillow (format, pixel limit, full decode) and
hashing its bytes. Must not know YAML: problems are raised as `ReferenceProblem`
with the whole message, and the caller adds the file and line.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import itertools
import os
import re
import stat
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from runner.spec.messages import quote, reason, show

MAX_REFERENCE_BYTES = 7 * 1024 * 1024  # the API's limit for one inline image
MAX_REFERENCE_PIXELS = 50_000_000

ImageFacts = tuple[str, str, int, int, int]  # sha256, mime type, width, height, size


class ReferenceProblem(Exception):
    """Why a reference path or file cannot be used: a whole message, minus the line."""


def locate(base_dir: Path, written: str) -> Path:
    """The absolute path a reference path written in the job file points at."""
    if not written.strip():
        raise ReferenceProblem(
            "a reference image path is empty; write the path of a PNG or JPEG "
            "(or [] for a text-only set)"
        )
    if _CONTROL_RE.search(written):
        raise ReferenceProblem(
            f"reference image path {show(written)} contains a control "
            "character (a line break or tab?); fix the path"
        )
    try:
        return (base_dir / Path(written).expanduser()).resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise ReferenceProblem(
            f"reference image path {show(written)} cannot be resolved "
            f"({reason(exc)}); fix the path"
        ) from None


def inspect_reference(written: str, abs_path: Path) -> ImageFacts:
    """Read one reference file and check it is an image the API takes."""
    ref = f"reference image {show(written)}"
    try:
        info = abs_path.stat()
        if stat.S_ISREG(info.st_mode) and info.st_size <= MAX_REFERENCE_BYTES:
            with abs_path.open("rb") as handle:
                data = handle.read(MAX_REFERENCE_BYTES + 1)
        else:
            data = b""
    except (FileNotFoundError, NotADirectoryError):
        close = near_miss(written, abs_path)
        hint = f"; did you mean {show(close)}? Paths" if close else "; paths"
        raise ReferenceProblem(
            f"{ref} not found (looked for {quote(str(abs_path))}){hint} are "
            "relative to the job file's folder: fix the path or add the file"
        ) from None
    except PermissionError:
        raise ReferenceProblem(
            f"{ref} cannot be read (permission denied); fix its permissions"
        ) from None
    except OSError as exc:
        raise ReferenceProblem(
            f"{ref} cannot be read ({reason(exc)}); check the file"
        ) from None
    if stat.S_ISDIR(info.st_mode):
        raise ReferenceProblem(
            f"{ref} is a folder, not an image file; list the image files inside "
            "it one by one"
        )
    if not stat.S_ISREG(info.st_mode):
        raise ReferenceProblem(
            f"{ref} is not a regular file; point at a PNG or JPEG file"
        )
    size = max(info.st_size, len(data))
    if size > MAX_REFERENCE_BYTES:
        raise ReferenceProblem(
            f"{ref} is {size / _MIB:.1f} MiB, over the API's "
            f"{MAX_REFERENCE_BYTES // _MIB} MiB limit for one image; make it "
            "smaller (fewer pixels, or save it as JPEG)"
        )
    if not data:
        raise ReferenceProblem(
            f"{ref} is an empty file, not an image; convert it to PNG or JPEG"
        )
    try:
        mime_type, width, height = inspect_image(data)
    except _ImageProblem as exc:
        raise ReferenceProblem(f"{ref} {exc}") from None
    return hashlib.sha256(data).hexdigest(), mime_type, width, height, len(data)


def near_miss(written: str, abs_path: Path) -> str | None:
    """The path `written` probably meant ('refs/logos.png' for 'refs/logo.png'): a
    file of a close name where it points, or in a folder of a close name."""
    folder, name = abs_path.parent, abs_path.name
    head = written.replace("\\", "/").rpartition("/")[0]
    if folder.is_dir():
        close = _close_name(folder, name)
        return None if close is None else _join(head, close)
    # The folder is misspelt: the same file name, or a close one, in a folder of a
    # close name beside it.
    near_folder = _close_name(folder.parent, folder.name)
    if near_folder is None:
        return None
    candidate = folder.parent / near_folder
    close = name if (candidate / name).is_file() else _close_name(candidate, name)
    if close is None:
        return None
    return _join(_join(head.rpartition("/")[0], near_folder), close)


def inspect_image(data: bytes) -> tuple[str, int, int]:
    """(mime type, width, height) of image bytes as decided by Pillow."""
    convert = "convert it to PNG or JPEG"
    width = height = 0
    with warnings.catch_warnings():
        # Other Pillow warnings (odd EXIF, palette transparency) are harmless here;
        # a decompression-bomb warning is not.
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                kind = image.format or "unknown"
                if kind not in _MIME_BY_FORMAT:
                    raise _ImageProblem(
                        f"is a {kind} image, which the API does not take; {convert}"
                    )
                if width * height > MAX_REFERENCE_PIXELS:
                    raise Image.DecompressionBombError(kind)
                image.verify()
            # verify() leaves the image unusable; decode it fully from scratch to
            # catch truncated pixel data that the header check cannot see.
            with Image.open(io.BytesIO(data)) as image:
                image.load()
        except _ImageProblem:
            raise
        except UnidentifiedImageError:
            raise _ImageProblem(
                f"is not an image (PNG, JPEG or WEBP expected); {convert}"
            ) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            size = f" ({width}x{height})" if width else ""
            raise _ImageProblem(
                f"has too many pixels{size}: over the "
                f"{MAX_REFERENCE_PIXELS // 1_000_000} million pixel limit (a "
                "decompression bomb?); resize it"
            ) from None
        # Pillow's decoders fail with many exception types (OSError, SyntaxError,
        # ValueError, EOFError, zlib/struct errors); all mean a damaged file.
        except Exception as exc:
            detail = " ".join(str(exc).split())[:120]
            detail = f" ({detail})" if detail else ""
            raise _ImageProblem(
                f"is damaged or truncated{detail}; export it again as PNG or JPEG"
            ) from None
    return _MIME_BY_FORMAT[kind], width, height


def _close_name(folder: Path, name: str) -> str | None:
    """The name in `folder` closest to `name` (difflib), among its first entries."""
    try:
        with os.scandir(folder) as entries:
            names = [e.name for e in itertools.islice(entries, _NAMES_COMPARED)]
    except OSError:
        return None
    close = difflib.get_close_matches(name, names, n=1, cutoff=_CLOSE_NAME)
    return close[0] if close else None


def _join(head: str, name: str) -> str:
    return f"{head}/{name}" if head else name


class _ImageProblem(Exception):
    """Why bytes are not a usable reference image, phrased to follow its path."""


_MIME_BY_FORMAT = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    # Phone cameras write multi-picture JPEGs that Pillow reports as MPO; the
    # bytes are still a JPEG the API accepts.
    "MPO": "image/jpeg",
    "WEBP": "image/webp",
}
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_MIB = 1024 * 1024
_NAMES_COMPARED = 10_000  # a huge folder is not read whole for a suggestion
_CLOSE_NAME = 0.8  # difflib ratio: logo.png ~ logos.png, not ~ photo.jpg
