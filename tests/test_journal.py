"""No paid answer is lost: an answer whose images are written survives a store that
fails at that moment (the job folder's journal, replayed by the next run), and a run
that stopped before even the journal had it (its image files are adopted). Real
loopback HTTP to the simulated API and real SQLite files."""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from runner import outputs
from runner.errors import StoreError
from runner.scheduler.journal import Journal
from runner.store import AttemptEnd, Store
from tests.e2e import earlier_image_name, submit_prompts

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from runner.reports import RunReport
    from runner.simulate import SimServer
    from runner.store import Status

FAST = {"backoff_base": 0.01, "request_timeout": 5.0, "handle_signals": False}
PROMPTS = [f"a paid picture {n}" for n in range(6)]


async def submit(
    tmp_path: Path, sim: SimServer, prompts: Sequence[str] = PROMPTS
) -> tuple[RunReport, Status]:
    return await submit_prompts(
        tmp_path, sim.url, prompts, "concurrency: 2\n", FAST, Store.status
    )


def received(sim: SimServer) -> Counter[str]:
    """How many times the server received each prompt."""
    counts: Counter[str] = Counter()
    for body in sim.stats()["bodies"].values():
        counts[body["text"]] += body["received"]
    return counts


def journal_keys(tmp_path: Path) -> list[str]:
    return journal_keys_in(tmp_path / "out" / "t" / outputs.JOURNAL)


def no_journal(self: Journal, answers: object) -> None:
    """Journal.append on a full disk."""
    raise OSError(28, "No space left on device")


def fail_store_writes_of_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on the store refuses every batch that ends an attempt with usage:
    the answers were paid for, their images are on disk."""
    real = Store.record_attempts

    def failing(self: Store, changes: Any) -> list[int | None]:
        if any(isinstance(c, AttemptEnd) and c.result.usage for c in changes):
            raise StoreError("the store runner.db failed: database or disk is full")
        return real(self, changes)

    monkeypatch.setattr(Store, "record_attempts", failing)


async def test_answers_paid_for_while_the_store_fails_are_not_sent_again(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        fail_store_writes_of_answers(patch)
        with pytest.raises(StoreError, match="disk is full.*kept in .*journal.jsonl"):
            await submit(tmp_path, sim)
    journaled = journal_keys(tmp_path)
    assert journaled  # the answers that landed, with their images on disk
    answered = sim.stats()["images_sent"]
    assert len(journaled) == answered

    report, status = await submit(tmp_path, sim)

    # Nothing was paid twice: every prompt reached the server exactly once ...
    assert received(sim) == dict.fromkeys(PROMPTS, 1)
    assert report.exit_code == 0 and report.replayed == answered
    assert status.counts["succeeded"] == len(PROMPTS)
    # ... and the usage of the replayed answers is counted once.
    assert (
        status.usage["candidatesTokenCount"]
        == sim.stats()["usage"]["candidatesTokenCount"]
    )
    assert status.spend.requests == sim.stats()["requests"] == len(PROMPTS)
    assert not (tmp_path / "out" / "t" / outputs.JOURNAL).exists()


async def test_an_answer_no_store_nor_journal_took_is_adopted_from_its_images(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        fail_store_writes_of_answers(patch)
        patch.setattr(Journal, "append", no_journal)
        with pytest.raises(StoreError):
            await submit(tmp_path, sim)
    answered = sim.stats()["images_sent"]
    assert answered and not (tmp_path / "out" / "t" / outputs.JOURNAL).exists()

    report, status = await submit(tmp_path, sim)

    assert received(sim) == dict.fromkeys(PROMPTS, 1)
    assert report.exit_code == 0 and report.adopted == answered
    assert status.counts["succeeded"] == len(PROMPTS)
    # Its usage never reached the runner: counted as possibly paid, priced by
    # estimate, never as nothing.
    assert status.spend.unknown == answered
    rows = [
        json.loads(line)
        for line in (tmp_path / "out" / "t" / "manifest.jsonl").read_text().split("\n")
        if line
    ]
    for row in rows:
        (path,) = row["outputs"]
        assert (tmp_path / "out" / "t" / path).is_file()


async def test_image_files_named_before_var_values_were_in_names_are_adopted(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    prompts, settings = ["a {animal} at noon"], "vars:\n  animal: [fox, owl]\n"

    async def submit_vars() -> tuple[RunReport, Status]:
        return await submit_prompts(
            tmp_path, sim.url, prompts, settings, FAST, Store.status
        )

    # An earlier runner, which named files without var values, stopped before the
    # store or the journal had its answers.
    with monkeypatch.context() as patch:
        fail_store_writes_of_answers(patch)
        patch.setattr(Journal, "append", no_journal)
        patch.setattr(outputs, "item_image_name", earlier_image_name)
        with pytest.raises(StoreError):
            await submit_vars()
    images = tmp_path / "out" / "t" / outputs.IMAGES_DIR
    written = sorted(p.name for p in images.iterdir())
    assert len(written) == 2 and not any("fox" in n or "owl" in n for n in written)

    report, status = await submit_vars()

    assert sim.stats()["requests"] == 2  # nothing paid twice
    assert report.adopted == 2 and status.counts["succeeded"] == 2
    lines = (images.parent / "manifest.jsonl").read_text("utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    assert sorted(row["outputs"][0] for row in rows) == [
        f"{outputs.IMAGES_DIR}/{name}" for name in written
    ]


async def test_a_journal_the_store_already_has_is_not_counted_twice(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As after a crash that lost the journal's emptying (it is not fsynced).
    with monkeypatch.context() as patch:
        patch.setattr(Journal, "stored", lambda self, ids: None)
        first, before = await submit(tmp_path, sim)
    assert first.exit_code == 0
    assert len(journal_keys(tmp_path)) == len(PROMPTS)

    report, after = await submit(tmp_path, sim)

    assert report.replayed == 0 and sim.stats()["requests"] == len(PROMPTS)
    assert after.usage == before.usage and after.spend == before.spend
    assert not (tmp_path / "out" / "t" / outputs.JOURNAL).exists()


def test_a_journal_that_never_empties_is_rewritten_with_what_still_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.scheduler import journal as journal_module
    from tests.test_recorder import DONE

    monkeypatch.setattr(journal_module, "COMPACT_AT", 1)
    journal = Journal(tmp_path)
    journal.append([("k1", AttemptEnd(1, 1, DONE)), ("k2", AttemptEnd(2, 2, DONE))])
    journal.stored([1])  # a busy run: attempt 2 still waits for the store
    journal.append([("k3", AttemptEnd(3, 3, DONE))])
    assert journal_keys_in(journal.path) == ["k2", "k3"]
    journal.stored([2, 3])
    assert journal.path.read_text() == ""
    journal.close()
    assert not journal.path.exists()


def journal_keys_in(path: Path) -> list[str]:
    return [json.loads(line)["key"] for line in path.read_text("utf-8").splitlines()]
