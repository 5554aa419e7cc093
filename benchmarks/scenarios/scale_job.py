"""The scale scenarios' job: a 100-prompt x vars grid of any size, and its store
made 99% done (three attempts per item, 300,000 for 100,000 items).

The store is written through the Store's own API (plan sync, runs, batched attempt
records), so its running totals and item columns are the store's, never a copy of
its rules. Must not write the store's tables any other way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from benchmarks.harness import MODEL
from runner.outputs import IMAGES_DIR, item_image_name
from runner.store import AttemptEnd, AttemptResult, AttemptStart

if TYPE_CHECKING:
    from pathlib import Path

    from runner.store import JobRow, Store, WorkItem

# Items per record_attempts call: one transaction each, so big batches keep the
# fixture fast; 10,000 rather than all 100,000 at once keeps the scale child's peak
# RSS near 220 MB instead of 650 MB, at the same speed.
FIXTURE_BATCH = 10_000
# Every 100th item is left pending after three transient failures.
LEFT_EVERY = 100

_USAGE = {
    "promptTokenCount": 12,
    "candidatesTokenCount": 1120,
    "thoughtsTokenCount": 180,
    "totalTokenCount": 1312,
    "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 1120}],
}
_SLOW_DOWN = "429 RESOURCE_EXHAUSTED: slow down"
_OVERLOADED = "503 UNAVAILABLE: The model is overloaded."


def write_scale_job(folder: Path, items: int) -> Path:
    """100 prompts x `style` x `subject` vars, `items` cells in all (a multiple of
    100); every rendered prompt differs."""
    per_prompt = max(1, items // 100)
    subjects = min(20, per_prompt)
    styles = max(1, per_prompt // subjects)
    lines = [
        "name: scale",
        f"model: {MODEL}",
        "concurrency: 64",
        "vars:",
        f"  style: [{', '.join(f'style{i:03d}' for i in range(styles))}]",
        f"  subject: [{', '.join(f'subject{i:02d}' for i in range(subjects))}]",
        "prompts:",
        *(f"  - 'scene {p:03d}: a {{subject}} in {{style}}'" for p in range(100)),
    ]
    path = folder / "scale.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def build_fixture(store: Store, job: JobRow) -> tuple[int, int]:
    """Make a freshly planned job 99% done, in one finished run: every item
    succeeded on its third attempt after a 429 and a 503, except every 100th,
    pending after three 503s. (items done, attempts)"""
    # All pending and in plan order, so an item's index is its position.
    work = store.pending_items(job)
    run_id = store.start_run(job, "submit")
    attempts = 0
    for first in range(0, len(work), FIXTURE_BATCH):
        batch = list(enumerate(work[first : first + FIXTURE_BATCH], first))
        for number in (1, 2, 3):
            # An item's next start must not share a call with its last end: a call
            # applies its starts before its ends.
            started = store.record_attempts(
                [AttemptStart(item.id, run_id, number) for _, item in batch]
            )
            store.record_attempts(
                [
                    AttemptEnd(attempt_id, item.id, _result(position, item, number))
                    for (position, item), attempt_id in zip(batch, started, strict=True)
                    if attempt_id is not None
                ]
            )
            attempts += len(started)
    store.end_run(run_id, "finished")
    return len(work) - len(work[LEFT_EVERY - 1 :: LEFT_EVERY]), attempts


def _transient(status: int, reason: str, retry_after: float | None) -> AttemptResult:
    return AttemptResult(
        outcome="transient",
        reason=reason,
        item_status="pending",
        http_status=status,
        latency=0.9,
        retry_after=retry_after,
    )


_DONE_FAILURES = (_transient(429, _SLOW_DOWN, 1.0), _transient(503, _OVERLOADED, 1.0))
_LEFT_FAILURE = _transient(503, _OVERLOADED, None)


def _result(position: int, item: WorkItem, number: int) -> AttemptResult:
    """How attempt `number` of the item at `position` ended."""
    if position % LEFT_EVERY == LEFT_EVERY - 1:
        return _LEFT_FAILURE
    if number <= len(_DONE_FAILURES):
        return _DONE_FAILURES[number - 1]
    name = item_image_name(item, 0, "png")
    return AttemptResult(
        outcome="success",
        reason="",
        item_status="succeeded",
        http_status=200,
        finish_reason="STOP",
        usage=_USAGE,
        model_version=MODEL,
        response_id="resp",
        latency=9.0,
        outputs=(f"{IMAGES_DIR}/{name}",),
    )
