"""An answer's images into the job's images folder, named by their item and by the
format their bytes show (the answer's kept parts then name each file); runs in the
recorder's files thread.

Owns what a write failure means for the outcome: bytes that are no image make it
UNKNOWN, a folder that refuses them (disk full, permissions) makes it FATAL_RUN.
Must not judge the item or touch the store.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from runner import client, outputs
from runner.client import Kind, Outcome

if TYPE_CHECKING:
    from pathlib import Path

    from runner.store import WorkItem


def save(
    job_folder: Path, item: WorkItem, outcome: Outcome
) -> tuple[Outcome, list[str]]:
    """Write a success's images; the outcome (changed if they could not be written)
    and the paths saved, relative to the job folder."""
    try:
        return _save_images(job_folder, item, outcome)
    except OSError as exc:
        _discard_spooled(outcome)  # what was not moved into place yet
        folder = job_folder / outputs.IMAGES_DIR
        reason = (
            f"cannot write images into {folder} ({exc.strerror or exc}); free "
            "space or fix its permissions, then submit again"
        )
        return replace(outcome, kind=Kind.FATAL_RUN, reason=reason, images=()), []


def _save_images(
    job_folder: Path, item: WorkItem, outcome: Outcome
) -> tuple[Outcome, list[str]]:
    """Bytes that are no image turn the outcome into UNKNOWN, since the call was
    made but nothing usable came back."""
    if outcome.kind is not Kind.SUCCESS:
        return outcome, []
    named: list[tuple[str, client.Image]] = []
    for index, image in enumerate(outcome.images):
        head = image.data if image.path is None else outputs.read_head(image.path)
        ext = outputs.sniff_extension(head)
        if ext is None:
            _discard_spooled(outcome)
            declared = image.mime_type or "no mime type"
            reason = f"the answer's image data is not an image (declared {declared})"
            return replace(outcome, kind=Kind.UNKNOWN, reason=reason, images=()), []
        name = outputs.item_image_name(item, index, ext)
        named.append((name, image))
    saved = []
    for name, image in named:
        target = job_folder / outputs.IMAGES_DIR / name
        if image.path is not None:
            outputs.move_into_place(image.path, target)
        else:
            outputs.write_atomic(target, image.data)
        saved.append(f"{outputs.IMAGES_DIR}/{name}")
    # The kept answer names the file each of its images went to (a later turn
    # reads the bytes back from there).
    return outcome.with_files(saved), saved


def _discard_spooled(outcome: Outcome) -> None:
    """Delete the answer's images spilled to temp files (none that were renamed)."""
    for image in outcome.images:
        if image.path is not None:
            image.path.unlink(missing_ok=True)
