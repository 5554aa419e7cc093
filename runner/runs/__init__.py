"""The runs layer: what each command does, from parsed inputs to one report.

`submit`, `retry`, `cancel`, `preview`, `status`, `review`, `list_jobs` (in
`commands`), `remove` and `prune` (in `removal`), `mark` (in `marking`), `export`
and `serve` (in `serving`: review --serve) are the CLI's entry points; each opens the
store, does the whole command and returns a report from `runner.reports`.
`execution.submit_spec` and `execution.retry_job` run a loaded spec or a stored
job on an open store (async; tests and benchmarks). The only layer that imports
the scheduler. Must not print, read input or exit.

    commands    one entry point per command, in one pass
    execution   one run: lease, scheduler, manifest
    planning    what a submit would send (plan preview, the cheap resubmit check)
    policy      when to ask before sending, when to rebuild the gallery
    settings    SendOptions and the one way a run's settings are made
    endpoint    the API to call and its key (URL check, key by host)
    job_status  a job's status, through the fast reader where it can
    removal     rm and prune: a job or its stale items out of the store
    marking     mark: star, reject, clear or annotate images named by the user
    export      export: chosen images copied out with JSON sidecars
    serving     review --serve: the gallery on loopback, marks written at once
    workspace   output root and store, finding a job by name or file
    starter     init (a starter job folder) and schema (the job-file JSON Schema)
    completion  job names for shell completion, from the store file
"""

from __future__ import annotations

from runner.runs.commands import (
    cancel,
    list_jobs,
    preview,
    retry,
    review,
    status,
    submit,
)
from runner.runs.completion import job_names
from runner.runs.endpoint import GOOGLE_HOST, GOOGLE_KEY_VARIABLE, RELAY_KEY_VARIABLE
from runner.runs.export import MARK_FILTERS, export
from runner.runs.job_status import quick_status, read_status
from runner.runs.marking import mark
from runner.runs.removal import prune, remove
from runner.runs.serving import serve
from runner.runs.settings import DEFAULT_BASE_URL, SendOptions
from runner.runs.starter import init, schema_text
from runner.runs.workspace import Workspace, find_job, is_job_file

__all__ = [
    "DEFAULT_BASE_URL",
    "MARK_FILTERS",
    "GOOGLE_HOST",
    "GOOGLE_KEY_VARIABLE",
    "RELAY_KEY_VARIABLE",
    "SendOptions",
    "Workspace",
    "cancel",
    "find_job",
    "export",
    "init",
    "is_job_file",
    "job_names",
    "list_jobs",
    "mark",
    "preview",
    "prune",
    "quick_status",
    "read_status",
    "remove",
    "retry",
    "review",
    "schema_text",
    "serve",
    "status",
    "submit",
]
