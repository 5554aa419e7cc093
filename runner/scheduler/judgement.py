"""What an answer means: for its item (a terminal status, or a retry after how long)
and for the run (a stop, or a pause after a 429).

Pure rules over an `Outcome`, the item's `History` and the `RunSettings`; the run
loop acts on what they say. Must not use anyio, touch the store or do I/O; the
randomness of the jitter is a parameter, so every rule can be tested as a table.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from runner.client import Kind
from runner.store import AttemptResult

if TYPE_CHECKING:
    from runner.client import Outcome
    from runner.scheduler.settings import RunSettings

DEFAULT_MAX_HINT = 900.0  # longest server-requested wait honoured before giving up

# Draws a float between its two bounds: random.uniform, or a fixed one in tests.
Uniform = Callable[[float, float], float]


@dataclass(frozen=True, slots=True)
class History:
    """What an item has used so far: tries (all causes) and unknown outcomes."""

    tries: int = 0
    unknown: int = 0

    def after(self, result: AttemptResult) -> History:
        return History(
            self.tries + int(result.counts_as_try),
            self.unknown + int(result.counts_as_unknown),
        )


def judge(
    outcome: Outcome, saved: Sequence[str], history: History, settings: RunSettings
) -> AttemptResult:
    """What an answer means for its item, given the tries it has used; `saved` are
    the image paths written for a success."""
    reason = outcome.reason
    if outcome.extra_urls and not reason:
        # A relay's image URL is part of the record: where the bytes came from.
        reason = "image fetched from " + ", ".join(outcome.extra_urls)
    result = AttemptResult(
        outcome=str(outcome.kind),
        reason=reason,
        item_status="pending",
        http_status=outcome.http_status,
        finish_reason=outcome.finish_reason,
        usage=outcome.usage,
        model_version=outcome.model_version,
        response_id=outcome.response_id,
        latency=outcome.latency,
        retry_after=outcome.retry_after,
        parts=outcome.parts,
        grounding=outcome.grounding,
    )
    max_attempts = settings.max_attempts
    kind = outcome.kind
    if kind is Kind.SUCCESS:
        return replace(result, item_status="succeeded", outputs=saved)
    if kind is Kind.BLOCKED:
        return replace(result, item_status="blocked")
    if kind is Kind.FATAL_ITEM:
        return replace(result, item_status="failed")
    if kind is Kind.FATAL_RUN:
        return replace(result, counts_as_try=False)
    if kind is Kind.UNKNOWN:
        result = replace(result, counts_as_unknown=True)
        if history.unknown + 1 > settings.max_unknown_retries:
            reason = (
                f"{outcome.reason} (outcome unknown, possibly billed; not sent "
                "again to avoid paying twice: `runner retry` sends it again)"
            )
            return replace(result, item_status="failed", reason=reason)
    if history.tries + 1 >= max_attempts:
        reason = f"{outcome.reason} (gave up after {max_attempts} attempts)"
        return replace(result, item_status="failed", reason=reason)
    return result


def stops_run(kind: str) -> bool:
    """After this outcome nothing more is sent: auth, balance, the daily quota, or
    images that cannot be written (every further answer would be lost too)."""
    return kind == Kind.FATAL_RUN


def run_pause(
    outcome: Outcome,
    history: History,
    settings: RunSettings,
    uniform: Uniform = random.uniform,
) -> float | None:
    """Seconds a 429 pauses the whole run (the backoff of the item's next try), or
    None: any other answer, and a run-fatal 429 (the daily quota) stops it instead."""
    if stops_run(outcome.kind) or outcome.http_status != 429:
        return None
    return retry_delay(history.tries + 1, outcome.retry_after, settings, uniform)


def next_try(
    result: AttemptResult,
    history: History,
    settings: RunSettings,
    uniform: Uniform = random.uniform,
) -> float | None:
    """Seconds before the item is sent again, `history` counting `result`; None if
    it is not sent again in this run (terminal, or the run stops)."""
    if result.item_status != "pending" or stops_run(result.outcome):
        return None
    return retry_delay(history.tries, result.retry_after, settings, uniform)


def retry_delay(
    tries: int,
    hint: float | None,
    settings: RunSettings,
    uniform: Uniform = random.uniform,
) -> float:
    """Exponential backoff with jitter after `tries` tries, or the server's hint."""
    base = min(settings.backoff_cap, settings.backoff_base * 2.0 ** max(tries - 1, 0))
    jittered = base / 2 + uniform(0, base / 2)
    if hint is not None and math.isfinite(hint):
        # Honour the server's wait, spread a little so retries do not arrive as one.
        return float(min(hint, DEFAULT_MAX_HINT) * uniform(1.0, 1.1))
    return jittered
