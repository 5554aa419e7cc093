"""`runner init` and `runner schema`: a starter job folder, the job-file JSON Schema.

Owns: writing the starter folder (job.yaml, its JSON Schema beside it for editors,
and refs/ with a note on what goes there), never overwriting a file of the user's:
a job.yaml already there, or a job.schema.json that is not runner's, stops it
before anything is written. Imports the spec package only when called. Must not
open the store.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from runner.errors import UsageError
from runner.reports import Starter

if TYPE_CHECKING:
    from pathlib import Path

JOB_FILE = "job.yaml"
SCHEMA_FILE = "job.schema.json"
DEFAULT_JOB_NAME = "my-job"  # when the folder's name cannot name a job


def schema_text() -> str:
    """The job-file JSON Schema, as `runner schema` prints it."""
    from runner.spec.schema import schema_text

    return schema_text()


def init(folder: Path) -> Starter:
    """Write a starter job file, its schema and a refs/ folder into `folder`."""
    from runner.spec.schema import SCHEMA_ID, schema_text
    from runner.spec.starter import REFS_FOLDER, REFS_NOTE, starter_job
    from runner.spec.types import valid_name

    job, schema, refs = folder / JOB_FILE, folder / SCHEMA_FILE, folder / REFS_FOLDER
    keep = "runner init never overwrites a file: give another folder (runner init DIR)"
    for path in (folder, refs):
        if path.exists() and not path.is_dir():
            raise UsageError(f"{path} is a file, not a folder; {keep}")
    if job.exists() or job.is_symlink():
        raise UsageError(f"{job} already exists; {keep}, or remove it")
    if schema.exists() and _schema_id(schema) != SCHEMA_ID:
        raise UsageError(f"{schema} exists and is not runner's job schema; {keep}")
    name = folder.absolute().resolve().name
    text = starter_job(
        name if valid_name(name) else DEFAULT_JOB_NAME, JOB_FILE, SCHEMA_FILE
    )
    try:
        refs.mkdir(parents=True, exist_ok=True)
        note = refs / "README.txt"
        if not note.exists():
            note.write_text(REFS_NOTE, encoding="utf-8")
        schema.write_text(schema_text(), encoding="utf-8")
        # "x": a job file that appeared since the check is still not overwritten.
        with job.open("x", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        if isinstance(exc, FileExistsError):
            raise UsageError(f"{job} already exists; {keep}, or remove it") from None
        reason = (exc.strerror or type(exc).__name__).lower()
        raise UsageError(
            f"cannot write the starter files in {folder} ({reason}); give a folder "
            "you can write to (runner init DIR)"
        ) from None
    return Starter(job_file=job, schema_file=schema, refs=refs)


def _schema_id(path: Path) -> str | None:
    """The `$id` of a JSON Schema file; None when it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    found = data.get("$id") if isinstance(data, dict) else None
    return found if isinstance(found, str) else None
