"""Money: budgets are hard caps under concurrency, spend is reported to the token,
and `plan` estimates cost before anything is sent."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from runner import pricing, reports, runs
from runner.client import Endpoint
from runner.runs import execution
from runner.scheduler.budget import BudgetGuard
from runner.simulate import Fault, SimServer, Stats
from runner.spec import Budget, load_job
from tests.e2e import SECRET, invoke, status_json, write_job

if TYPE_CHECKING:
    from pathlib import Path

FAST = {"backoff_base": 0.01, "request_timeout": 2.0, "handle_signals": False}

# What Google bills for gemini-3.1-flash-image-preview, USD per million tokens
# (ai.google.dev/gemini-api/docs/pricing: $0.50 input; $3 text output "including
# thinking tokens"; $60 image output, 1120 tokens per 1K image). Written here, not
# read from runner.pricing, so that the runner's own prices are not what checks it.
INPUT_USD, TEXT_OUT_USD, IMAGE_OUT_USD = 0.50, 3.0, 60.0
IMAGE_TOKENS_1K = 1120
# Thinking per answer for a server whose answers cost several times the estimate:
# 60,000 tokens are $0.18, besides $0.067 for the 1K image (the runner estimates
# 200 tokens of thinking).
HEAVY_THOUGHTS = 60_000


def many_prompts(n: int, extra: str = "", concurrency: int = 32) -> str:
    prompts = "\n".join(f"  - 'item {i}'" for i in range(n))
    return (
        f"name: money\nconcurrency: {concurrency}\nmax_attempts: 3\n"
        f"prompts:\n{prompts}\n{extra}"
    )


def server_bill(stats: Stats) -> float:
    """USD for the usage the simulator sent, priced at the published rates above:
    candidate tokens as image output (the runner asks for images only; the few
    text-only answers carry no breakdown and are priced so too) and thinking as
    text output."""
    u = stats["usage"]
    return (
        u["promptTokenCount"] * INPUT_USD
        + u["candidatesTokenCount"] * IMAGE_OUT_USD
        + u["thoughtsTokenCount"] * TEXT_OUT_USD
    ) / 1_000_000


def stop_usd(message: str | None) -> float:
    """The dollars a max_cost_usd stop message says were spent."""
    assert message is not None and "max_cost_usd" in message, message
    return float(message.split("$", 1)[1].split()[0])


async def submit(
    tmp_path: Path, sim: SimServer, body: str, **caps: Any
) -> reports.RunReport:
    spec = load_job(write_job(tmp_path, body))
    workspace = runs.Workspace(tmp_path / "out")
    store = workspace.open_store()
    try:
        return await execution.submit_spec(
            spec,
            workspace=workspace,
            store=store,
            endpoint=Endpoint(base_url=sim.url, api_key=SECRET),
            overrides=FAST,
            send=runs.SendOptions(caps=caps),
        )
    finally:
        store.close()


def add_faults(sim: SimServer) -> None:
    sim.add_fault(Fault("500", rate=0.2))
    sim.add_fault(Fault("429", rate=0.1, retry_after=0.02))
    sim.add_fault(Fault("drop-mid-body", rate=0.05))
    sim.add_fault(Fault("blocked-prompt", rate=0.05))
    sim.add_fault(Fault("slow", rate=0.3, delay=0.05))


@pytest.mark.parametrize("cap", [1, 7, 25])
async def test_a_request_budget_holds_under_concurrency_32_with_faults(
    sim: SimServer, tmp_path: Path, cap: int
) -> None:
    add_faults(sim)
    report = await submit(tmp_path, sim, many_prompts(60), max_requests=cap)
    assert sim.stats()["requests"] == cap
    assert report.exit_code == 1
    assert report.result.budget_stop and f"max_requests {cap}" in (
        report.result.budget_stop
    )
    assert report.status.counts["pending"] > 0


async def test_a_stopped_job_resumes_when_the_budget_is_raised(
    sim: SimServer, tmp_path: Path
) -> None:
    body = many_prompts(10, "budget: {max_requests: 4}\n")
    first = await submit(tmp_path, sim, body)
    assert first.result.budget_stop and sim.stats()["requests"] == 4
    again = await submit(tmp_path, sim, body)  # same budget: nothing more
    assert again.result.budget_stop and sim.stats()["requests"] == 4
    raised = await submit(
        tmp_path, sim, body.replace("max_requests: 4", "max_requests: 50")
    )
    assert raised.exit_code == 0 and raised.result.budget_stop is None
    assert sim.stats()["requests"] == 10


async def test_an_image_budget_counts_in_flight_requests(
    sim: SimServer, tmp_path: Path
) -> None:
    report = await submit(tmp_path, sim, many_prompts(40), max_images=9)
    assert sim.stats()["images_sent"] == 9
    assert report.status.status.spend.images == 9


async def test_a_cost_budget_never_lets_spend_pass_it(
    sim: SimServer, tmp_path: Path
) -> None:
    report = await submit(tmp_path, sim, many_prompts(40), max_cost_usd=0.5)
    stats = sim.stats()
    billed = server_bill(stats)
    per_answer = billed / stats["images_sent"]
    assert 0.5 - per_answer < billed <= 0.5
    assert report.status.as_dict()["cost"]["total_usd"] == pytest.approx(billed)
    assert stop_usd(report.result.budget_stop) == pytest.approx(billed, abs=1e-4)


@pytest.mark.parametrize("cap", [0.3, 2.0])
async def test_a_cost_cap_holds_when_answers_cost_several_times_the_estimate(
    tmp_path: Path, cap: float
) -> None:
    with SimServer(image_scale=0.0625, thoughts_tokens=HEAVY_THOUGHTS) as sim:
        body = many_prompts(40, concurrency=8)
        report = await submit(tmp_path, sim, body, max_cost_usd=cap)
        stats = sim.stats()
    billed = server_bill(stats)
    per_answer = billed / stats["images_sent"]
    estimate = 1120 * IMAGE_OUT_USD / 1_000_000  # the image alone; more to come
    assert per_answer > 3 * estimate  # the premise: answers cost several times that
    assert billed <= cap + per_answer  # never past the cap by more than one answer
    assert billed > cap - per_answer  # and the budget was used, not left idle
    # The stop message tells all that was spent, in flight at the stop or not.
    assert stop_usd(report.result.budget_stop) == pytest.approx(billed, abs=1e-4)
    assert report.status.as_dict()["cost"]["total_usd"] == pytest.approx(billed)


async def test_an_image_cap_holds_when_answers_hold_two_images(tmp_path: Path) -> None:
    with SimServer(image_scale=0.0625, images_per_answer=2) as sim:
        body = many_prompts(40, concurrency=8)
        report = await submit(tmp_path, sim, body, max_images=9)
        sent = sim.stats()["images_sent"]
    assert 9 - 2 < sent <= 9 + 2  # within one answer's images of the cap
    assert report.status.status.spend.images == sent
    assert report.result.budget_stop == (
        f"budget reached: max_images 9 ({sent} images so far)"
    )


async def test_a_large_budget_keeps_full_concurrency(tmp_path: Path) -> None:
    with SimServer(
        image_scale=0.0625, latency=0.05, thoughts_tokens=HEAVY_THOUGHTS
    ) as sim:
        body = many_prompts(24, concurrency=8)
        report = await submit(tmp_path, sim, body, max_cost_usd=100, max_images=1000)
        stats = sim.stats()
    assert report.exit_code == 0 and stats["requests"] == 24
    assert stats["max_in_flight"] == 8


async def test_a_resumed_job_reserves_the_dearest_answer_it_recorded(
    tmp_path: Path,
) -> None:
    with SimServer(
        image_scale=0.0625, thoughts_tokens=HEAVY_THOUGHTS, images_per_answer=2
    ) as sim:
        await submit(tmp_path, sim, many_prompts(3, concurrency=1))
        billed = server_bill(sim.stats())
    store = runs.Workspace(tmp_path / "out").open_store()
    try:
        job = store.get_job("money")
        assert job is not None
        recorded, spent = store.recorded_usage(job), store.spend(job)
    finally:
        store.close()
    price = pricing.PRICES["gemini-3.1-flash-image-preview"]
    guard = BudgetGuard(Budget(max_cost_usd=billed * 2), price, spent, recorded)
    assert guard.learned and guard.most_images == 2
    assert guard.dearest == pytest.approx(billed / 3, rel=0.01)
    # Room for three more answers: three go at once, the fourth is refused for good.
    assert [guard.reserve(0.01) for _ in range(3)] == [None] * 3
    refused = guard.reserve(0.01)
    assert refused is not None and refused.cap == "max_cost_usd" and refused.wait


async def test_reported_usage_equals_what_the_server_sent_to_the_token(
    sim: SimServer, tmp_path: Path
) -> None:
    add_faults(sim)
    sim.add_fault(Fault("text-only", rate=0.1))
    sim.add_fault(Fault("bad-base64", rate=0.05))
    report = await submit(tmp_path, sim, many_prompts(50, "max_unknown_retries: 2\n"))
    sent = sim.stats()["usage"]
    usage = report.status.status.usage
    for name in ("promptTokenCount", "candidatesTokenCount", "totalTokenCount"):
        assert usage[name] == sent[name], name
    store = runs.Workspace(tmp_path / "out").open_store()
    try:
        job = store.get_job("money")
        assert job is not None
        data = runs.read_status(store, job, by=("prompt",)).as_dict()
    finally:
        store.close()
    by_prompt = data["by"]["prompt"]
    assert (
        sum(g["usage"]["totalTokenCount"] for g in by_prompt.values())
        == (sent["totalTokenCount"])
    )
    assert data["requests"]["paid_failed"] >= report.status.counts["blocked"]
    assert data["cost"]["billed_usd"] == pytest.approx(server_bill(sim.stats()))


def test_plan_estimates_tokens_and_cost_of_what_would_be_sent(tmp_path: Path) -> None:
    job = write_job(tmp_path, 'name: est\nprompts: ["a", "b"]\nimage_sizes: [1K, 4K]\n')
    result = invoke("plan", job, "--json", "--output", tmp_path / "out")
    assert result.exit_code == 0, result.output
    estimate = json.loads(result.stdout)["estimate"]["to_send"]
    assert estimate["requests"] == 4
    assert estimate["tokens"]["candidatesTokenCount"] == 2 * (1120 + 2520)
    image_usd = 2 * (1120 + 2520) * 60 / 1_000_000
    assert image_usd < estimate["cost_usd"] < image_usd * 1.05


def test_pricing_can_be_overridden_in_the_job_file(tmp_path: Path) -> None:
    job = write_job(
        tmp_path,
        "name: cheap\nprompts: [a]\npricing: {output_image_per_million: 0, "
        "input_per_million: 0, output_text_per_million: 0}\n",
    )
    result = invoke("plan", job, "--json", "--output", tmp_path / "out")
    assert json.loads(result.stdout)["estimate"]["to_send"]["cost_usd"] == 0


def test_cli_budget_flags_override_the_job_file(sim: SimServer, tmp_path: Path) -> None:
    job = write_job(tmp_path, many_prompts(8, "budget: {max_requests: 100}\n"))
    out = tmp_path / "out"
    result = invoke(
        "submit", job, "--base-url", sim.url, "--output", out, "--max-requests", "3",
        env={"TOKAIFY_API_KEY": SECRET},
    )  # fmt: skip
    assert result.exit_code == 1
    assert "budget reached: max_requests 3" in result.output
    assert "--max-requests" in result.output
    assert sim.stats()["requests"] == 3
    status = status_json("money", out)
    assert status["counts"]["succeeded"] == 3 and status["cost"]["total_usd"] > 0
    text = invoke("status", "money", "--by", "prompt", "--output", out)
    assert "\nprompt\titems\t" in text.stdout and "item 0" not in text.stdout


def test_a_terminal_run_over_the_cost_threshold_asks_first(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner import cli as cli_module

    job = write_job(tmp_path, many_prompts(4))
    monkeypatch.setattr(cli_module, "_interactive", lambda: True)
    args = ("submit", job, "--base-url", sim.url, "--output", tmp_path / "out")
    env = {"TOKAIFY_API_KEY": SECRET, "RUNNER_CONFIRM_USD": "0.01"}
    from click.testing import CliRunner

    from runner.cli import cli

    declined = CliRunner().invoke(cli, [str(a) for a in args], input="n\n", env=env)
    assert declined.exit_code == 2
    assert "estimated $0.27" in declined.output and "Send them?" in declined.output
    assert sim.stats()["requests"] == 0
    skipped = CliRunner().invoke(cli, [*map(str, args), "--yes"], env=env)
    assert skipped.exit_code == 0, skipped.output
    assert sim.stats()["requests"] == 4


def test_estimates_learn_from_the_answers_the_job_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from runner import cli as cli_module
    from runner.cli import cli

    with SimServer(image_scale=0.0625, thoughts_tokens=HEAVY_THOUGHTS) as sim:
        anyio.run(lambda: submit(tmp_path, sim, many_prompts(4, concurrency=4)))
        per_answer = server_bill(sim.stats()) / 4
    job = write_job(tmp_path, many_prompts(8))  # four more prompts, alike
    out = tmp_path / "out"
    data = json.loads(invoke("plan", job, "--json", "--output", out).stdout)
    to_send, whole = data["estimate"]["to_send"], data["estimate"]["whole_plan"]
    assert to_send["requests"] == 4 and to_send["recorded_answers"] == 4
    assert to_send["cost_usd"] == pytest.approx(4 * per_answer, rel=0.001)
    assert whole["cost_usd"] == pytest.approx(8 * per_answer, rel=0.001)
    text = " ".join(invoke("plan", job, "--output", out).output.split())
    assert "(estimated from 4 recorded answers)" in text
    monkeypatch.setattr(cli_module, "_interactive", lambda: True)
    declined = CliRunner().invoke(
        cli,
        ["submit", str(job), "--base-url", "http://127.0.0.1:9", "--output", str(out)],
        input="n\n",
        env={"TOKAIFY_API_KEY": SECRET, "RUNNER_CONFIRM_USD": "0.01"},
    )
    assert declined.exit_code == 2, declined.output
    assert (
        f"4 new requests, estimated ${4 * per_answer:.2f} from 4 recorded answers"
    ) in declined.output


def test_a_job_without_answers_is_estimated_from_the_published_figures(
    tmp_path: Path,
) -> None:
    job = write_job(tmp_path, many_prompts(3))
    data = json.loads(invoke("plan", job, "--json", "--output", tmp_path).stdout)
    assert data["estimate"]["to_send"]["recorded_answers"] == 0
    assert "recorded answers" not in invoke("plan", job, "--output", tmp_path).output
