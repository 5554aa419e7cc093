"""Run-level failures end to end (SPEC section 1): an answer every other request
would get too stops the run after at most one wave (exit 3), the items not answered
stay pending, the answers that stopped it spend no try, and a plain resubmit after
the fix sends each item exactly once. The same for a base URL that cannot be
reached or has no such route, and for the systematic-failure stop (the run's first
requests all failing alike), which `--no-fail-fast` turns off. Real loopback HTTP
to the simulated API, real SQLite files.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import pytest
from anyio.abc import SocketAttribute

from runner import client
from runner.client import Kind, Outcome
from runner.simulate import Fault
from runner.store import Store
from tests.e2e import SECRET, invoke, status_json, submit_prompts, write_job

if TYPE_CHECKING:
    from pathlib import Path

    from runner.plan import Request
    from runner.reports import RunReport
    from runner.simulate import SimServer
    from runner.store import WorkItem

FAST = {
    "backoff_base": 0.01,
    "request_timeout": 2.0,
    "handle_signals": False,
    "connect_retry_delay": 0.05,
}
PROMPTS = [f"tile {n}" for n in range(12)]
CONCURRENCY = 3


async def submit(
    tmp_path: Path,
    base_url: str,
    prompts: list[str] = PROMPTS,
    *,
    settings: str = f"concurrency: {CONCURRENCY}\n",
    **overrides: Any,
) -> tuple[RunReport, list[WorkItem]]:
    """Submit the job (the same file each time) to `base_url`; the report and the
    items left pending."""
    return await submit_prompts(
        tmp_path,
        base_url,
        prompts,
        settings,
        {**FAST, **overrides},
        Store.pending_items,
    )


def received(sim: SimServer) -> list[int]:
    """How often the simulator received each distinct request body."""
    return sorted(body["received"] for body in sim.stats()["bodies"].values())


def assert_stopped_with_all_pending(
    report: RunReport, pending: list[WorkItem], words: str
) -> str:
    assert report.exit_code == 3
    stopped = report.result.stopped
    assert stopped is not None and words in stopped, stopped
    assert SECRET not in stopped
    assert report.status.counts["pending"] == len(PROMPTS)
    # The answers that stopped the run were no try of their items.
    assert [item.tries_used for item in pending] == [0] * len(PROMPTS)
    return stopped


async def assert_a_resubmit_sends_each_item_once(
    tmp_path: Path, sim: SimServer
) -> None:
    report, pending = await submit(tmp_path, sim.url)
    assert report.exit_code == 0 and not pending
    assert received(sim) == [1] * len(PROMPTS)


# --- answers that stop the run -------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("401", "the API rejected the key at "),
        ("403", "the API refused access at "),
        ("403-balance", "out of balance"),
        ("429-day", "PerDay"),
        ("key-invalid", "the API rejected the key at "),
        ("permission-denied", "the API refused access at "),
        (
            "model-not-found",
            "model 'gemini-3.1-flash-image-preview' is not found at ",
        ),
        ("location", "the API does not serve this key from here at "),
        ("429-limit-0", "this key has no quota for model 'gemini-3.1-flash-image' "),
    ],
)
async def test_a_run_fatal_answer_stops_in_one_wave_and_a_resubmit_sends_each_once(
    sim: SimServer, tmp_path: Path, kind: str, words: str
) -> None:
    sim.add_fault(Fault(kind))
    report, pending = await submit(tmp_path, sim.url)
    assert_stopped_with_all_pending(report, pending, words)
    assert 1 <= sim.stats()["requests"] <= CONCURRENCY
    sim.reset()  # the key, balance or quota fixed
    await assert_a_resubmit_sends_each_item_once(tmp_path, sim)


# --- a base URL that cannot be used ----------------------------------------------


def watch_sends(
    monkeypatch: pytest.MonkeyPatch, refuse: str = "", times: int = 0
) -> list[str]:
    """The texts of every request the run sends, in order; the first `times`
    requests of the prompt `refuse` find no connection (as if refused)."""
    real = client.generate
    sent: list[str] = []

    async def generate(
        http: Any, endpoint: Any, request: Request, *args: Any, **kwargs: Any
    ) -> Outcome:
        sent.append(request.text)
        if request.text == refuse and sent.count(refuse) <= times:
            return Outcome(
                Kind.TRANSIENT, "could not connect (refused)", connect_failed=True
            )
        return await real(http, endpoint, request, *args, **kwargs)

    monkeypatch.setattr(client, "generate", generate)
    return sent


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_nothing_listening_at_the_base_url_stops_the_run_after_a_short_retry(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = watch_sends(monkeypatch)
    base = f"http://127.0.0.1:{closed_port()}"
    report, pending = await submit(tmp_path, base)
    stopped = assert_stopped_with_all_pending(report, pending, "check --base-url")
    assert stopped.startswith(f"could not connect to {base}/v1beta/models/")
    # The first wave only, tried once more after a short wait (the first to fail
    # again stops the run); nothing reached an API.
    assert CONCURRENCY < len(sent) <= 2 * CONCURRENCY
    assert report.status.status.requests["sent"] == 0
    await assert_a_resubmit_sends_each_item_once(tmp_path, sim)


async def test_a_tls_failure_at_the_base_url_stops_the_run(
    sim: SimServer, tmp_path: Path
) -> None:
    async def plain_http(stream: anyio.abc.SocketStream) -> None:
        async with stream:  # what a plain-HTTP server answers a TLS hello with
            await stream.send(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    base = f"https://127.0.0.1:{listener.extra(SocketAttribute.local_port)}"
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, plain_http)
        report, pending = await submit(tmp_path, base)
        tg.cancel_scope.cancel()
    stopped = assert_stopped_with_all_pending(report, pending, "check --base-url")
    assert stopped.startswith(f"could not connect to {base}/v1beta/models/")
    assert "SSL" in stopped
    await assert_a_resubmit_sends_each_item_once(tmp_path, sim)


async def test_a_base_url_with_no_such_route_stops_the_run(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = f"{sim.url}/wrong"
    sent = watch_sends(monkeypatch)
    report, pending = await submit(tmp_path, base)
    stopped = assert_stopped_with_all_pending(report, pending, "check --base-url")
    assert stopped.startswith(
        f"{base}/v1beta/models/gemini-3.1-flash-image-preview:generateContent: "
        "no such route (404); check --base-url"
    )
    assert 1 <= len(sent) <= CONCURRENCY  # the simulator counts no unknown path
    sim.reset()
    await assert_a_resubmit_sends_each_item_once(tmp_path, sim)


async def test_a_connection_that_opens_on_the_short_retry_goes_on_in_the_same_attempt(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = watch_sends(monkeypatch, "tile 0", times=1)
    report, _ = await submit(tmp_path, sim.url, ["tile 0"])
    assert report.exit_code == 0
    assert sent == ["tile 0", "tile 0"]
    # One attempt, which reached the API on its second connection.
    requests = report.status.status.requests
    assert (requests["sent"], requests["not_sent"]) == (1, 0)


async def test_once_the_base_url_has_answered_a_failed_connection_is_transient(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = watch_sends(monkeypatch, "tile 1", times=3)
    report, _ = await submit(
        tmp_path, sim.url, ["tile 0", "tile 1"], settings="concurrency: 1\n"
    )
    assert report.exit_code == 0 and report.result.stopped is None
    # Answered first; then three refused connections retried with backoff.
    assert sent == ["tile 0"] + ["tile 1"] * 4


# --- the systematic-failure stop ------------------------------------------------


async def test_a_run_whose_first_requests_all_fail_alike_stops_with_the_rest_pending(
    sim: SimServer, tmp_path: Path
) -> None:
    prompts = [f"tile {n} [sim:400]" for n in range(30)]
    report, pending = await submit(
        tmp_path, sim.url, prompts, settings="concurrency: 2\n"
    )
    assert report.exit_code == 3
    stopped = report.result.stopped
    assert stopped is not None
    assert stopped.startswith("the first 8 requests all failed the same way (400 ")
    assert "--no-fail-fast" in stopped
    # Stopped at the 8th answer, before its slot was freed: at most the other
    # request in flight (concurrency 2) was sent after it.
    sent = sim.stats()["requests"]
    assert 8 <= sent <= 9
    assert report.status.counts["failed"] == sent
    assert len(pending) == 30 - sent


async def test_a_bad_generation_value_is_not_sent_past_the_first_requests(
    sim: SimServer, tmp_path: Path
) -> None:
    prompts = [f"tile {n}" for n in range(30)]
    bad = "concurrency: 2\ngeneration: {temperature: hot}\n"
    report, pending = await submit(tmp_path, sim.url, prompts, settings=bad)
    assert report.exit_code == 3
    stopped = report.result.stopped
    assert stopped is not None and "--no-fail-fast" in stopped
    assert "400 INVALID_ARGUMENT: Invalid value at 'generation_config.temperature'" in (
        stopped
    )
    assert 8 <= sim.stats()["requests"] <= 9
    assert len(pending) == 30 - sim.stats()["requests"]
    # Fixed in the job file: new requests, new items, each sent once.
    sim.reset()
    good = "concurrency: 2\ngeneration: {temperature: 0.7}\n"
    report, pending = await submit(tmp_path, sim.url, prompts, settings=good)
    assert report.exit_code == 0 and not pending
    assert received(sim) == [1] * 30


async def test_without_fail_fast_every_item_is_sent(
    sim: SimServer, tmp_path: Path
) -> None:
    prompts = [f"tile {n} [sim:400]" for n in range(12)]
    report, _ = await submit(
        tmp_path, sim.url, prompts, settings="concurrency: 2\n", fail_fast_after=None
    )
    assert report.exit_code == 1 and report.result.stopped is None
    assert received(sim) == [1] * 12


async def test_a_first_success_means_the_failures_are_the_items_own(
    sim: SimServer, tmp_path: Path
) -> None:
    prompts = ["fine"] + [f"tile {n} [sim:400]" for n in range(12)]
    report, _ = await submit(tmp_path, sim.url, prompts, settings="concurrency: 1\n")
    assert report.exit_code == 1 and report.result.stopped is None
    assert report.status.counts["failed"] == 12


def systematic_job(tmp_path: Path, name: str) -> Path:
    """Ten items that all get the same 400, sent one at a time."""
    prompts = ", ".join(f"'tile {n} [sim:400]'" for n in range(10))
    body = f"name: {name}\nprompts: [{prompts}]\nconcurrency: 1\n"
    return write_job(tmp_path, body, name=f"{name}.yaml")


def test_no_fail_fast_on_submit_and_retry_sends_every_item(
    sim: SimServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    common = ("--base-url", sim.url, "--output", out, "--no-review")
    env = {"TOKAIFY_API_KEY": SECRET}

    stopped = invoke("submit", systematic_job(tmp_path, "sys"), *common, env=env)
    assert stopped.exit_code == 3, stopped.output
    assert "--no-fail-fast" in stopped.output and "Traceback" not in stopped.output
    assert status_json("sys", out)["counts"]["pending"] == 2
    assert sim.stats()["requests"] == 8

    # retry sends the failed items again, and the pending ones: all of them
    retried = invoke("retry", "sys", *common, "--no-fail-fast", env=env)
    assert retried.exit_code == 1, retried.output
    assert status_json("sys", out)["counts"]["failed"] == 10
    assert sim.stats()["requests"] == 8 + 10

    job = systematic_job(tmp_path, "other")
    submitted = invoke("submit", job, *common, "--no-fail-fast", env=env)
    assert submitted.exit_code == 1, submitted.output
    assert status_json("other", out)["counts"]["failed"] == 10


# --- IMAGE_RECITATION ------------------------------------------------------------


async def test_an_image_recitation_is_sent_once_more_and_then_blocked(
    sim: SimServer, tmp_path: Path
) -> None:
    prompts = ["once [sim:image-recitation*1]", "always [sim:image-recitation]"]
    report, _ = await submit(tmp_path, sim.url, prompts)
    assert report.exit_code == 1
    counts = report.status.counts
    assert (counts["succeeded"], counts["blocked"]) == (1, 1)
    assert received(sim) == [2, 2]
