"""The judgement as tables: what each answer means for its item (status, whether it
counts, the reason recorded), when it is sent again, and what stops or pauses the
run. Pure functions: no server, no store, no event loop; the jitter is pinned to
either end of its range."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from runner.client import Kind, Outcome
from runner.scheduler.judgement import (
    History,
    judge,
    next_try,
    retry_delay,
    run_pause,
    stops_run,
)
from runner.scheduler.settings import RunSettings
from runner.store import AttemptResult

SETTINGS = RunSettings(concurrency=1, max_attempts=3, max_unknown_retries=1)
GAVE_UP = "boom (gave up after 3 attempts)"
NOT_RESENT = (
    "boom (outcome unknown, possibly billed; not sent again to avoid paying twice: "
    "`runner retry` sends it again)"
)


def low(a: float, b: float) -> float:
    return a


def high(a: float, b: float) -> float:
    return b


@pytest.mark.parametrize(
    (
        "kind",
        "tries",
        "unknown",
        "status",
        "counts_as_try",
        "counts_as_unknown",
        "reason",
    ),
    [
        (Kind.SUCCESS, 0, 0, "succeeded", True, False, "boom"),
        (Kind.SUCCESS, 2, 1, "succeeded", True, False, "boom"),  # the last try wins
        (Kind.BLOCKED, 0, 0, "blocked", True, False, "boom"),
        (Kind.FATAL_ITEM, 0, 0, "failed", True, False, "boom"),
        (Kind.FATAL_RUN, 2, 1, "pending", False, False, "boom"),  # never its fault
        (Kind.TRANSIENT, 0, 0, "pending", True, False, "boom"),
        (Kind.TRANSIENT, 1, 0, "pending", True, False, "boom"),
        (Kind.TRANSIENT, 2, 0, "failed", True, False, GAVE_UP),
        (Kind.NO_IMAGE, 1, 0, "pending", True, False, "boom"),
        (Kind.NO_IMAGE, 2, 0, "failed", True, False, GAVE_UP),
        (Kind.UNKNOWN, 0, 0, "pending", True, True, "boom"),
        (Kind.UNKNOWN, 0, 1, "failed", True, True, NOT_RESENT),
        (Kind.UNKNOWN, 2, 0, "failed", True, True, GAVE_UP),
    ],
)
def test_what_an_answer_means_for_its_item(
    kind: Kind,
    tries: int,
    unknown: int,
    status: str,
    counts_as_try: bool,
    counts_as_unknown: bool,
    reason: str,
) -> None:
    outcome = Outcome(kind, "boom", http_status=200)
    saved = ["images/a.png"] if kind is Kind.SUCCESS else []
    result = judge(outcome, saved, History(tries, unknown), SETTINGS)
    assert result.outcome == str(kind)
    assert result.item_status == status
    assert (result.counts_as_try, result.counts_as_unknown) == (
        counts_as_try,
        counts_as_unknown,
    )
    assert result.reason == reason
    assert list(result.outputs) == saved


def test_with_max_unknown_retries_0_the_first_unknown_outcome_fails_the_item() -> None:
    settings = RunSettings(concurrency=1, max_attempts=3, max_unknown_retries=0)
    result = judge(Outcome(Kind.UNKNOWN, "boom"), [], History(), settings)
    assert (result.item_status, result.reason) == ("failed", NOT_RESENT)


def test_the_record_keeps_what_the_answer_said() -> None:
    usage = {"totalTokenCount": 1300}
    outcome = Outcome(
        Kind.SUCCESS,
        "",
        http_status=200,
        retry_after=None,
        usage=usage,
        model_version="m-1",
        response_id="r-1",
        finish_reason="STOP",
        latency=0.25,
        extra_urls=("http://relay/files/1", "http://relay/files/2"),
    )
    result = judge(outcome, ["images/a.png"], History(), SETTINGS)
    assert result == AttemptResult(
        outcome="success",
        reason="image fetched from http://relay/files/1, http://relay/files/2",
        item_status="succeeded",
        http_status=200,
        finish_reason="STOP",
        usage=usage,
        model_version="m-1",
        response_id="r-1",
        latency=0.25,
        retry_after=None,
        outputs=["images/a.png"],
    )
    # A reason the answer gave wins over where the bytes came from.
    kept = judge(replace(outcome, reason="relay said so"), [], History(), SETTINGS)
    assert kept.reason == "relay said so"


@pytest.mark.parametrize(
    ("tries", "hint", "shortest", "longest"),
    [
        (0, None, 0.5, 1.0),  # backoff_base 1 s, jittered down to half
        (1, None, 0.5, 1.0),
        (2, None, 1.0, 2.0),  # doubled each try
        (3, None, 2.0, 4.0),
        (8, None, 30.0, 60.0),  # capped at backoff_cap
        (1, 5.0, 5.0, 5.5),  # the server's hint, spread by up to 10%
        (9, 0.0, 0.0, 0.0),  # a hint of 0 is honoured, not backed off
        (1, 10_000.0, 900.0, 990.0),  # hints past 15 minutes are cut to 15
        (2, math.inf, 1.0, 2.0),  # not a number to wait: backoff instead
        (2, math.nan, 1.0, 2.0),
    ],
)
def test_the_retry_delay(
    tries: int, hint: float | None, shortest: float, longest: float
) -> None:
    assert retry_delay(tries, hint, SETTINGS, low) == pytest.approx(shortest)
    assert retry_delay(tries, hint, SETTINGS, high) == pytest.approx(longest)


@pytest.mark.parametrize(
    ("outcome", "status", "delay"),
    [
        ("transient", "pending", (1.0, 2.0)),  # history counts this try: 2
        ("unknown", "pending", (1.0, 2.0)),
        ("no_image", "pending", (1.0, 2.0)),
        ("transient", "failed", None),
        ("success", "succeeded", None),
        ("blocked", "blocked", None),
        ("fatal_run", "pending", None),  # the run stops: nothing is sent again
    ],
)
def test_whether_and_when_an_item_is_sent_again(
    outcome: str, status: str, delay: tuple[float, float] | None
) -> None:
    result = AttemptResult(outcome=outcome, reason="", item_status=status)
    history = History(tries=1).after(result)
    if delay is None:
        assert next_try(result, history, SETTINGS, low) is None
    else:
        assert next_try(result, history, SETTINGS, low) == pytest.approx(delay[0])
        assert next_try(result, history, SETTINGS, high) == pytest.approx(delay[1])


def test_a_retry_waits_the_servers_hint() -> None:
    result = AttemptResult("transient", "", "pending", retry_after=3.0)
    assert next_try(result, History(1), SETTINGS, low) == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("kind", "status", "hint", "pause"),
    [
        (Kind.TRANSIENT, 429, 2.0, (2.0, 2.2)),
        (Kind.TRANSIENT, 429, None, (1.0, 2.0)),  # the backoff of the next try
        (Kind.FATAL_RUN, 429, 2.0, None),  # the daily quota stops the run instead
        (Kind.TRANSIENT, 503, 2.0, None),  # only a 429 slows everyone down
        (Kind.SUCCESS, 200, None, None),
    ],
)
def test_a_429_pauses_the_whole_run(
    kind: Kind, status: int, hint: float | None, pause: tuple[float, float] | None
) -> None:
    outcome = Outcome(kind, "", http_status=status, retry_after=hint)
    history = History(tries=1)
    if pause is None:
        assert run_pause(outcome, history, SETTINGS, low) is None
    else:
        assert run_pause(outcome, history, SETTINGS, low) == pytest.approx(pause[0])
        assert run_pause(outcome, history, SETTINGS, high) == pytest.approx(pause[1])


@pytest.mark.parametrize("kind", list(Kind))
def test_only_a_run_fatal_outcome_stops_the_run(kind: Kind) -> None:
    assert stops_run(kind) is (kind is Kind.FATAL_RUN)
    assert stops_run(str(kind)) is (kind is Kind.FATAL_RUN)  # as recorded


@pytest.mark.parametrize(
    ("outcome", "counts_as_try", "counts_as_unknown", "after"),
    [
        ("transient", True, False, History(3, 1)),
        ("unknown", True, True, History(3, 2)),
        ("fatal_run", False, False, History(2, 1)),
        ("abandoned", False, False, History(2, 1)),
    ],
)
def test_an_items_history_counts_what_its_attempts_count(
    outcome: str, counts_as_try: bool, counts_as_unknown: bool, after: History
) -> None:
    result = AttemptResult(
        outcome,
        "",
        "pending",
        counts_as_try=counts_as_try,
        counts_as_unknown=counts_as_unknown,
    )
    assert History(2, 1).after(result) == after
