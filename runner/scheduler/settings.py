"""What a run is told: `RunSettings`, the frozen tunables the runs layer builds from
the job file, the command line and what earlier runs spent.

Owns the defaults of the backoff, the systematic-failure stop and the connect retry.
Must not decide anything itself: the pacing, the budget guard, the judgement and
the run loop read these values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runner import client
from runner.spec import Budget
from runner.store import Spend

if TYPE_CHECKING:
    from collections.abc import Mapping

    from runner.pricing import Price
    from runner.store import RecordedUsage, UsageKey

DEFAULT_BACKOFF_BASE = 1.0  # seconds before the first retry, doubled each time
DEFAULT_BACKOFF_CAP = 60.0
# The systematic-failure stop (SPEC section 1): this many first requests (or the
# concurrency, if larger) failing the same way stop the run.
DEFAULT_FAIL_FAST_AFTER = 8
# The short wait before a request whose connection could not be opened is tried
# once more, while the base URL has answered nothing in the run.
DEFAULT_CONNECT_RETRY_DELAY = 1.0
# Polling a Batch API batch: the first wait, the factor and the longest wait,
# as google-genai polls long-running operations (_transformers.py:
# LRO_POLLING_INITIAL_DELAY_SECONDS 1, LRO_POLLING_MULTIPLIER 1.5; its maximum of
# 20 s is raised here: a batch takes minutes to hours).
DEFAULT_BATCH_POLL = 1.0
BATCH_POLL_FACTOR = 1.5
DEFAULT_BATCH_POLL_MAX = 30.0
# Items in one batch at most; past it (or past the size limits of the client's
# batch module) the pending items are split into several batches.
DEFAULT_BATCH_MAX_ITEMS = 10_000
# Items sent inline at most (besides the size limit): an inline batch's results
# come back in one answer, read whole before any is recorded; a file batch's
# are streamed and recorded line by line.
DEFAULT_BATCH_INLINE_ITEMS = 100


@dataclass(frozen=True, slots=True)
class RunSettings:
    concurrency: int
    max_attempts: int
    max_unknown_retries: int
    rpm: float | None = None
    backoff_base: float = DEFAULT_BACKOFF_BASE
    backoff_cap: float = DEFAULT_BACKOFF_CAP
    request_timeout: float | None = None  # read timeout; None = client default
    max_response_bytes: int = client.DEFAULT_MAX_RESPONSE_BYTES
    budget: Budget = field(default_factory=Budget)
    price: Price | None = None  # for max_cost_usd; None = the model has no price
    batch_price: Price | None = None  # what went by the Batch API costs (SPEC 7)
    spent: Spend = field(default_factory=Spend)  # what earlier runs used
    # What earlier answers used, per model/size/references: the budget's seed.
    recorded: Mapping[UsageKey, RecordedUsage] = field(default_factory=dict)
    # (prompt, references, image size) of the job's items in live Batch API
    # batches: what they may still cost counts as spent (SPEC 7)
    outstanding: tuple[tuple[str, int, str | None], ...] = ()
    lease_ttl: float = 30.0
    handle_signals: bool = True
    fail_fast_after: int | None = DEFAULT_FAIL_FAST_AFTER  # None: --no-fail-fast
    connect_retry_delay: float = DEFAULT_CONNECT_RETRY_DELAY
    # The Batch API transport (SPEC 7)
    batch_poll: float = DEFAULT_BATCH_POLL
    batch_poll_max: float = DEFAULT_BATCH_POLL_MAX
    batch_max_items: int = DEFAULT_BATCH_MAX_ITEMS
    batch_inline_items: int = DEFAULT_BATCH_INLINE_ITEMS
    batch_inline_bytes: int = client.batch.INLINE_LIMIT_BYTES
    batch_file_bytes: int = client.batch.FILE_LIMIT_BYTES
