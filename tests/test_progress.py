"""What a run says while it runs and around it: the line before it sends, the
progress counts, the Ctrl-C lines, the retry command after failures, and a retry
with nothing to do. The real CLI, the simulated API on loopback, a real SQLite
file. (The same lines in a real terminal: test_terminal.py.)"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import signal
import time
from dataclasses import replace
from typing import TYPE_CHECKING

import anyio

from runner import render
from runner.scheduler import Progress, images
from runner.simulate import Fault
from runner.store import Store
from tests.e2e import SECRET, invoke, status_json, submit_prompts, write_job

if TYPE_CHECKING:
    from pathlib import Path

    import pytest
    from click.testing import Result

    from runner.simulate import SimServer

KEY = {"TOKAIFY_API_KEY": SECRET}
EST = r"\(est\. \$\d+\.\d\d\)"


def send(*args: str | Path) -> Result:
    return invoke(*args, env=KEY)


def to_sim(sim: SimServer, out: Path, command: str, *args: str | Path) -> Result:
    """`runner COMMAND ARGS...` against the simulator, results under `out`."""
    return send(command, *args, "--base-url", sim.url, "--output", out)


def three(tmp_path: Path, third: str = "a bowl of ramen [sim:400]") -> Path:
    return write_job(
        tmp_path, f"name: three\nprompts: ['a red fox', 'a lighthouse', '{third}']\n"
    )


# -- before sending ------------------------------------------------------------------


def test_submit_says_what_it_will_send_and_what_it_costs_before_sending(
    sim: SimServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    job = three(tmp_path)
    first = to_sim(sim, out, "submit", job)
    assert first.stderr.splitlines()[0] == "three: 3 items: 3 new; sending 3 " + (
        re.search(EST, first.stderr).group(0)  # type: ignore[union-attr]
    )
    # Drop one prompt (stale), add two (new): one done, one failed stay as they are.
    job.write_text(
        "name: three\nprompts: ['a red fox', 'a bowl of ramen [sim:400]', 'a kite',"
        " 'a boat']\n"
    )
    again = to_sim(sim, out, "submit", job)
    line = again.stderr.splitlines()[0]
    assert re.fullmatch(
        rf"three: 4 items: 1 done, 2 new, 1 failed, 1 stale; sending 2 {EST}", line
    ), line
    assert sim.stats()["requests"] == 3 + 2


def test_a_finished_job_has_nothing_to_send_nor_to_retry_and_sends_nothing(
    sim: SimServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    job = three(tmp_path, "a kite")
    assert to_sim(sim, out, "submit", job).exit_code == 0
    requests = sim.stats()["requests"]
    again = to_sim(sim, out, "submit", job)
    assert again.exit_code == 0
    assert again.stderr.splitlines()[0] == "three: 3 items: 3 done; nothing to send"
    assert again.stdout.startswith("three: nothing sent; manifest ")
    retried = to_sim(sim, out, "retry", "three")
    assert (retried.exit_code, retried.stdout, retried.stderr) == (
        0,
        "nothing to retry: three: 3 items: 3 done\n",
        "",
    )
    assert sim.stats()["requests"] == requests


def test_a_simulated_submit_says_its_estimate_is_not_spent(tmp_path: Path) -> None:
    job = three(tmp_path, "a kite")
    result = invoke("submit", job, "--simulate", "--output", tmp_path / "out")
    line = result.stderr.splitlines()[0]
    assert re.fullmatch(
        r"three: 3 items: 3 new; simulating 3 \(est\. \$\d+\.\d\d if real; "
        r"nothing is spent\)",
        line,
    ), line


def test_with_json_the_facts_before_sending_and_the_retry_command_are_in_the_report(
    sim: SimServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = to_sim(sim, out, "submit", three(tmp_path), "--json")
    assert result.exit_code == 1
    assert "sending" not in result.stderr and "to send" not in result.stderr
    data = json.loads(result.stdout)
    sending = data["sending"]
    assert sending["command"] == "submit"
    assert (sending["items"], sending["new"], sending["to_send"]) == (3, 3, 3)
    assert sending["cost_usd"] > 0 and sending["simulated"] is False
    assert sending["batch_cost_usd"] is None and sending["by_batch"] is False
    assert data["retry_command"] == (
        f"runner retry three --output {out} --base-url {sim.url}"
    )


def test_retry_says_how_many_failed_items_it_sends(
    sim: SimServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    job = write_job(
        tmp_path,
        "name: mixed\nprompts: ['fine', 'refused [sim:400]', "
        "'forbidden [sim:blocked-prompt]']\n",
    )
    assert to_sim(sim, out, "submit", job).exit_code == 1
    # Without a key it sends nothing, so it says nothing about sending.
    keyless = invoke("retry", "mixed", "--base-url", sim.url, "--output", out)
    assert keyless.exit_code == 2 and keyless.stderr.startswith("error: no API key")
    result = to_sim(sim, out, "retry", "mixed")
    line = result.stderr.splitlines()[0]
    assert re.fullmatch(
        rf"mixed: 3 items: 1 done, 1 failed, 1 blocked; sending 1 {EST}", line
    ), line


# -- after the run ---------------------------------------------------------------------


def test_after_failures_the_exact_retry_command_is_given_and_works(
    sim: SimServer, tmp_path: Path
) -> None:
    out = tmp_path / "out dir"  # a space: the command quotes it
    db = f"sqlite:///{tmp_path / 'store.db'}"
    job = three(tmp_path, "a bowl of ramen [sim:400*1]")
    result = to_sim(sim, out, "submit", job, "--db", db)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    note = lines.index("1 item failed; to send it again:")
    command = lines[note + 1]
    assert command == (
        f"  runner retry three --output '{out}' --db {db} --base-url {sim.url}"
    )
    words = shlex.split(command)
    assert words[:3] == ["runner", "retry", "three"]
    retried = send(*words[1:])
    assert retried.exit_code == 0, retried.output
    assert "to send" not in retried.stderr  # nothing failed is left
    counts = json.loads(send("status", "three", "--json", "--output", out, "--db", db)
                        .stdout)["counts"]  # fmt: skip
    assert counts["succeeded"] == 3


def test_the_retry_command_keeps_simulate_and_adds_blocked_when_blocked_remain(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    job = write_job(
        tmp_path,
        "name: sim\nprompts: ['fine', 'refused [sim:400]', "
        "'forbidden [sim:blocked-prompt]']\n",
    )
    result = invoke("submit", job, "--simulate", "--output", out)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-2:] == [
        "1 item failed, 1 blocked; to send them again:",
        f"  runner retry sim --output {out} --simulate --blocked",
    ]


def test_nothing_to_retry_but_blocked_items_exits_1_and_names_blocked(
    sim: SimServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    job = three(tmp_path, "forbidden [sim:blocked-prompt]")
    assert to_sim(sim, out, "submit", job).exit_code == 1
    result = to_sim(sim, out, "retry", job)
    assert result.exit_code == 1
    assert result.stdout == "nothing to retry: three: 3 items: 2 done, 1 blocked\n"
    assert result.stderr.splitlines() == [
        "1 item blocked; to send it again:",
        f"  runner retry three --output {out} --base-url {sim.url} --blocked",
    ]
    assert status_json("three", out)["counts"]["blocked"] == 1


def test_the_run_summary_counts_in_words(sim: SimServer, tmp_path: Path) -> None:
    job = write_job(tmp_path, "name: one\nprompts: ['a kite']\n")
    result = to_sim(sim, tmp_path / "out", "submit", job)
    assert result.stdout.startswith("one: sent 1 request for 1 item in ")


# -- while it runs -------------------------------------------------------------------


async def test_running_counts_requests_in_flight_never_more_than_the_concurrency(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Writing each answer takes a while (a slow disk): with twice as many workers
    # as slots, requests go out while earlier answers are still being saved.
    save = images.save

    def slow_save(*args: object) -> object:
        time.sleep(0.05)
        return save(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(images, "save", slow_save)
    seen: list[Progress] = []
    report, _ = await submit_prompts(
        tmp_path,
        sim.url,
        [f"picture {i}" for i in range(12)],
        "concurrency: 2\n",
        {"handle_signals": False},
        Store.item_count,
        on_progress=seen.append,
    )
    assert report.exit_code == 0
    assert max(p.running for p in seen) == 2  # the concurrency, never above
    assert max(p.saving for p in seen) >= 1  # answers in, being written
    assert all(p.running + p.saving + p.finished <= p.total for p in seen)
    last = seen[-1]
    assert (last.running, last.saving, last.succeeded) == (0, 0, 12)


def plain_lines(capsys: pytest.CaptureFixture[str], *snapshots: Progress) -> list[str]:
    """What the progress display prints off a terminal for these snapshots."""
    with render.progress(False) as show:
        assert show is not None
        for p in snapshots:
            show(p)
    return capsys.readouterr().err.splitlines()


def test_the_ctrl_c_lines_fit_80_columns_with_a_thousand_in_flight(
    capsys: pytest.CaptureFixture[str],
) -> None:
    running = Progress(total=5000, succeeded=2000, running=1000, concurrency=1000)
    once = replace(running, interrupts=1, stopping="interrupted")
    twice = replace(once, interrupts=2)
    lines = plain_lines(capsys, running, once, twice)
    assert (
        "interrupted: finishing 1,000 requests in flight (Ctrl-C again abandons them)"
        in lines
    )
    assert "interrupted again: abandoning 1,000 requests in flight" in lines
    assert all(len(line) <= 80 for line in lines if "interrupted" in line)
    # Said once each, not at every update.
    assert sum("interrupted" in line for line in lines) == 2


def test_the_progress_line_says_retries_in_the_right_number(
    capsys: pytest.CaptureFixture[str],
) -> None:
    one = Progress(total=3, succeeded=3, retries=1, tokens=1234)
    (line,) = plain_lines(capsys, one)
    assert line == "[3/3] ok 3 · running 0 · 1,234 tok · 1 retry"
    lines = plain_lines(capsys, Progress(total=4, succeeded=3, failed=1, retries=2))
    assert lines == ["[4/4] ok 3 · failed 1 · running 0 · 0 tok · 2 retries"]


def test_a_second_ctrl_c_is_reported_as_such(sim: SimServer, tmp_path: Path) -> None:
    """Through the scheduler: requests held by the simulator, two SIGINTs."""
    sim.add_fault(Fault("hang", match="held"))
    seen: list[Progress] = []

    def on_progress(p: Progress) -> None:
        seen.append(p)
        if p.running == 3 and not p.interrupts:
            os.kill(os.getpid(), signal.SIGINT)  # once all three are out
        elif p.interrupts == 1 and [q.interrupts for q in seen].count(1) == 1:
            os.kill(os.getpid(), signal.SIGINT)  # at once after the first

    report, _ = anyio.run(
        functools.partial(
            submit_prompts,
            tmp_path,
            sim.url,
            [f"held {i}" for i in range(3)],
            "concurrency: 3\n",
            {},
            Store.item_count,
            on_progress=on_progress,
        )
    )
    assert report.exit_code == 130
    assert report.result.abandoned == 3
    assert report.result.progress.interrupts == 2
