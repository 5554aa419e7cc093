"""Budget caps over a job's whole life, held under any concurrency.

Owns the reservation rule: what earlier runs spent, plus every request in flight
counted as if it will be paid, plus the next one, must fit `max_requests`,
`max_images` and `max_cost_usd`. Must not await (a check and its reservation are one
step) or touch the store: the run hands it what earlier runs spent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner import pricing

if TYPE_CHECKING:
    from runner.plan import Request
    from runner.pricing import Price
    from runner.spec import Budget
    from runner.store import AttemptResult, Spend


class BudgetGuard:
    """Hard caps over the job's whole life: what earlier runs spent, plus what is
    in flight now counted as if it will be paid, plus the next request, must fit."""

    def __init__(self, budget: Budget, price: Price | None, spent: Spend) -> None:
        self.budget = budget
        self.price = price
        self.requests = spent.attempts
        self.images = spent.images
        self.cost = 0.0
        if price is not None:
            self.cost = sum(pricing.spend_cost(spent.tokens, spent.unpriced, price))
        self.in_flight = 0
        self.in_flight_cost = 0.0

    def estimate(self, request: Request) -> float:
        if self.price is None:
            return 0.0
        return pricing.estimate_cost(
            request.text, len(request.references), request.image_size, self.price
        )

    def reserve(self, cost: float) -> str | None:
        """Count one more request in flight, or say which cap it would pass."""
        b = self.budget
        if (
            b.max_requests is not None
            and self.requests + self.in_flight >= b.max_requests
        ):
            return (
                f"budget reached: max_requests {b.max_requests} "
                f"({self.requests} sent so far)"
            )
        if b.max_images is not None and self.images + self.in_flight >= b.max_images:
            return (
                f"budget reached: max_images {b.max_images} "
                f"({self.images} images so far)"
            )
        if b.max_cost_usd is not None:
            if self.price is None:
                return (
                    "budget.max_cost_usd is set but this model has no price; add "
                    "`pricing:` to the job file"
                )
            if self.cost + self.in_flight_cost + cost > b.max_cost_usd:
                return (
                    f"budget reached: max_cost_usd {b.max_cost_usd:g} "
                    f"(${self.cost:.4f} spent so far)"
                )
        self.in_flight += 1
        self.in_flight_cost += cost
        return None

    def settle(self, cost: float, result: AttemptResult | None) -> None:
        """Replace a reservation by what the attempt used (None: cut short)."""
        self.in_flight -= 1
        self.in_flight_cost -= cost
        self.requests += 1
        if result is not None:
            self.images += len(result.outputs)
        if self.price is None:
            return
        if result is not None and result.usage:
            self.cost += pricing.usage_cost(result.usage, self.price)
        elif result is None or result.outcome in ("unknown", "abandoned"):
            self.cost += cost  # possibly billed: assume it was
