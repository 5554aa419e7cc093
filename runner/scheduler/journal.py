"""The job folder's journal of paid answers, and what the next run does with it.

Owns `journal.jsonl`: the recorder appends each batch's answers (one JSON line
each: attempt, item, key, the whole AttemptResult) with one write and one fsync
before the store write, and empties it once the store has them; `recover` replays
what a stopped run left in it, and adopts image files an open attempt wrote but
never recorded. Must not decide what an answer means or send anything.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

from runner import outputs
from runner.store import AttemptEnd, AttemptResult

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path

    from runner.store import JobRow, OpenAttempt, Store

# Past this size, entries still waiting for the store are rewritten into a new
# file (a busy run may never see the journal empty; it must not grow for ever).
COMPACT_AT = 1024 * 1024
_RESULT_FIELDS = tuple(f.name for f in fields(AttemptResult))
ADOPTED_REASON = (
    "recorded from its image files: the runner stopped before the store had the "
    "answer (its usage is unknown, so its cost is estimated)"
)


@dataclass(frozen=True, slots=True)
class Recovered:
    """What `recover` found of a stopped run's paid answers."""

    replayed: int  # answers taken from the journal into the store
    adopted: int  # items whose image files were found for an open attempt
    ignored: int  # journal entries this store has no open attempt for


class Journal:
    """Append-only JSON lines in the job folder, fsynced per batch; emptied when
    every line it holds is in the store. Thread-safe (the recorder's files thread
    appends, its store thread confirms)."""

    def __init__(self, job_folder: Path) -> None:
        self.path = job_folder / outputs.JOURNAL
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._waiting: dict[int, str] = {}  # attempt id -> its line
        self._size = 0

    def append(self, answers: Sequence[tuple[str, AttemptEnd]]) -> None:
        """Write (item key, AttemptEnd) pairs durably: one write, one fsync."""
        lines = {end.attempt_id: _line(key, end) for key, end in answers}
        data = "".join(lines.values()).encode("utf-8")
        with self._lock:
            if self._fd is None:
                flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
                self._fd = os.open(self.path, flags, outputs.FILE_MODE)
            os.write(self._fd, data)
            os.fsync(self._fd)
            self._waiting.update(lines)
            self._size += len(data)

    def stored(self, attempt_ids: Iterable[int]) -> None:
        """These attempts are in the store: forget them; empty the file when
        nothing is left waiting, rewrite it when it grew large."""
        with self._lock:
            for attempt_id in attempt_ids:
                self._waiting.pop(attempt_id, None)
            if self._fd is None:
                return
            if not self._waiting:
                # No fsync: a journal that comes back after a crash holds answers
                # the store has, which a replay skips.
                os.ftruncate(self._fd, 0)
                self._size = 0
            elif self._size > COMPACT_AT:
                data = "".join(self._waiting.values()).encode("utf-8")
                outputs.write_atomic(self.path, data)
                os.close(self._fd)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
                self._size = len(data)

    def close(self) -> None:
        """Close the file; remove it if nothing in it waits for the store."""
        with self._lock:
            if self._fd is None:
                return
            os.close(self._fd)
            self._fd = None
            if not self._waiting:
                self.path.unlink(missing_ok=True)


def recover(store: Store, job: JobRow, job_folder: Path) -> Recovered:
    """Record what a stopped run was paid for but never stored: its journal's
    answers, then, for attempts still open, the image files they wrote. Call while
    holding the job's lease and before `Store.recover_abandoned`."""
    path = job_folder / outputs.JOURNAL
    entries = _read(path)
    open_attempts = store.open_attempts(job)
    by_id = {a.attempt_id: a for a in open_attempts}
    ends: list[AttemptEnd] = []
    ignored = 0
    for entry in entries.values():
        attempt = by_id.pop(entry["attempt"], None)
        if attempt is None or attempt.key != entry["key"]:
            ignored += 1  # in the store already, or another store's attempt
            continue
        result = AttemptResult(**entry["result"])
        ends.append(AttemptEnd(attempt.attempt_id, attempt.item_id, result))
    replayed = len(ends)
    ends += _adopt(job_folder, list(by_id.values()))
    if ends:
        store.record_attempts(ends)
    path.unlink(missing_ok=True)
    return Recovered(replayed=replayed, adopted=len(ends) - replayed, ignored=ignored)


# -- helpers ----------------------------------------------------------------------


def _line(key: str, end: AttemptEnd) -> str:
    result = {name: getattr(end.result, name) for name in _RESULT_FIELDS}
    result["outputs"] = list(end.result.outputs)
    entry = {"attempt": end.attempt_id, "item": end.item_id, "key": key}
    return json.dumps({**entry, "result": result}, ensure_ascii=False) + "\n"


def _read(path: Path) -> dict[int, dict[str, Any]]:
    """The journal's entries by attempt id; a torn last line (a kill mid-write,
    before its fsync returned, so never confirmed to anyone) is skipped."""
    try:
        text = path.read_text("utf-8", errors="replace")
    except FileNotFoundError:
        return {}
    entries: dict[int, dict[str, Any]] = {}
    for line in text.splitlines():
        try:
            entry = json.loads(line)
            entries[int(entry["attempt"])] = entry
        except (ValueError, KeyError, TypeError):
            continue
    return entries


def _adopt(job_folder: Path, open_attempts: Sequence[OpenAttempt]) -> list[AttemptEnd]:
    """An open attempt whose item's image files were written after it began: the
    answer came and its images were moved into place, then the run stopped before
    the store (or the journal) had it. The item succeeded with those files."""
    folder = job_folder / outputs.IMAGES_DIR
    if not open_attempts or not folder.is_dir():
        return []
    # Today's names and, for items with var values, the names without them that
    # an earlier runner gave the files of an answer it never recorded.
    prefixes = {stem: a for a in open_attempts for stem in outputs.image_stems(a)}
    found: dict[int, list[tuple[int, str]]] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            attempt, index = _match(entry.name, prefixes)
            if attempt is None:
                continue
            began = datetime.fromisoformat(attempt.started_at).timestamp()
            # Older files are an earlier answer's (say, a simulated one replaced).
            if entry.stat().st_mtime >= began - 1.0:
                found.setdefault(attempt.attempt_id, []).append((index, entry.name))
    ends = []
    for attempt in open_attempts:
        names = sorted(found.get(attempt.attempt_id, ()))
        if not names or names[0][0] != 0:
            continue
        paths = [f"{outputs.IMAGES_DIR}/{name}" for _, name in names]
        result = AttemptResult(
            outcome="unknown",
            reason=ADOPTED_REASON,
            item_status="succeeded",
            outputs=paths,
            counts_as_try=True,
        )
        ends.append(AttemptEnd(attempt.attempt_id, attempt.item_id, result))
    return ends


def _match(
    name: str, prefixes: dict[str, OpenAttempt]
) -> tuple[OpenAttempt | None, int]:
    """The open attempt an image file name belongs to, and the image's index."""
    if name.startswith("."):
        return None, 0  # a temp file
    stem, dot, _ = name.rpartition(".")
    if not dot:
        return None, 0
    attempt = prefixes.get(stem)
    if attempt is not None:
        return attempt, 0
    base, _, number = stem.rpartition("_")
    attempt = prefixes.get(base)
    if attempt is not None and number.isdigit() and int(number) >= 2:
        return attempt, int(number) - 1
    return None, 0
