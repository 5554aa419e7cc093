"""`runner mark`: star, reject, clear or annotate a job's images from a terminal.

Owns: what the names a user types mean (SPEC 6: an image's file name, or an item
key prefix naming all of that item's images; a path ending in the file name and
the name without its extension work too), the one error listing every name that
names nothing or more than one item (with the candidates), what each flag changes,
and `set_marks`: the store write and the manifest rewrite that carry a change
(the served gallery changes marks through it too). Must not print, read input or
exit.
"""

from __future__ import annotations

import difflib
import re
from pathlib import PurePath
from typing import TYPE_CHECKING

from runner import outputs
from runner.errors import OutputError, UsageError
from runner.reports import MarkReport
from runner.runs.workspace import find_job
from runner.store import KEEP, MARKS

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path

    from runner.runs.workspace import Workspace
    from runner.store import ItemImages, JobRow, Keep, Mark, Store

CHANGES = (*MARKS, "clear")  # what `runner mark` sets besides a note
SHOWN_CANDIDATES = 5  # items listed for an ambiguous key prefix
_KEY_PREFIX = re.compile(r"[0-9a-f]+")


def mark(
    job: str,
    names: Sequence[str],
    *,
    workspace: Workspace,
    change: str | None,
    note: str | None = None,
) -> MarkReport:
    """Star, reject or clear (`change`) the named images of a job, and/or set their
    `note` ("" removes it). A clear removes the note too unless one is given; a
    note alone keeps the mark. Nothing changes unless every name is found."""
    mark_to, note_to = _what_changes(change, note)
    store = workspace.open_store()
    try:
        row = find_job(store, job)
        targets = resolve_names(names, store.images_of(row), row.name)
        marks, manifest = set_marks(
            store, row, workspace.job_folder(row.name), targets, mark_to, note_to
        )
    finally:
        store.close()
    return MarkReport(row.name, change or "note", tuple(marks), manifest)


def set_marks(
    store: Store,
    job: JobRow,
    folder: Path,
    targets: Sequence[tuple[int, str]],
    mark_to: str | None | Keep,
    note_to: str | None | Keep,
) -> tuple[list[Mark], Path | None]:
    """Write the marks and notes of these (item id, image) to the store at once,
    then rewrite the job's manifest in `folder` to carry them; the marks as they
    are now, and the manifest (None: the job has no folder). `runner mark` and the
    served gallery both change marks through here."""
    marks = store.set_marks(job, targets, mark_to, note_to)
    if not folder.is_dir():
        return marks, None
    try:
        return marks, outputs.write_manifest(folder, store.manifest_rows(job))
    except OSError as exc:
        raise OutputError(
            f"the marks are saved, but the manifest in {folder} could not "
            f"be rewritten ({exc.strerror or exc}); fix the folder, then "
            f"`runner review {job.name}` or any run rewrites it"
        ) from exc


def resolve_names(
    names: Sequence[str], images: Sequence[ItemImages], job: str
) -> list[tuple[int, str]]:
    """(item id, image) of every image the names name, in order, each once;
    UsageError listing each name that names nothing, or more than one item."""
    files: dict[str, tuple[int, str]] = {}
    stems: dict[str, tuple[int, str]] = {}
    for item in images:
        for image in item.outputs:
            path = PurePath(image)
            files[path.name] = stems[path.stem] = (item.item_id, image)
    by_name = stems | files
    targets: list[tuple[int, str]] = []
    problems: list[str] = []
    for typed in names:
        name = PurePath(typed).name if typed.strip() else ""
        if name in by_name:
            targets.append(by_name[name])
            continue
        prefix = name.lower()
        items = (
            [item for item in images if item.key.startswith(prefix)]
            if _KEY_PREFIX.fullmatch(prefix)
            else []
        )
        if len(items) == 1:
            targets.extend((items[0].item_id, image) for image in items[0].outputs)
        elif items:
            problems.append(_ambiguous(typed, items))
        else:
            problems.append(_unknown(typed, name, files, job))
    if problems:
        raise UsageError("\n".join(problems))
    return list(dict.fromkeys(targets))


def _what_changes(
    change: str | None, note: str | None
) -> tuple[str | None | Keep, str | None | Keep]:
    """The mark and note to write for these flags (KEEP: left as it is)."""
    if change is None and note is None:
        raise UsageError(
            "say what to do with the images: --star, --reject, --clear or --note TEXT"
        )
    if change is not None and change not in CHANGES:
        raise UsageError(f"unknown change {change!r}; use one of {', '.join(CHANGES)}")
    mark_to: str | None | Keep = KEEP
    if change is not None:
        mark_to = None if change == "clear" else change
    note_to: str | None | Keep = KEEP
    if note is not None:
        note_to = note.strip() or None
    elif change == "clear":
        note_to = None
    return mark_to, note_to


def _ambiguous(typed: str, items: Sequence[ItemImages]) -> str:
    shown = ", ".join(
        f"{item.key[:12]} ({PurePath(item.outputs[0]).name})"
        for item in items[:SHOWN_CANDIDATES]
    )
    more = len(items) - SHOWN_CANDIDATES
    rest = f" and {more} more" if more > 0 else ""
    return (
        f"'{typed}' starts the keys of {len(items)} items: {shown}{rest}; type more "
        "of the key, or the image's file name"
    )


def _unknown(typed: str, name: str, files: Iterable[str], job: str) -> str:
    # A job's file names all look alike (SPEC 4): only a near miss is suggested.
    close = difflib.get_close_matches(name, list(files), n=3, cutoff=0.85)
    hint = (
        f"did you mean {' or '.join(close)}?"
        if close
        else f"see the file names in the manifest or gallery of {job}"
    )
    return (
        f"'{typed}' names no image of job {job} (neither an image's file name nor "
        f"the start of the key of an item with images); {hint}"
    )
