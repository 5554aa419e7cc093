"""What an answer means: for its item (a terminal status, or a retry after how long)
and for the run (a stop, a pause after a 429, a base URL that cannot be reached,
the systematic-failure stop).

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
# "Image generation stopped because the generated image may be a recitation from a
# source" (FinishReason in googleapis/python-genai google/genai/types.py): an
# identical request often passes, so it is sent once more before counting as blocked.
IMAGE_RECITATION = "IMAGE_RECITATION"

# Draws a float between its two bounds: random.uniform, or a fixed one in tests.
Uniform = Callable[[float, float], float]


@dataclass(frozen=True, slots=True)
class History:
    """What an item has used so far: tries (all causes) and unknown outcomes, and
    the IMAGE_RECITATION answers it got in this run."""

    tries: int = 0
    unknown: int = 0
    recitations: int = 0

    def after(self, result: AttemptResult) -> History:
        return History(
            self.tries + int(result.counts_as_try),
            self.unknown + int(result.counts_as_unknown),
            self.recitations + int(result.finish_reason == IMAGE_RECITATION),
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
        if (
            outcome.finish_reason == IMAGE_RECITATION
            and not history.recitations
            and history.tries + 1 < max_attempts
        ):
            reason = f"{reason} (sent once more: an identical request often passes)"
            return replace(result, reason=reason)
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
    """After this outcome nothing more is sent: every other request would fail the
    same way (key, access, balance, quota, model, location, base URL), or images
    cannot be written (every further answer would be lost too). Its item stays
    pending and the attempt is no try of its own."""
    return kind == Kind.FATAL_RUN


def unreachable(outcome: Outcome) -> Outcome:
    """The run-fatal form of a connection that could not be opened, a second time,
    while the base URL has answered nothing in this run: the URL is wrong or its
    server is down, and every other request would fail alike."""
    return replace(
        outcome,
        kind=Kind.FATAL_RUN,
        reason=f"{outcome.reason}, also after a retry, and nothing has answered "
        "there in this run; check --base-url (and that its server is up)",
    )


@dataclass(frozen=True, slots=True)
class Streak:
    """The run's first finished requests while every one failed the same way: how
    many are needed to stop, how many did, their error and the first reason."""

    needed: int
    code: str = ""
    reason: str = ""
    count: int = 0


def first_streak(settings: RunSettings) -> Streak | None:
    """The systematic-failure watch a run starts with; None when it is off. It
    takes `fail_fast_after` requests, or the concurrency if larger: a whole first
    wave can fail for its own reasons before the run learns anything."""
    if settings.fail_fast_after is None:
        return None
    return Streak(needed=max(settings.fail_fast_after, settings.concurrency))


def follow_streak(streak: Streak, outcome: Outcome) -> Streak | None:
    """The streak after `outcome`; None once a request ended otherwise (the run does
    not fail systematically, so the watch ends). Transient and unknown outcomes say
    nothing about the request and leave it as it is."""
    kind = outcome.kind
    if kind is Kind.TRANSIENT or kind is Kind.UNKNOWN:
        return streak
    if kind is not Kind.FATAL_ITEM:
        return None
    code = outcome.error_code or outcome.reason
    if streak.count and code != streak.code:
        return None
    return Streak(
        streak.needed, code, streak.reason or outcome.reason, streak.count + 1
    )


def systematic_stop(streak: Streak) -> str | None:
    """Why the run stops, once its first `needed` requests all failed alike."""
    if streak.count < streak.needed:
        return None
    return (
        f"the first {streak.count} requests all failed the same way "
        f"({streak.reason}), so no more were sent and the other items stay pending; "
        "fix what it names (a `generation:` value in the job file, say) and submit "
        "again (`runner retry` sends the failed ones again), or add --no-fail-fast "
        "to send every item regardless"
    )


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
