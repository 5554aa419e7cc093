"""`runner export`: copy a job's chosen images out, each with a JSON sidecar.

Owns: which images a mark filter chooses, the sidecar (`<image file>.json`: job,
key, prompt, settings, usage, mark and note, lineage), and copying without ever
moving or overwriting: a file already in DEST with the same bytes is left as it
is, one with other bytes stops the export before anything is written (a sidecar
an earlier export wrote for the same image is brought up to date). Must not
print, read input or exit.
"""

from __future__ import annotations

import filecmp
import json
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from runner import outputs
from runner.errors import OutputError, UsageError
from runner.reports import ExportedImage, ExportReport
from runner.runs.workspace import find_job

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from runner.runs.workspace import Workspace

# `--marked`: star, reject, any (either), none (neither); no filter: every image.
MARK_FILTERS = ("star", "reject", "any", "none")
SIDECAR_SUFFIX = ".json"
SHOWN_CONFLICTS = 10  # files named in the refusal; the rest are counted


def export(
    job: str, dest: Path, *, workspace: Workspace, marked: str | None = None
) -> ExportReport:
    """Copy the job's images chosen by `marked` (None: all of them) into `dest`,
    each with its sidecar."""
    if marked is not None and marked not in MARK_FILTERS:
        raise UsageError(
            f"unknown mark filter {marked!r}; use one of {', '.join(MARK_FILTERS)}"
        )
    store = workspace.open_store()
    try:
        row = find_job(store, job)
        rows = store.manifest_rows(row)
        chosen = [
            (item, image)
            for item in rows
            for image in item["outputs"]
            if _chosen(item["marks"].get(image), marked)
        ]
        requests = store.item_requests(row, [item["key"] for item, _ in chosen])
    finally:
        store.close()
    folder = workspace.job_folder(row.name)
    if dest.resolve() == (folder / outputs.IMAGES_DIR).resolve():
        raise UsageError(
            f"{dest} is the images folder of job {row.name} itself; export to "
            "another folder"
        )
    plan: list[_Step] = []
    missing: list[str] = []
    for item, image in chosen:
        source = folder / image
        if not source.is_file():
            missing.append(image)
            continue
        name = PurePath(image).name
        card = sidecar(row.name, item, image, requests.get(item["key"], {}))
        text = json.dumps(card, indent=2, ensure_ascii=False) + "\n"
        plan.append(
            _Step(
                image,
                source,
                dest / name,
                dest / (name + SIDECAR_SUFFIX),
                text.encode("utf-8"),
            )
        )
    _refuse_conflicts(dest, plan, row.name)
    return ExportReport(
        job=row.name,
        dest=dest,
        marked=marked,
        exported=[_copy(step) for step in plan],
        missing=missing,
    )


def sidecar(
    job: str, item: Mapping[str, Any], image: str, request: Mapping[str, Any]
) -> dict[str, Any]:
    """What an exported image's `<file>.json` says: where it came from and how it
    was made (the request's settings as sent), its usage, its mark and lineage."""
    mark = item["marks"].get(image) or {}
    settings = {
        "model": request.get("model"),
        "aspect_ratio": item["aspect_ratio"],
        "image_size": item["image_size"],
        "references": [
            {"path": ref.get("path"), "sha256": ref.get("sha256")}
            for ref in request.get("references", [])
        ],
        "generation": request.get("generation", {}),
        "system_instruction": request.get("system_instruction"),
    }
    if request.get("tools") is not None:
        settings["tools"] = request["tools"]
    return {
        "job": job,
        "key": item["key"],
        "image": image,
        "prompt_id": item["prompt_id"],
        "prompt": item["prompt"],
        "vars": item["vars"],
        "sample": item["sample"],
        "settings": settings,
        "usage": item["usage"],
        "finish_reason": item["finish_reason"],
        "simulated": item["simulated"],
        "mark": mark.get("mark"),
        "note": mark.get("note"),
        "marked_at": mark.get("updated_at"),
        # the parent (job, item key, image) of an image of a derived job (SPEC 6)
        "lineage": item.get("parent"),
    }


def _chosen(mark: Mapping[str, Any] | None, marked: str | None) -> bool:
    value = None if mark is None else mark.get("mark")
    if marked is None:
        return True
    if marked == "any":
        return value is not None
    if marked == "none":
        return value is None
    return value == marked


@dataclass(frozen=True, slots=True)
class _Step:
    """One image to export: its source, its copy and its sidecar's path and bytes."""

    image: str
    source: Path
    target: Path
    card: Path
    text: bytes


def _refuse_conflicts(dest: Path, plan: Sequence[_Step], job: str) -> None:
    """UsageError naming the files in `dest` the export would have to overwrite."""
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"{dest} is a file, not a folder; export to a folder")
    conflicts = []
    for step in plan:
        target = step.target
        if target.exists() and not (
            target.is_file() and filecmp.cmp(step.source, target, shallow=False)
        ):
            conflicts.append(target)
        if step.card.exists() and not _replaceable(step.card, step.text, job):
            conflicts.append(step.card)
    if conflicts:
        shown = ", ".join(str(p) for p in conflicts[:SHOWN_CONFLICTS])
        more = len(conflicts) - SHOWN_CONFLICTS
        rest = f" and {more} more" if more > 0 else ""
        raise UsageError(
            f"{len(conflicts)} file(s) in {dest} differ from what the export "
            f"would write: {shown}{rest}; nothing was copied. Move them away, or "
            "export to another folder"
        )


def _replaceable(card: Path, text: bytes, job: str) -> bool:
    """A sidecar already in DEST that may be (re)written: the same bytes, or one an
    export wrote for the same image of this job (its mark may have changed)."""
    if not card.is_file():
        return False
    try:
        old = card.read_bytes()
        if old == text:
            return True
        found = json.loads(old)
    except (OSError, ValueError):
        return False
    new = json.loads(text)
    same = ("job", "key", "image")
    return (
        isinstance(found, dict)
        and found.get("job") == job
        and all(found.get(k) == new[k] for k in same)
    )


def _copy(step: _Step) -> ExportedImage:
    """Copy one image and write its sidecar, unless identical ones are there."""
    try:
        copied = not step.target.exists()
        if copied:
            outputs.write_atomic(step.target, step.source.read_bytes())
        written = not (step.card.is_file() and step.card.read_bytes() == step.text)
        if written:
            outputs.write_atomic(step.card, step.text)
    except OSError as exc:
        raise OutputError(
            f"cannot write in {step.target.parent} ({exc.strerror or exc}); free "
            "space or fix its permissions, then export again (what was copied is "
            "kept)"
        ) from exc
    return ExportedImage(step.image, step.target, step.card, copied, written)
