"""`runner rm` and `runner prune`: a job, or its stale items, out of the store, and
their image files out of the job folder when asked.

Owns: the question before removing (asked through the caller's `confirm`; nobody to
ask means `--yes` is needed; prune counts only the stale items it may take: those
with a marked image or waiting in a live batch stay), the store call, and deleting
only the files the removed rows named (with their thumbnails), or for a whole job
also the gallery files built from them. Must not print, read input or exit.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, TypeAlias

from runner.errors import UsageError
from runner.reports import Removal, RemovalQuestion
from runner.runs.workspace import find_job

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path

    from runner.runs.workspace import Workspace

# Puts the question to the user; True means remove.
ConfirmRemoval: TypeAlias = "Callable[[RemovalQuestion], bool]"


def remove(
    job: str,
    *,
    workspace: Workspace,
    images: bool,
    yes: bool,
    confirm: ConfirmRemoval | None,
) -> Removal:
    """Delete a job from the store (and its images with `images`)."""
    return _removal(job, "job", workspace, images, yes, confirm)


def prune(
    job: str,
    *,
    workspace: Workspace,
    images: bool,
    yes: bool,
    confirm: ConfirmRemoval | None,
) -> Removal:
    """Delete a job's stale items (no longer in its job file) from the store, and
    their images with `images`."""
    return _removal(job, "stale", workspace, images, yes, confirm)


def _removal(
    job: str,
    what: str,
    workspace: Workspace,
    images: bool,
    yes: bool,
    confirm: ConfirmRemoval | None,
) -> Removal:
    """`remove` (`what` "job") or `prune` ("stale")."""
    store = workspace.open_store()
    try:
        row = find_job(store, job)
        folder = workspace.job_folder(row.name)
        kept = waiting = 0
        if what == "job":
            store.check_removable(row)  # live batches: cancel or collect them first
            count = store.item_count(row)
        else:
            # marked images are never pruned, nor items waiting in a live batch:
            # they stay (store.prune_stale)
            kept, waiting = store.kept_stale(row)
            count = store.stale_count(row) - kept - waiting
        if not count and what == "stale":
            return Removal(row.name, what, 0, 0, 0, kept=kept, waiting=waiting)
        question = RemovalQuestion(row.name, what, count, folder if images else None)
        _ask(question, yes, confirm)
        removed = store.remove_job(row) if what == "job" else store.prune_stale(row)
    finally:
        store.close()
    deleted = _delete_images(folder, removed.outputs) if images else 0
    if images and what == "job":
        _delete_built(folder)
    return Removal(
        row.name,
        what,
        removed.items,
        removed.attempts,
        deleted,
        marks=removed.marks,
        kept=removed.kept,
        waiting=removed.waiting,
    )


def _ask(question: RemovalQuestion, yes: bool, confirm: ConfirmRemoval | None) -> None:
    if yes:
        return
    if confirm is None:
        raise UsageError(
            f"{question.summary}: not done, since nobody can be asked here; pass "
            "--yes to remove without asking"
        )
    if not confirm(question):
        raise UsageError("not confirmed; nothing was removed")


def _delete_images(folder: Path, outputs: Iterable[str]) -> int:
    """Delete these images (paths relative to the job folder, under images/) and
    their thumbnails; how many images went."""
    from runner.review.thumbnails import THUMBS_DIR

    deleted = 0
    for name in outputs:
        path = folder / name
        if path.parent != folder / "images":
            continue  # the store names images/<file>; nothing else is touched
        if path.is_file():
            path.unlink()
            deleted += 1
        (folder / THUMBS_DIR / f"{path.stem}.jpg").unlink(missing_ok=True)
    return deleted


def _delete_built(folder: Path) -> None:
    """The gallery and manifest of a removed job; its folder if nothing else is in
    it: what the gallery and the runs built from the images, by the names review
    and outputs give them."""
    from runner import outputs
    from runner.review.data import DATA_FILE
    from runner.review.page import INDEX
    from runner.review.sheets import CONTACT_DIR
    from runner.review.thumbnails import THUMBS_DIR

    for name in (THUMBS_DIR, CONTACT_DIR):
        shutil.rmtree(folder / name, ignore_errors=True)
    for name in (INDEX, DATA_FILE, outputs.MANIFEST):
        (folder / name).unlink(missing_ok=True)
    for empty in (folder / outputs.IMAGES_DIR, folder):
        try:
            empty.rmdir()  # only if nothing else is left in it
        except OSError:
            pass
