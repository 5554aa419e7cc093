"""When a command asks before sending.

Owns: the thresholds (a grid over MAX_ITEMS_UNCONFIRMED requests, an estimate over
CONFIRM_USD or RUNNER_CONFIRM_USD (checked: a non-negative number)) and the rule
"off a terminal never wait". Asking is the
caller's: it passes `confirm`, or None when nobody can answer. Must not print or
read input.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, TypeAlias

from runner.errors import UsageError
from runner.reports import Confirmation

if TYPE_CHECKING:
    from collections.abc import Callable

    from runner.runs.planning import SubmitCheck

MAX_ITEMS_UNCONFIRMED = 10_000  # a bigger grid is more likely a typo than a plan
CONFIRM_USD = 5.0  # ask on a terminal past this estimate (env RUNNER_CONFIRM_USD)
CONFIRM_USD_VARIABLE = "RUNNER_CONFIRM_USD"

# Puts the question to the user; True means send.
Confirm: TypeAlias = "Callable[[Confirmation], bool]"


def confirm_submit(
    job: str,
    check: SubmitCheck,
    *,
    yes: bool,
    confirm: Confirm | None,
    simulated: bool = False,
) -> None:
    """Ask before a very large grid or a costly run (`confirm` None: nobody can be
    asked, so a large grid needs `yes` and a costly run goes ahead); raise
    UsageError unless the run may go ahead. A simulated run costs nothing: it is
    never asked about cost (SPEC 5), only about a very large grid."""
    threshold = confirm_threshold()
    if yes:
        return
    to_send, usd = check.to_send, check.cost_usd
    if to_send > MAX_ITEMS_UNCONFIRMED:
        question = Confirmation(job, to_send, usd, max_items=MAX_ITEMS_UNCONFIRMED)
        if confirm is None:
            raise UsageError(f"{question.summary}, then pass --yes to send them")
        if not confirm(question):
            raise UsageError("not confirmed; nothing was sent")
        return
    if simulated:
        return
    if confirm is not None and usd is not None and usd > threshold:
        asked = Confirmation(job, to_send, usd, recorded_answers=check.recorded_answers)
        if not confirm(asked):
            raise UsageError("not confirmed; nothing was sent")


def confirm_threshold() -> float:
    """The estimate in USD past which a submit asks: RUNNER_CONFIRM_USD when set,
    else CONFIRM_USD; UsageError naming the variable when it is not a number >= 0."""
    written = os.environ.get(CONFIRM_USD_VARIABLE, "").strip()
    if not written:
        return CONFIRM_USD
    try:
        usd = float(written)
    except ValueError:
        usd = math.nan
    if not math.isfinite(usd) or usd < 0:
        raise UsageError(
            f"{CONFIRM_USD_VARIABLE}={written[:40]!r} is not an amount in USD; set "
            f"it to a number >= 0, e.g. {CONFIRM_USD_VARIABLE}=5 to be asked before "
            "a run estimated above $5, or unset it"
        )
    return usd
