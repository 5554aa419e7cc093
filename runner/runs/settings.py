"""How a run is tuned: the command line's sending flags over the job's own settings.

Owns: `SendOptions` (the flags of every command that sends; DEFAULT_BASE_URL where
`base_url` is not given), the settings a submit stores with its job, and the one
way `RunSettings` is made from them, for submit and retry alike (missing values
take the spec's defaults), with the job's price. Must not open the store or send.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeAlias

from runner import pricing
from runner.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from contextlib import AbstractContextManager

    from runner.scheduler import RunSettings
    from runner.spec import JobSpec
    from runner.store import JobRow

DEFAULT_BASE_URL = "https://api.tokaify.com"  # where requests go without --base-url

# Starts a simulated API for the length of a run and yields its base URL. The CLI
# passes it for --simulate: only the CLI and tests import the simulator.
Simulator: TypeAlias = "Callable[[], AbstractContextManager[str]]"


@dataclass(frozen=True, slots=True)
class SendOptions:
    """The flags of every command that sends requests; None means the job's own."""

    concurrency: int | None = None
    timeout: float | None = None  # read timeout in seconds
    base_url: str | None = None
    simulator: Simulator | None = None  # set: talk to it instead of `base_url`
    caps: Mapping[str, Any] = field(default_factory=dict)  # budget caps given
    review: bool = True  # rebuild the gallery after the run
    fail_fast: bool = True  # False (--no-fail-fast): no systematic-failure stop
    # The Batch API (SPEC 7): True --batch, False --no-batch, None the job file's
    # `transport:`; `detach` returns once the batches exist.
    batch: bool | None = None
    detach: bool = False

    def by_batch(self, transport: str) -> bool:
        """Whether this run sends through the Batch API, the job file saying
        `transport`."""
        return self.batch if self.batch is not None else transport == "batch"

    @property
    def simulated(self) -> bool:
        """Whatever this run records is simulated (SPEC 5)."""
        return self.simulator is not None

    def overrides(self) -> dict[str, Any]:
        """The RunSettings fields these flags set directly (and RUNNER_BATCH_POLL,
        the first wait in seconds before a batch is asked for again)."""
        fields: dict[str, Any] = {}
        if self.timeout is not None:
            fields["request_timeout"] = self.timeout
        if not self.fail_fast:
            fields["fail_fast_after"] = None
        poll = batch_poll()
        if poll is not None:
            fields["batch_poll"] = poll
        return fields


BATCH_POLL_VARIABLE = "RUNNER_BATCH_POLL"


def batch_poll() -> float | None:
    """RUNNER_BATCH_POLL in seconds, if set; UsageError if it is not above 0."""
    written = os.environ.get(BATCH_POLL_VARIABLE, "").strip()
    if not written:
        return None
    try:
        seconds = float(written)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise UsageError(
            f"{BATCH_POLL_VARIABLE}={written[:40]!r} is not a number of seconds "
            f"above 0; set it to e.g. 10, or unset it"
        )
    return seconds


def spec_price(spec: JobSpec) -> pricing.Price | None:
    """The price of the job file's model, with its `pricing:` applied."""
    return pricing.price_for(spec.model, spec.pricing)


def stored_price(job: JobRow) -> pricing.Price | None:
    """The price of a stored job's model, with the `pricing:` it was submitted with."""
    return pricing.price_for(job.model or "", job.settings.get("pricing"))


def spec_batch_price(spec: JobSpec) -> pricing.Price | None:
    """The job file's model's Batch API price, with its `pricing:` applied."""
    return pricing.batch_price_for(spec.model, spec.pricing)


def stored_batch_price(job: JobRow) -> pricing.Price | None:
    """A stored job's Batch API price, with the `pricing:` it was submitted with."""
    return pricing.batch_price_for(job.model or "", job.settings.get("pricing"))


def job_settings(spec: JobSpec) -> dict[str, Any]:
    """What a submit stores with the job, so that `retry` runs the same way."""
    return {
        "concurrency": spec.concurrency,
        "max_attempts": spec.max_attempts,
        "max_unknown_retries": spec.max_unknown_retries,
        "rpm": spec.rpm,
        "pricing": dict(spec.pricing or {}),
        "budget": asdict(spec.budget),
        "transport": spec.transport,  # retry's default (SPEC 7)
    }


def stored_transport(job: JobRow) -> str:
    """The `transport:` a stored job was submitted with ("interactive" for a job
    stored before the Batch API existed)."""
    return str(job.settings.get("transport") or "interactive")


def run_settings(
    saved: Mapping[str, Any],
    price: pricing.Price | None,
    send: SendOptions | None = None,
    overrides: Mapping[str, Any] | None = None,
    batch_price: pricing.Price | None = None,
) -> RunSettings:
    """A run's settings: `saved` (`job_settings`, or a store's row from an older
    release, which may lack keys) under the command line's `send` options.
    `overrides` replaces more RunSettings fields (backoff, signals) for this run."""
    from runner.scheduler import RunSettings
    from runner.spec import (
        DEFAULT_CONCURRENCY,
        DEFAULT_MAX_ATTEMPTS,
        DEFAULT_MAX_UNKNOWN_RETRIES,
        Budget,
    )

    send = send or SendOptions()
    return replace(
        RunSettings(
            concurrency=send.concurrency
            or int(saved.get("concurrency") or DEFAULT_CONCURRENCY),
            max_attempts=int(saved.get("max_attempts") or DEFAULT_MAX_ATTEMPTS),
            max_unknown_retries=int(
                saved.get("max_unknown_retries", DEFAULT_MAX_UNKNOWN_RETRIES)
            ),
            rpm=saved.get("rpm"),
            budget=Budget(**{**saved.get("budget", {}), **send.caps}),
            price=price,
            batch_price=batch_price,
        ),
        **{**send.overrides(), **(overrides or {})},
    )
