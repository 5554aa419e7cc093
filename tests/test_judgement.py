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
    Streak,
    first_streak,
    follow_streak,
    judge,
    next_try,
    retry_delay,
    run_pause,
    stops_run,
    systematic_stop,
    unreachable,
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


# --- IMAGE_RECITATION: sent once more before it counts as blocked ----------------


def recited(tries: int = 0, recitations: int = 0) -> AttemptResult:
    outcome = Outcome(
        Kind.BLOCKED, "finish IMAGE_RECITATION", finish_reason="IMAGE_RECITATION"
    )
    return judge(outcome, [], History(tries, 0, recitations), SETTINGS)


def test_a_first_image_recitation_is_sent_once_more() -> None:
    result = recited()
    assert (result.outcome, result.item_status, result.counts_as_try) == (
        "blocked",
        "pending",
        True,
    )
    assert result.reason == (
        "finish IMAGE_RECITATION (sent once more: an identical request often passes)"
    )
    assert next_try(result, History(1, 0, 1), SETTINGS, low) is not None


def test_a_second_image_recitation_is_blocked() -> None:
    history = History().after(recited())
    assert history == History(1, 0, 1)
    assert recited(history.tries, history.recitations).item_status == "blocked"


def test_an_image_recitation_on_the_last_try_is_blocked() -> None:
    assert recited(tries=SETTINGS.max_attempts - 1).item_status == "blocked"


@pytest.mark.parametrize("finish", ["IMAGE_SAFETY", "RECITATION", "SAFETY"])
def test_other_blocks_are_terminal_at_once(finish: str) -> None:
    outcome = Outcome(Kind.BLOCKED, "no", finish_reason=finish)
    assert judge(outcome, [], History(), SETTINGS).item_status == "blocked"


# --- a base URL that never answered ---------------------------------------------


def test_an_unreachable_base_url_stops_the_run_and_says_what_to_change() -> None:
    failed = Outcome(
        Kind.TRANSIENT,
        "could not connect to http://127.0.0.1:9/v1beta/models/m:generateContent "
        "([Errno 111] Connection refused)",
        connect_failed=True,
    )
    outcome = unreachable(failed)
    assert stops_run(outcome.kind)
    assert outcome.reason == (
        "could not connect to http://127.0.0.1:9/v1beta/models/m:generateContent "
        "([Errno 111] Connection refused), also after a retry, and nothing has "
        "answered there in this run; check --base-url (and that its server is up)"
    )
    # Its item stays pending and the attempt is no try of its own.
    result = judge(outcome, [], History(2, 1), SETTINGS)
    assert (result.item_status, result.counts_as_try) == ("pending", False)


# --- the systematic-failure stop ------------------------------------------------


def failed(code: str = "400 INVALID_ARGUMENT", reason: str = "400 bad") -> Outcome:
    return Outcome(Kind.FATAL_ITEM, reason, http_status=400, error_code=code)


def watch(outcomes: list[Outcome], settings: RunSettings = SETTINGS) -> str | None:
    """The stop reason once `outcomes` finished in this order, or None."""
    streak = first_streak(settings)
    for outcome in outcomes:
        if streak is None:
            return None
        streak = follow_streak(streak, outcome)
        if streak is not None and (stop := systematic_stop(streak)):
            return stop
    return None


def test_eight_first_requests_failing_alike_stop_the_run() -> None:
    assert watch([failed()] * 7) is None
    stop = watch([failed()] * 8)
    assert stop == (
        "the first 8 requests all failed the same way (400 bad), so no more were "
        "sent and the other items stay pending; fix what it names (a `generation:` "
        "value in the job file, say) and submit again (`runner retry` sends the "
        "failed ones again), or add --no-fail-fast to send every item regardless"
    )


def test_with_a_larger_concurrency_it_takes_a_whole_wave() -> None:
    settings = RunSettings(concurrency=12, max_attempts=3, max_unknown_retries=1)
    assert first_streak(settings) == Streak(needed=12)
    assert watch([failed()] * 11, settings) is None
    assert watch([failed()] * 12, settings) is not None


@pytest.mark.parametrize(
    "other",
    [
        Outcome(Kind.SUCCESS, ""),
        Outcome(Kind.BLOCKED, "no"),
        Outcome(Kind.NO_IMAGE, "text only"),
        failed(code="400 INVALID_ARGUMENT API_KEY_INVALID"),  # another ErrorInfo
        failed(code="422 invalid_request"),  # another status or relay code
    ],
)
def test_one_request_ending_otherwise_ends_the_watch(other: Outcome) -> None:
    assert watch([failed()] * 3 + [other] + [failed()] * 20) is None


def test_the_reason_of_the_failure_may_differ_but_not_its_identity() -> None:
    outcomes = [failed(reason=f"400 bad field {n}") for n in range(8)]
    stop = watch(outcomes)
    assert stop is not None and "(400 bad field 0)" in stop


@pytest.mark.parametrize("kind", [Kind.TRANSIENT, Kind.UNKNOWN])
def test_retried_outcomes_say_nothing_about_the_request(kind: Kind) -> None:
    outcomes = [failed()] * 4 + [Outcome(kind, "busy")] * 3 + [failed()] * 4
    assert watch(outcomes) is not None


def test_without_an_error_identity_the_reason_is_compared() -> None:
    assert watch([failed(code="")] * 8) is not None
    assert watch([failed(code="", reason=f"r{n}") for n in range(8)]) is None


def test_no_fail_fast_turns_the_watch_off() -> None:
    settings = replace(SETTINGS, fail_fast_after=None)
    assert first_streak(settings) is None
