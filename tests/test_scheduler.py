"""Every SPEC outcome class, end to end through the scheduler: real loopback HTTP to
the simulated API, a real SQLite store, image files on disk. Backoff is shortened."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from PIL import Image

from runner import reports, runs
from runner.client import Endpoint
from runner.runs import execution
from runner.simulate import Fault
from runner.spec import load_job
from runner.store import Store
from tests.e2e import SECRET, manifest, submit_prompts, write_job

if TYPE_CHECKING:
    from pathlib import Path

    from runner.plan import Request
    from runner.simulate import SimServer

FAST = {"backoff_base": 0.01, "request_timeout": 2.0, "handle_signals": False}


async def run(
    tmp_path: Path,
    sim: SimServer,
    prompts: list[str],
    *,
    settings: str = "",
    **overrides: Any,
) -> tuple[reports.RunReport, list[dict[str, Any]]]:
    return await submit_prompts(
        tmp_path, sim.url, prompts, settings, {**FAST, **overrides}, Store.attempt_rows
    )


def item(report: reports.RunReport, tmp_path: Path) -> dict[str, Any]:
    (row,) = manifest(tmp_path / "out", report.job)
    return row


async def test_success_writes_the_image_and_records_usage(
    sim: SimServer, tmp_path: Path
) -> None:
    report, attempts = await run(tmp_path, sim, ["a quiet harbour"])
    assert report.exit_code == 0
    row = item(report, tmp_path)
    assert row["status"] == "succeeded" and row["usage"]["candidatesTokenCount"] == 1120
    with Image.open(tmp_path / "out" / "t" / row["outputs"][0]) as image:
        assert image.format == "PNG"
    (attempt,) = attempts
    assert attempt["outcome"] == "success" and attempt["http_status"] == 200
    assert attempt["model_version"] and attempt["latency_ms"] > 0


@pytest.mark.parametrize("kind", ["429", "500", "502-relay", "503", "504", "408"])
async def test_transient_errors_are_retried_until_success(
    sim: SimServer, tmp_path: Path, kind: str
) -> None:
    sim.add_fault(Fault(kind, times=2, retry_after=0.05))
    report, attempts = await run(tmp_path, sim, ["stormy sea"])
    assert report.exit_code == 0
    assert [a["outcome"] for a in attempts] == ["transient", "transient", "success"]
    assert sim.stats()["requests"] == 3


async def test_a_429_retry_hint_is_honoured(sim: SimServer, tmp_path: Path) -> None:
    sim.add_fault(Fault("429", times=1, retry_after=0.6))
    report, attempts = await run(tmp_path, sim, ["slow down"])
    assert report.exit_code == 0
    first, second = attempts
    assert first["retry_after"] == pytest.approx(0.6)
    waited = _seconds_between(first["ended_at"], second["started_at"])
    assert waited >= 0.55


@pytest.mark.parametrize("kind", ["blocked-prompt", "blocked-finish"])
async def test_blocked_answers_are_terminal_and_their_usage_is_kept(
    sim: SimServer, tmp_path: Path, kind: str
) -> None:
    sim.add_fault(Fault(kind))
    report, attempts = await run(tmp_path, sim, ["something forbidden"])
    assert report.exit_code == 1
    row = item(report, tmp_path)
    assert row["status"] == "blocked" and row["finish_reason"]
    assert row["error"]
    (attempt,) = attempts
    assert attempt["usage_json"] is not None
    assert report.status.status.usage["promptTokenCount"] > 0


@pytest.mark.parametrize("kind", ["text-only", "no-image-finish", "empty-candidates"])
async def test_answers_without_an_image_are_retried_a_bounded_number_of_times(
    sim: SimServer, tmp_path: Path, kind: str
) -> None:
    sim.add_fault(Fault(kind))
    report, attempts = await run(
        tmp_path, sim, ["describe it"], settings="max_attempts: 3\n"
    )
    assert report.exit_code == 1
    assert [a["outcome"] for a in attempts] == ["no_image"] * 3
    assert "gave up after 3 attempts" in item(report, tmp_path)["error"]


@pytest.mark.parametrize(
    "kind", ["hang", "drop", "drop-mid-body", "truncated", "non-json", "bad-base64"]
)
async def test_unknown_outcomes_are_retried_at_most_max_unknown_retries(
    sim: SimServer, tmp_path: Path, kind: str
) -> None:
    sim.add_fault(Fault(kind))
    report, attempts = await run(tmp_path, sim, ["maybe billed"], request_timeout=0.5)
    assert report.exit_code == 1
    assert [a["outcome"] for a in attempts] == ["unknown", "unknown"]
    assert "possibly billed" in item(report, tmp_path)["error"]
    assert report.status.status.requests["unknown"] == 2


async def test_a_response_past_the_size_limit_is_an_unknown_outcome(
    sim: SimServer, tmp_path: Path
) -> None:
    sim.add_fault(Fault("huge", size=3 << 20))
    report, attempts = await run(
        tmp_path, sim, ["enormous"], max_response_bytes=1 << 20
    )
    assert [a["outcome"] for a in attempts] == ["unknown", "unknown"]
    assert "larger than 1" in attempts[0]["reason"]


async def test_with_max_unknown_retries_0_an_unknown_outcome_is_never_resent(
    sim: SimServer, tmp_path: Path
) -> None:
    sim.add_fault(Fault("drop-mid-body"))
    report, attempts = await run(
        tmp_path, sim, ["once only"], settings="max_unknown_retries: 0\n"
    )
    assert len(attempts) == 1 and sim.stats()["requests"] == 1


async def test_other_4xx_fail_the_item_without_a_retry(
    sim: SimServer, tmp_path: Path
) -> None:
    sim.add_fault(Fault("400"))
    report, attempts = await run(tmp_path, sim, ["bad field"])
    assert report.exit_code == 1
    assert [a["outcome"] for a in attempts] == ["fatal_item"]
    assert "INVALID_ARGUMENT" in item(report, tmp_path)["error"]


@pytest.mark.parametrize(
    ("kind", "words"),
    [("401", "key"), ("403-balance", "balance"), ("429-day", "PerDay")],
)
async def test_run_fatal_answers_stop_dispatching_at_once(
    sim: SimServer, tmp_path: Path, kind: str, words: str
) -> None:
    sim.add_fault(Fault(kind, match="first"))
    prompts = ["first", "second", "third", "fourth", "fifth"]
    report, attempts = await run(tmp_path, sim, prompts, settings="concurrency: 1\n")
    assert report.exit_code == 3
    assert report.result.stopped and words.lower() in report.result.stopped.lower()
    assert sim.stats()["requests"] == 1
    assert report.status.counts["pending"] == 5


@pytest.mark.parametrize(
    "kind", ["relay-markdown", "relay-url", "wrong-mime", "no-mime"]
)
async def test_relay_shaped_and_mislabelled_images_are_saved_by_their_bytes(
    sim: SimServer, tmp_path: Path, kind: str
) -> None:
    sim.add_fault(Fault(kind))
    report, attempts = await run(tmp_path, sim, ["relay me"])
    assert report.exit_code == 0
    if kind == "relay-url":
        assert attempts[0]["reason"].startswith(f"image fetched from {sim.url}/files/")
    (output,) = item(report, tmp_path)["outputs"]
    assert output.endswith(".png")
    with Image.open(tmp_path / "out" / "t" / output) as image:
        image.verify()


async def test_concurrency_bounds_requests_in_flight(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner import client

    real = client.generate
    in_flight = most = 0
    full = anyio.Event()

    async def generate(*args: Any, **kwargs: Any) -> client.Outcome:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if in_flight == 3:
            full.set()
        try:
            # The first requests wait for each other, so three leave together
            # (and the server holds them) whatever the timing; a fourth would be
            # counted on its way in.
            with anyio.fail_after(10):
                await full.wait()
            return await real(*args, **kwargs)
        finally:
            in_flight -= 1

    monkeypatch.setattr(client, "generate", generate)
    sim.add_fault(Fault("slow", times=3, delay=0.5))
    prompts = [f"tile {i}" for i in range(12)]
    report, _ = await run(tmp_path, sim, prompts, settings="concurrency: 3\n")
    assert report.exit_code == 0
    assert most == 3
    assert sim.stats()["max_in_flight"] == 3


def _seconds_between(earlier: str, later: str) -> float:
    from datetime import datetime

    return (
        datetime.fromisoformat(later) - datetime.fromisoformat(earlier)
    ).total_seconds()


async def test_images_spilled_to_disk_while_streaming_are_renamed_into_place(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.client import blobs

    monkeypatch.setattr(blobs, "DEFAULT_SPILL_BYTES", 0)
    report, _ = await run(tmp_path, sim, ["one", "two", "three"])
    assert report.exit_code == 0
    images = tmp_path / "out" / "t" / "images"
    assert sorted(p.suffix for p in images.iterdir()) == [".png"] * 3
    for row in manifest(tmp_path / "out", "t"):
        with Image.open(tmp_path / "out" / "t" / row["outputs"][0]) as image:
            image.verify()


async def test_an_rpm_setting_spaces_requests_evenly(
    sim: SimServer, tmp_path: Path
) -> None:
    prompts = [f"paced {i}" for i in range(8)]
    report, attempts = await run(
        tmp_path, sim, prompts, settings="rpm: 300\nconcurrency: 8\n"
    )
    assert report.exit_code == 0
    starts = sorted(a["started_at"] for a in attempts)
    assert _seconds_between(starts[0], starts[-1]) >= 7 * 0.2 * 0.95


async def test_the_manifest_is_rewritten_during_a_long_run(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner import client, outputs
    from runner.scheduler import run as run_module

    monkeypatch.setattr(run_module, "CHECKPOINT_EVERY", 0.1)
    seen: list[dict[str, str]] = []
    checkpointed = anyio.Event()
    real_write, real_generate = outputs.write_manifest, client.generate

    def write_manifest(folder: Path, rows: Any) -> Path:
        path = real_write(folder, rows)
        if not seen:
            seen.extend(json.loads(line) for line in path.read_text().splitlines())
            anyio.from_thread.run_sync(checkpointed.set)
        return path

    async def generate(
        http: Any, endpoint: Any, request: Request, *args: Any, **kwargs: Any
    ) -> client.Outcome:
        # "late" is not sent before the manifest was rewritten: the only writes
        # are the checkpoints and the one after the run, which waits for "late".
        if request.text == "late":
            with anyio.fail_after(10):
                await checkpointed.wait()
        return await real_generate(http, endpoint, request, *args, **kwargs)

    monkeypatch.setattr(outputs, "write_manifest", write_manifest)
    monkeypatch.setattr(client, "generate", generate)
    report, _ = await run(tmp_path, sim, ["early", "late"])
    assert report.exit_code == 0
    # Written while "late" was still on its way, with a line for every item.
    assert sorted(row["prompt"] for row in seen) == ["early", "late"]
    assert next(r for r in seen if r["prompt"] == "late")["status"] != "succeeded"


async def test_a_long_429_pause_ends_at_once_when_the_run_stops() -> None:
    from runner.scheduler.pacing import Pacer

    pacer = Pacer(concurrency=4, rpm=None)
    pacer.throttled(30.0)
    stop = anyio.Event()
    turned = anyio.Event()

    async def wait_turn() -> None:
        await pacer.wait_turn(stop)
        turned.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait_turn)
        await anyio.wait_all_tasks_blocked()
        assert not turned.is_set()  # paused
        stop.set()
        await anyio.wait_all_tasks_blocked()
        assert turned.is_set()  # at once: not after the 30 s


async def test_a_store_that_fails_mid_run_ends_it_with_the_store_error_itself(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.errors import StoreError
    from runner.store import Store

    real = Store.record_attempts
    calls = 0

    def failing(self: Store, changes: Any) -> list[int | None]:
        nonlocal calls
        calls += 1
        if calls > 2:
            raise StoreError("the store runner.db failed: database or disk is full")
        return real(self, changes)

    monkeypatch.setattr(Store, "record_attempts", failing)
    # Not an ExceptionGroup: the command line prints a RunnerError as one line.
    with pytest.raises(StoreError, match="disk is full"):
        await run(
            tmp_path, sim, [f"picture {n}" for n in range(6)], settings="concurrency: 1"
        )


async def test_the_next_request_goes_out_while_an_answer_is_still_being_written(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from runner import client
    from runner.scheduler import images

    real_generate, real_save = client.generate, images.save
    answered = 0
    second_answered = threading.Event()
    seen: list[int] = []

    async def generate(*args: Any, **kwargs: Any) -> client.Outcome:
        nonlocal answered
        outcome = await real_generate(*args, **kwargs)
        answered += 1
        if answered == 2:
            second_answered.set()
        return outcome

    def slow_save(*args: Any) -> Any:
        # The first answer's files are still being written (the recorder's files
        # thread waits here): with concurrency 1 the second request must go out
        # and be answered meanwhile (the slot was freed).
        if not seen:
            second_answered.wait(timeout=10)
            seen.append(sim.stats()["requests"])
        return real_save(*args)

    monkeypatch.setattr(client, "generate", generate)
    monkeypatch.setattr(images, "save", slow_save)
    report, _ = await run(tmp_path, sim, ["one", "two"], settings="concurrency: 1\n")
    assert report.exit_code == 0
    assert seen == [2]
    assert sim.stats()["max_in_flight"] == 1


async def test_an_image_that_cannot_be_written_stops_the_run_with_a_clear_reason(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner import outputs

    real = outputs.write_atomic

    def disk_full(path: Path, data: bytes) -> None:
        if path.parent.name == outputs.IMAGES_DIR:
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(outputs, "write_atomic", disk_full)
    prompts = [f"picture {n}" for n in range(5)]
    report, attempts = await run(tmp_path, sim, prompts, settings="concurrency: 1\n")
    assert report.exit_code == 3
    assert report.result.stopped is not None
    assert "No space left on device" in report.result.stopped
    assert "images" in report.result.stopped
    # Answers were paid for: their usage is recorded; the items stay to be sent
    # again. The slot is freed when an answer arrives, before its image is written,
    # so one more request (concurrency 1) may already be out when the run stops.
    assert 1 <= len(attempts) == sim.stats()["requests"] <= 2
    assert all(a["outcome"] == "fatal_run" and a["total_tokens"] > 0 for a in attempts)
    assert report.status.counts["pending"] == 5


async def test_a_manifest_that_cannot_be_written_is_a_clear_error(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner import outputs
    from runner.errors import OutputError

    def disk_full(folder: Path, rows: Any) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs, "write_manifest", disk_full)
    with pytest.raises(OutputError, match="No space left on device.*submit the job"):
        await run(tmp_path, sim, ["one"])


async def test_a_reference_changed_since_planning_fails_its_item_without_sending(
    sim: SimServer, tmp_path: Path
) -> None:
    ref = tmp_path / "ref.png"
    Image.new("RGB", (8, 8), "red").save(ref)
    settings = "references:\n  - [ref.png]\nconcurrency: 1\n"
    job = write_job(tmp_path, f"name: t\nprompts:\n  - 'a red square'\n{settings}")
    spec = load_job(job)  # hashes the reference as planned
    Image.new("RGB", (8, 8), "blue").save(ref)  # ... then it changes
    workspace = runs.Workspace(tmp_path / "out")
    store = workspace.open_store()
    try:
        report = await execution.submit_spec(
            spec,
            workspace=workspace,
            store=store,
            endpoint=Endpoint(base_url=sim.url, api_key=SECRET),
            overrides=FAST,
        )
        job_row = store.get_job("t")
        assert job_row is not None
        (attempt,) = store.attempt_rows(job_row)
    finally:
        store.close()
    assert sim.stats()["requests"] == 0
    assert attempt["outcome"] == "not_sent" and "changed" in attempt["reason"]
    assert report.status.counts["failed"] == 1


async def test_reference_images_are_encoded_once_per_run_not_per_request(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.client import InlineImage

    encoded: list[int] = []
    of = InlineImage.of

    def counted(data: bytes) -> InlineImage:
        encoded.append(len(data))
        return of(data)

    monkeypatch.setattr(InlineImage, "of", staticmethod(counted))
    for name, colour in (("a", "red"), ("b", "green"), ("c", "blue")):
        Image.new("RGB", (8, 8), colour).save(tmp_path / f"{name}.png")
    sim.add_fault(Fault("503", times=4))  # four requests sent twice
    settings = "references:\n  - [a.png, b.png, c.png]\nsamples: 2\nconcurrency: 4\n"

    report, attempts = await run(
        tmp_path, sim, ["one", "two", "three"], settings=settings
    )

    assert report.status.counts["succeeded"] == 6
    assert len(attempts) == sim.stats()["requests"] == 10
    # Three images, each read and encoded once for ten requests.
    assert len(encoded) == 3
    # ... and every request for a prompt carried the same body.
    assert len(sim.stats()["bodies"]) == 3


async def test_no_store_call_runs_on_the_event_loop(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.current_thread()
    on_loop: list[str] = []

    def watched(name: str, method: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is loop_thread:
                on_loop.append(name)
            return method(*args, **kwargs)

        return call

    job = write_job(tmp_path, "name: t\nprompts: [one, two, three]\nsamples: 3\n")
    sim.add_fault(Fault("503", times=2))
    workspace = runs.Workspace(tmp_path / "out")
    store = workspace.open_store()
    try:
        for name in dir(Store):
            if not name.startswith("_") and callable(getattr(Store, name)):
                monkeypatch.setattr(Store, name, watched(name, getattr(Store, name)))
        report = await execution.submit_spec(
            load_job(job),
            workspace=workspace,
            store=store,
            endpoint=Endpoint(base_url=sim.url, api_key=SECRET),
            overrides=FAST,
        )
        monkeypatch.undo()
    finally:
        store.close()

    assert report.status.counts["succeeded"] == 9
    assert sim.stats()["requests"] == 11
    assert on_loop == []
