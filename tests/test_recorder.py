"""The recorder: a run's attempts are written in batches, each change reaches the
store even if its task is cancelled, a failure goes to the change it concerns, and
each batch of paid answers is one journal append before the store write."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import TYPE_CHECKING

import anyio
import pytest

from runner.errors import StoreError
from runner.scheduler.journal import Journal
from runner.scheduler.recorder import Recorder
from runner.store import AttemptEnd, AttemptResult, JobRow, Store

from .test_store import make_item

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

DONE = AttemptResult(
    outcome="success",
    reason="",
    item_status="succeeded",
    http_status=200,
    usage={
        "promptTokenCount": 10,
        "candidatesTokenCount": 1290,
        "totalTokenCount": 1300,
    },
    outputs=["images/a.png"],
)


@pytest.fixture
def job(store: Store) -> JobRow:
    job = store.upsert_job("demo", "jobs/demo.yaml", "m")
    store.sync_plan(job, [make_item(f"p{n}", position=n) for n in range(20)])
    return job


async def test_changes_handed_over_together_are_written_in_one_transaction(
    store: Store, job: JobRow
) -> None:
    recorder = Recorder(store)
    work = store.pending_items(job)
    run_id = store.start_run(job, "submit")
    ids: dict[int, int] = {}

    async def one(item_id: int) -> None:
        ids[item_id] = await recorder.begin(item_id, run_id, 1)
        attempt = ids[item_id]
        await recorder.end(lambda: (AttemptEnd(attempt, item_id, DONE), None))

    async with anyio.create_task_group() as tg:
        tg.start_soon(recorder.serve)
        async with anyio.create_task_group() as tasks:
            for item in work:
                tasks.start_soon(one, item.id)
        recorder.close()

    assert len(set(ids.values())) == len(work) == 20
    # 20 begins handed over in one turn of the loop, then 20 ends: not 40.
    assert recorder.batches < 10
    status = store.status(job)
    assert status.counts["succeeded"] == 20
    assert status.spend.attempts == 20
    assert status.spend.tokens["total_tokens"] == 20 * 1300


async def test_a_change_handed_over_is_written_even_if_its_task_is_cancelled(
    store: Store, job: JobRow
) -> None:
    recorder = Recorder(store)
    item = store.pending_items(job)[0]
    run_id = store.start_run(job, "submit")
    attempt = store.begin_attempt(item.id, run_id, 1)
    writing = anyio.Event()
    release = threading.Event()

    def prepare() -> tuple[AttemptEnd, None]:
        anyio.from_thread.run_sync(writing.set)
        release.wait(timeout=10)  # until the task is cancelled
        return AttemptEnd(attempt, item.id, DONE), None

    async with anyio.create_task_group() as tg:
        tg.start_soon(recorder.serve)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(recorder.end, prepare)
            await writing.wait()
            tasks.cancel_scope.cancel()  # while its change is being written
            with anyio.CancelScope(shield=True):  # (this task is cancelled too)
                await anyio.wait_all_tasks_blocked()  # the cancellation reached it
            release.set()
        # The cancelled task returned only once its change was in the store.
        assert store.status(job).counts["succeeded"] == 1
        recorder.close()

    assert store.status(job).counts["succeeded"] == 1


async def test_a_failing_prepare_fails_its_own_task_and_records_its_fallback(
    store: Store, job: JobRow
) -> None:
    recorder = Recorder(store)
    first, second = store.pending_items(job)[:2]
    run_id = store.start_run(job, "submit")
    a1 = store.begin_attempt(first.id, run_id, 1)
    a2 = store.begin_attempt(second.id, run_id, 1)

    def broken() -> tuple[AttemptEnd, None]:
        raise OSError(28, "No space left on device")

    def usage_only(error: Exception) -> AttemptEnd:
        # The answer was paid for: its usage is kept, the item is sent again.
        unsaved = replace(
            DONE,
            outcome="unknown",
            reason=str(error),
            item_status="pending",
            outputs=(),
        )
        return AttemptEnd(a1, first.id, unsaved)

    errors: list[BaseException] = []

    async def end_broken() -> None:
        try:
            await recorder.end_soon(broken, key=first.key, fallback=usage_only).result()
        except OSError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(recorder.serve)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(end_broken)
            tasks.start_soon(recorder.end, lambda: (AttemptEnd(a2, second.id, DONE), 1))
        recorder.close()

    assert [str(e) for e in errors] == ["[Errno 28] No space left on device"]
    # Not left `running` (the next run would close it as abandoned and lose its
    # usage): pending, with the answer's usage counted once.
    statuses = store.statuses_of(job, [first.key, second.key])
    assert statuses == {first.key: "pending", second.key: "succeeded"}
    spend = store.status(job).spend
    assert spend.tokens["total_tokens"] == 2 * 1300 and spend.images == 1


async def test_a_store_failure_reaches_every_change_of_the_batch(
    store: Store, job: JobRow, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder(store)
    work = store.pending_items(job)[:3]
    run_id = store.start_run(job, "submit")

    def refuse(changes: object) -> list[int | None]:
        raise StoreError("the store runner.db failed: disk I/O error")

    monkeypatch.setattr(store, "record_attempts", refuse)
    errors: list[BaseException] = []

    async def begin(item_id: int) -> None:
        try:
            await recorder.begin(item_id, run_id, 1)
        except StoreError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(recorder.serve)
        async with anyio.create_task_group() as tasks:
            for item in work:
                tasks.start_soon(begin, item.id)
        recorder.close()

    assert len(errors) == 3
    assert all("disk I/O error" in str(e) for e in errors)


def test_one_batch_of_begins_and_ends_over_two_jobs_keeps_each_jobs_totals(
    store: Store, job: JobRow
) -> None:
    from runner.store import AttemptStart

    other = store.upsert_job("other", "jobs/other.yaml", "m")
    big = [replace(make_item(f"q{n}", position=n), image_size="4K") for n in range(3)]
    store.sync_plan(other, big)
    mine, theirs = store.pending_items(job)[:3], store.pending_items(other)
    run_mine, run_theirs = store.start_run(job, "submit"), store.start_run(other, "x")
    begun = [store.begin_attempt(i.id, run_mine, 1) for i in mine[:2]]
    failed = replace(DONE, outcome="unknown", item_status="pending", usage=None)

    ids = store.record_attempts(
        [
            AttemptEnd(begun[0], mine[0].id, DONE),
            AttemptStart(theirs[0].id, run_theirs, 1),
            AttemptEnd(begun[1], mine[1].id, failed),
            AttemptStart(mine[2].id, run_mine, 1),
            AttemptStart(theirs[1].id, run_theirs, 1),
        ]
    )

    assert ids[0] is None and ids[2] is None
    new = [i for i in ids if i is not None]
    assert len(new) == 3 and len(set(new) | set(begun)) == 5
    mine_status, theirs_status = store.status(job), store.status(other)
    assert mine_status.counts["succeeded"] == 1 and mine_status.counts["running"] == 1
    assert mine_status.spend.attempts == 2 and mine_status.spend.unknown == 1
    assert mine_status.spend.tokens["total_tokens"] == 1300
    assert theirs_status.counts["running"] == 2 and theirs_status.spend.attempts == 0


async def test_a_batch_of_answers_is_one_journal_append_emptied_once_stored(
    store: Store, job: JobRow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal(tmp_path)
    appended: list[int] = []
    real_append = Journal.append

    def counting(self: Journal, answers: Sequence[tuple[str, AttemptEnd]]) -> None:
        appended.append(len(answers))
        real_append(self, answers)
        assert self.path.read_text().count("\n") >= len(answers)  # before the store

    monkeypatch.setattr(Journal, "append", counting)
    recorder = Recorder(store, journal)
    work = store.pending_items(job)
    run_id = store.start_run(job, "submit")
    begun = {item.id: store.begin_attempt(item.id, run_id, 1) for item in work}

    async with anyio.create_task_group() as tg:
        tg.start_soon(recorder.serve)
        async with anyio.create_task_group() as tasks:
            for item in work:
                end = AttemptEnd(begun[item.id], item.id, DONE)
                tasks.start_soon(recorder.end, lambda end=end: (end, None))
        recorder.close()

    # 20 answers handed over in one turn: one write and one fsync, not 20.
    assert appended == [20]
    assert store.status(job).counts["succeeded"] == 20
    assert not journal.path.exists()  # emptied, then removed at the end
