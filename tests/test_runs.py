"""The runs layer on its own: the confirmation policy, the gallery step, settings
from the spec's defaults, and one price lookup per command."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from runner import pricing, runs
from runner import spec as spec_module
from runner.errors import UsageError
from runner.review import build as review_build
from runner.runs import policy
from runner.runs.planning import SubmitCheck
from runner.runs.settings import job_settings, run_settings
from runner.spec import load_job
from tests.e2e import SECRET, write_job

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from runner.pricing import Price
    from runner.reports import Confirmation, RunReport
    from runner.simulate import SimServer

JOB = "name: small\nprompts: ['one', 'two', 'three [sim:400]']\n"


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs here talk to the session simulator as to a real API (a --simulate run
    records simulated results, SPEC 5)."""
    monkeypatch.setenv("TOKAIFY_API_KEY", SECRET)


def check(to_send: int, cost_usd: float | None) -> SubmitCheck:
    return SubmitCheck(None, "digest", to_send, cost_usd, None)


class Asker:
    """A user at a terminal who answers `answer` and remembers the questions."""

    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.asked: list[Confirmation] = []

    def __call__(self, question: Confirmation) -> bool:
        self.asked.append(question)
        return self.answer


def test_a_grid_over_the_limit_needs_a_yes_and_off_a_terminal_never_waits() -> None:
    big = check(policy.MAX_ITEMS_UNCONFIRMED + 1, 1.0)
    with pytest.raises(UsageError) as refused:
        policy.confirm_submit("big", big, yes=False, confirm=None)
    assert refused.value.message == (
        "big would send 10,001 requests (more than 10,000); check the grid with "
        "`runner plan`, then pass --yes to send them"
    )
    declined = Asker(False)
    with pytest.raises(UsageError, match="not confirmed; nothing was sent"):
        policy.confirm_submit("big", big, yes=False, confirm=declined)
    assert [q.max_items for q in declined.asked] == [10_000]
    policy.confirm_submit("big", big, yes=False, confirm=Asker(True))
    policy.confirm_submit("big", big, yes=True, confirm=None)
    at_limit = check(policy.MAX_ITEMS_UNCONFIRMED, None)
    policy.confirm_submit("big", at_limit, yes=False, confirm=None)


def test_a_costly_run_is_asked_about_on_a_terminal_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    costly = check(3, policy.CONFIRM_USD + 0.01)
    policy.confirm_submit("costly", costly, yes=False, confirm=None)  # no wait
    declined = Asker(False)
    with pytest.raises(UsageError, match="not confirmed"):
        policy.confirm_submit("costly", costly, yes=False, confirm=declined)
    (question,) = declined.asked
    assert question.summary == (
        f"costly: 3 new requests, estimated $5.01 (prices as of {pricing.PRICES_AS_OF})"
    )
    cheap = Asker(False)
    policy.confirm_submit(
        "cheap", check(3, policy.CONFIRM_USD), yes=False, confirm=cheap
    )
    policy.confirm_submit("costly", costly, yes=True, confirm=cheap)
    monkeypatch.setenv("RUNNER_CONFIRM_USD", "6")
    policy.confirm_submit("costly", costly, yes=False, confirm=cheap)
    assert cheap.asked == []


def test_settings_missing_from_a_stored_job_take_the_specs_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(spec_module, "DEFAULT_CONCURRENCY", 3)
    monkeypatch.setattr(spec_module, "DEFAULT_MAX_ATTEMPTS", 2)
    monkeypatch.setattr(spec_module, "DEFAULT_MAX_UNKNOWN_RETRIES", 4)
    older = run_settings({}, None)  # a job stored before these settings were
    assert older.concurrency == 3
    assert older.max_attempts == 2
    assert older.max_unknown_retries == 4


def test_a_submit_and_its_retry_run_with_the_job_files_settings(
    tmp_path: Path,
) -> None:
    body = "prompts: [a]\nconcurrency: 5\nmax_attempts: 7\nmax_unknown_retries: 0\n"
    spec = load_job(write_job(tmp_path, body + "rpm: 30\nbudget: {max_images: 9}\n"))
    price = pricing.price_for(spec.model)
    saved = job_settings(spec)
    caps = runs.SendOptions(caps={"max_requests": 4}, timeout=9.0)
    settings = run_settings(saved, price, caps, {"backoff_base": 0.5})
    assert settings.concurrency == 5 and settings.max_attempts == 7
    assert settings.max_unknown_retries == 0 and settings.rpm == 30
    assert settings.price == price
    assert settings.budget.max_images == 9 and settings.budget.max_requests == 4
    assert settings.request_timeout == 9.0 and settings.backoff_base == 0.5
    assert run_settings(saved, price, runs.SendOptions(concurrency=2)).concurrency == 2


def submit(sim: SimServer, tmp_path: Path, *, review: bool = True) -> RunReport:
    """`runs.submit` as the CLI calls it, on the session's simulated API."""
    return runs.submit(
        write_job(tmp_path, JOB),
        workspace=runs.Workspace(tmp_path / "out"),
        send=runs.SendOptions(base_url=sim.url, review=review),
    )


def test_a_run_builds_the_gallery_and_reports_it(
    sim: SimServer, tmp_path: Path
) -> None:
    report = submit(sim, tmp_path)
    assert report.gallery is not None
    assert report.gallery.index == tmp_path / "out" / "small" / "index.html"
    assert report.gallery.index.is_file()
    assert report.exit_code == 1  # the refused item
    assert submit(sim, tmp_path, review=False).gallery is None


def test_a_gallery_that_cannot_be_built_does_not_hide_the_run(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(review_build, "write_gallery", disk_full)
    report = submit(sim, tmp_path)
    assert report.gallery is not None and report.gallery.index is None
    assert report.gallery.error == "[Errno 28] No space left on device"
    assert report.status.counts["succeeded"] == 2 and report.exit_code == 1


def test_each_command_looks_the_price_up_once(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups: list[str] = []
    price_for = pricing.price_for

    def counted(
        model: str, override: Mapping[str, float] | None = None
    ) -> Price | None:
        lookups.append(model)
        return price_for(model, override)

    monkeypatch.setattr(pricing, "price_for", counted)
    workspace = runs.Workspace(tmp_path / "out")
    report = submit(sim, tmp_path)
    assert report.status.price is not None and len(lookups) == 1
    send = runs.SendOptions(base_url=sim.url)
    runs.retry("small", workspace=workspace, send=send)
    assert len(lookups) == 2
    runs.status("small", workspace=workspace, by=("prompt",))
    assert len(lookups) == 3
    runs.preview(tmp_path / "job.yaml", workspace=workspace)
    assert len(lookups) == 4


def test_warnings_come_before_the_question_and_a_no_sends_nothing(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNNER_CONFIRM_USD", "0")
    job = write_job(tmp_path, JOB + "vars: {unused: [x]}\n")
    events: list[str] = []

    def ask(question: Confirmation) -> bool:
        events.append(f"ask: {question.summary}")
        return False

    with pytest.raises(UsageError, match="not confirmed"):
        runs.submit(
            job,
            workspace=runs.Workspace(tmp_path / "out"),
            send=runs.SendOptions(base_url=sim.url),
            confirm=ask,
            warn=lambda message: events.append(f"warn: {message}"),
        )
    assert events == [
        f"warn: {job} line 3: var 'unused' is used by no prompt, so it changes "
        "nothing; add {unused} to a prompt or remove it",
        "ask: small: 3 new requests, estimated $0.20 (prices as of "
        f"{pricing.PRICES_AS_OF})",
    ]
    assert sim.stats()["requests"] == 0
