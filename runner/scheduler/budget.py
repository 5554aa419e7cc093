"""Budget caps over a job's whole life, held under any concurrency.

Owns the reservation rule: what earlier runs spent, plus each request in flight
counted as the dearest answer the job has seen (cost and images), plus the next one,
must fit `max_requests`, `max_images` and `max_cost_usd`; until an answer shows what
one costs, requests go one at a time. Must not await (a check and its reservation
are one step) or touch the store: the run hands it what earlier runs recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from runner import pricing

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from runner.plan import Request
    from runner.pricing import Price
    from runner.scheduler.settings import RunSettings
    from runner.spec import Budget
    from runner.store import AttemptResult, RecordedUsage, Spend, UsageKey


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the next request may not go yet: `cap` would be passed. `wait`: requests
    in flight may still leave room once they end (else the cap is reached)."""

    cap: str  # max_requests, max_images or max_cost_usd
    wait: bool
    reason: str | None = None  # set when the cap cannot apply at all


class BudgetGuard:
    """Hard caps over the job's whole life: what earlier runs spent, plus each
    request in flight counted as the dearest answer seen, plus the next request,
    must fit. Kept in memory; `recorded` (the store's, read at run start) seeds the
    dearest answer, so a resumed job keeps its concurrency from the start."""

    def __init__(
        self,
        budget: Budget,
        price: Price | None,
        spent: Spend,
        recorded: Mapping[UsageKey, RecordedUsage] | None = None,
        batch_price: Price | None = None,
        *,
        by_batch: bool = False,
        outstanding: Sequence[tuple[str, int, str | None]] = (),
    ) -> None:
        """`by_batch`: the requests reserved go in Batch API batches (SPEC 7), all
        at once, at the batch price. `outstanding`: (prompt, references, size) of
        items in live batches made earlier, counted as spent at the batch price,
        each as its estimate or the dearest answer seen."""
        self.budget = budget
        self.by_batch = by_batch
        # what a request of this run costs: the batch price for a batch run
        self.price = batch_price if by_batch else price
        self.requests = spent.attempts
        self.images = spent.images
        self.cost = 0.0
        if price is not None:
            batch = None
            if batch_price is not None and spent.batch_tokens:
                batch = (spent.batch_tokens, spent.batch_unpriced, batch_price)
            self.cost = sum(
                pricing.spend_cost(spent.tokens, spent.unpriced, price, batch)
            )
        self.in_flight = 0
        self.in_flight_estimates = 0.0  # the estimates of the requests in flight
        groups = list((recorded or {}).values())
        # Whether an answer with images was seen: until then nobody knows what one
        # costs, and requests under a cost or image cap go one at a time.
        self.learned = any(g.answers for g in groups)
        self.most_images = max((g.most_images for g in groups), default=0)
        self.dearest = 0.0  # USD of the dearest answer seen
        if self.price is not None:
            self.dearest = max(
                (pricing.heaviest_cost(g.heaviest, self.price) for g in groups),
                default=0.0,
            )
        for text, refs, size in outstanding:
            self.requests += 1
            self.images += max(self.most_images, 1)
            if batch_price is not None:
                one = pricing.estimate_cost(text, refs, size, batch_price)
                self.cost += max(one, self.dearest if by_batch else 0.0)

    @classmethod
    def for_run(cls, settings: RunSettings, *, by_batch: bool = False) -> BudgetGuard:
        """The guard of a run with these settings (`by_batch`: a Batch API run)."""
        return cls(
            settings.budget,
            settings.price,
            settings.spent,
            settings.recorded,
            settings.batch_price,
            by_batch=by_batch,
            outstanding=settings.outstanding,
        )

    def estimate(self, request: Request) -> float:
        if self.price is None:
            return 0.0
        return pricing.estimate_cost(
            request.text, len(request.inline_files), request.image_size, self.price
        )

    def reserve(self, estimate: float) -> Refusal | None:
        """Count one more request in flight (None), or say which cap it would pass
        and whether waiting for a request in flight may make room."""
        b = self.budget
        n = self.in_flight
        # A batch's requests all go at once: none waits for another's answer.
        learned = self.learned or self.by_batch
        if b.max_requests is not None and self.requests + n >= b.max_requests:
            return Refusal("max_requests", wait=False)
        if b.max_images is not None:
            if n and not learned:
                return Refusal("max_images", wait=True)
            per = max(self.most_images, 1)
            if self.images + (n + 1) * per > b.max_images:
                return Refusal("max_images", wait=n > 0 and not self.by_batch)
        if b.max_cost_usd is not None:
            if self.price is None:
                return Refusal(
                    "max_cost_usd",
                    wait=False,
                    reason="budget.max_cost_usd is set but this model has no price; "
                    "add `pricing:` to the job file",
                )
            if n and not learned:
                return Refusal("max_cost_usd", wait=True)
            if (
                self.cost + self._in_flight_cost() + max(estimate, self.dearest)
                > b.max_cost_usd
            ):
                return Refusal("max_cost_usd", wait=n > 0 and not self.by_batch)
        self.in_flight += 1
        self.in_flight_estimates += estimate
        return None

    def settle(self, estimate: float, result: AttemptResult | None) -> None:
        """Replace a reservation by what the attempt used (None: cut short)."""
        self.in_flight -= 1
        self.in_flight_estimates = (
            self.in_flight_estimates - estimate if self.in_flight else 0.0
        )
        self.requests += 1
        if result is not None and result.outputs:
            self.images += len(result.outputs)
            self.most_images = max(self.most_images, len(result.outputs))
            self.learned = True
        if self.price is None:
            return
        if result is not None and result.usage:
            cost = pricing.usage_cost(result.usage, self.price)
            self.cost += cost
            self.dearest = max(self.dearest, cost)
        elif result is None or result.outcome in ("unknown", "abandoned"):
            self.cost += estimate  # possibly billed: assume it was

    def release(self, estimate: float) -> None:
        """Drop a reservation whose request was never sent (a batch not created)."""
        self.in_flight -= 1
        self.in_flight_estimates = (
            self.in_flight_estimates - estimate if self.in_flight else 0.0
        )

    def describe(self, refusal: Refusal) -> str:
        """The stop message: the cap, and what is spent, settled and in flight."""
        if refusal.reason is not None:
            return refusal.reason
        b, n = self.budget, self.in_flight
        flying = f", {n} request(s) still in flight" if n else ""
        if refusal.cap == "max_requests":
            return (
                f"budget reached: max_requests {b.max_requests} "
                f"({self.requests + n} sent so far{flying})"
            )
        if refusal.cap == "max_images":
            more = f" + up to {n * max(self.most_images, 1)} in flight" if n else ""
            return (
                f"budget reached: max_images {b.max_images} "
                f"({self.images} images so far{more})"
            )
        more = f" + up to ${self._in_flight_cost():.4f} in flight" if n else ""
        return (
            f"budget reached: max_cost_usd {b.max_cost_usd:g} "
            f"(${self.cost:.4f} spent so far{more})"
        )

    def _in_flight_cost(self) -> float:
        """What the requests in flight may cost: each as the dearest answer seen,
        or as its own estimate if that is more."""
        return max(self.in_flight_estimates, self.in_flight * self.dearest)
