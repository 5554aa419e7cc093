"""Job names for shell completion, read straight from the SQLite store file.

Owns: the names a JOB argument completes to, through the fast reader
(`runner.store.reader`): it never creates, migrates or writes a store, and answers
nothing rather than fail (a completion must not print errors into a shell). Must
not import SQLAlchemy or the sending side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.store import reader

if TYPE_CHECKING:
    from runner.runs.workspace import Workspace


def job_names(workspace: Workspace, prefix: str = "") -> list[str]:
    """Names of the jobs in the workspace's store that start with `prefix`; [] when
    there is no store, it is not a plain SQLite file, or anything goes wrong."""
    try:
        path = reader.store_file(workspace.output_root, workspace.db_url)
        if path is None:
            return []
        with reader.StoreReader(path) as store:
            return [name for name in store.job_names() if name.startswith(prefix)]
    except Exception:  # any doubt: no completions, never a traceback in a shell
        return []
