"""`runner submit`, `retry`, `status` and `list` end to end: the real CLI, a real
simulated API on loopback and a real SQLite file."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import TYPE_CHECKING

import pytest
from PIL import Image

from tests.e2e import (
    REPO,
    SECRET,
    invoke,
    manifest,
    status_json,
    tab_tables,
    write_job,
)
from tests.test_review import gallery_items

if TYPE_CHECKING:
    from pathlib import Path

    from runner.simulate import SimServer

THREE_PROMPTS = """
    name: three
    prompts:
      - "a red fox in snow"
      - "a lighthouse at dusk"
      - "a bowl of ramen"
    aspect_ratios: ["1:1"]
    concurrency: 2
"""


def submit(job: Path, sim: SimServer, out: Path, *extra: str) -> tuple[int, str]:
    result = invoke(
        "submit", job, "--base-url", sim.url, "--output", out, *extra,
        env={"TOKAIFY_API_KEY": SECRET},
    )  # fmt: skip
    return result.exit_code, result.output


def test_the_demo_job_leaves_images_and_a_manifest_that_status_agrees_with(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    result = invoke(
        "submit", REPO / "jobs" / "demo.yaml", "--simulate", "--output", out
    )
    assert result.exit_code == 0, result.output
    rows = manifest(out, "demo")
    status = status_json("demo", out)
    images = sorted((out / "demo" / "images").iterdir())
    # simulated results are never counted as real ones, nor their usage as spent
    assert len(rows) == 12 == status["total"] == status["counts"]["simulated"]
    assert (
        status["counts"]["succeeded"] == 0 and status["usage"]["totalTokenCount"] == 0
    )
    assert len(images) == 12
    assert sum(r["usage"]["candidatesTokenCount"] for r in rows) == 12 * 1120
    assert {r["simulated"] for r in rows} == {True}
    for row in rows:
        (output,) = row["outputs"]
        with Image.open(out / "demo" / output) as image:
            width, height = image.size
        w, h = (int(n) for n in row["aspect_ratio"].split(":"))
        assert abs(width / height - w / h) < 0.05, (row["aspect_ratio"], image.size)
        assert row["status"] == "succeeded" and row["attempts"] == 1
    shown = gallery_items(out / "demo")
    assert sum(1 for i in shown if i["thumb"]) == 12
    assert {i["prompt"] for i in shown} == {"banner", "astronaut"}
    assert sorted(p.name for p in (out / "demo" / "contact").iterdir()) == [
        "astronaut.png",
        "banner.png",
    ]


def test_no_review_leaves_the_gallery_alone(sim: SimServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert submit(write_job(tmp_path, THREE_PROMPTS), sim, out, "--no-review")[0] == 0
    assert not (out / "three" / "index.html").exists()
    result = invoke("review", "three", "--output", out)
    assert result.exit_code == 0 and "gallery:" in result.output
    assert (out / "three" / "index.html").is_file()


def test_resubmitting_a_finished_job_sends_nothing(
    sim: SimServer, tmp_path: Path
) -> None:
    job = write_job(tmp_path, THREE_PROMPTS)
    assert submit(job, sim, tmp_path / "out")[0] == 0
    assert sim.stats()["requests"] == 3
    assert submit(job, sim, tmp_path / "out")[0] == 0
    assert sim.stats()["requests"] == 3


def test_an_unchanged_job_is_not_planned_again_and_an_edited_one_is(
    sim: SimServer, tmp_path: Path
) -> None:
    from runner import runs
    from runner.runs.planning import check_submit
    from runner.spec import load_job

    job = write_job(tmp_path, THREE_PROMPTS)
    out = tmp_path / "out"
    assert submit(job, sim, out)[0] == 0
    store = runs.Workspace(out).open_store()
    try:
        unchanged = check_submit(load_job(job), store, None)
        assert unchanged.plan is None and unchanged.to_send == 0
        job.write_text(job.read_text().replace("dusk", "dawn"))
        edited = check_submit(load_job(job), store, None)
        assert edited.plan is not None and edited.to_send == 1
    finally:
        store.close()


def test_an_added_aspect_ratio_sends_only_the_new_items(
    sim: SimServer, tmp_path: Path
) -> None:
    job = write_job(tmp_path, THREE_PROMPTS)
    assert submit(job, sim, tmp_path / "out")[0] == 0
    job.write_text(job.read_text().replace('["1:1"]', '["1:1", 16:9]'))
    assert submit(job, sim, tmp_path / "out")[0] == 0
    stats = sim.stats()
    assert stats["requests"] == 6
    assert all(b["received"] == 1 for b in stats["bodies"].values())
    ratios = Counter(b["aspect_ratio"] for b in stats["bodies"].values())
    assert ratios == {"1:1": 3, "16:9": 3}


def test_the_api_key_is_sent_but_never_written_anywhere(
    sim: SimServer, tmp_path: Path
) -> None:
    job = write_job(
        tmp_path,
        """
        name: secret
        prompts: ["ok", "bad [sim:400]", "blocked [sim:blocked-prompt]"]
        """,
    )
    code, output = submit(job, sim, tmp_path / "out")
    assert code == 1
    assert {b["auth"] for b in sim.stats()["bodies"].values()} == {"bearer"}
    assert SECRET not in output
    leaked = [
        p for p in (tmp_path / "out").rglob("*") if p.is_file() and
        SECRET.encode() in p.read_bytes()
    ]  # fmt: skip
    assert leaked == []


def test_retry_sends_only_the_failed_items_again(
    sim: SimServer, tmp_path: Path
) -> None:
    job = write_job(
        tmp_path,
        """
        name: flaky
        prompts: ["fine one", "fine two", "refused once [sim:400*1]"]
        """,
    )
    out = tmp_path / "out"
    assert submit(job, sim, out)[0] == 1
    assert status_json("flaky", out)["counts"]["failed"] == 1
    result = invoke(
        "retry", "flaky", "--base-url", sim.url, "--output", out,
        env={"TOKAIFY_API_KEY": SECRET},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    received = {b["text"]: b["received"] for b in sim.stats()["bodies"].values()}
    assert received == {"fine one": 1, "fine two": 1, "refused once [sim:400*1]": 2}
    assert status_json("flaky", out)["counts"]["succeeded"] == 3


def test_an_auth_error_stops_the_run_at_once_with_exit_3(
    sim: SimServer, tmp_path: Path
) -> None:
    job = write_job(
        tmp_path,
        """
        name: noauth
        prompts: ["first [sim:401]", "second", "third", "fourth"]
        concurrency: 1
        """,
    )
    code, output = submit(job, sim, tmp_path / "out")
    assert code == 3, output
    assert "invalid" in output.lower() and "Traceback" not in output
    assert sim.stats()["requests"] == 1
    assert status_json("noauth", tmp_path / "out")["counts"]["pending"] == 4


@pytest.mark.parametrize(
    ("body", "line", "expected"),
    [
        ("prompts: [\n  - 'a\n", 2, "this is not valid YAML: "),
        (
            "prompts: ['a']\naspect_ratio: ['1:1']\n",
            2,
            "unknown key 'aspect_ratio'; did you mean 'aspect_ratios'?",
        ),
        (
            "prompts: ['A {colour} cat']\n",
            1,
            "prompt 'p1' uses {colour} but there is no var 'colour'",
        ),
        (
            "prompts: ['a']\naspect_ratios: ['5:3']\n",
            2,
            "aspect ratio '5:3' is not supported; use one of 1:1,",
        ),
        (
            "prompts: ['a']\nreferences: [[missing.png]]\n",
            2,
            "reference image 'missing.png' not found",
        ),
    ],
)
def test_a_bad_job_file_exits_2_with_a_message_and_sends_nothing(
    sim: SimServer, tmp_path: Path, body: str, line: int, expected: str
) -> None:
    job = tmp_path / "bad.yaml"
    job.write_text(body)
    code, output = submit(job, sim, tmp_path / "out")
    assert code == 2
    assert output.startswith(f"error: {job} line {line}: {expected}"), output
    assert output.count("\n") == 1  # one line, no traceback
    assert sim.stats()["requests"] == 0


def test_without_a_key_submit_says_which_variable_to_set(tmp_path: Path) -> None:
    job = write_job(tmp_path, THREE_PROMPTS)
    result = invoke("submit", job, "--output", tmp_path / "out")
    assert result.exit_code == 2
    assert "TOKAIFY_API_KEY" in result.output and "--simulate" in result.output


@pytest.mark.parametrize(
    "rules", ["{kind: 503}", '{"kind": "overload"}', '[{"kind": "503", "when": 1}]']
)
def test_simulate_refuses_fault_rules_it_cannot_read_in_one_line(
    tmp_path: Path, rules: str
) -> None:
    job = write_job(tmp_path, THREE_PROMPTS)
    env = {"RUNNER_SIMULATE_FAULTS": rules}
    result = invoke("submit", job, "--simulate", "--output", tmp_path / "out", env=env)
    assert result.exit_code == 2
    (line,) = result.output.splitlines()
    assert line.startswith("error: RUNNER_SIMULATE_FAULTS is not a fault rule (")
    assert line.endswith("or unset it")


def test_status_of_an_unknown_job_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("status", "nope", "--output", tmp_path / "out")
    assert result.exit_code == 2
    assert "no job named 'nope'" in result.output and "runner list" in result.output


def test_list_shows_each_job_with_its_counts(sim: SimServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert invoke("list", "--output", out).output == f"no jobs in {out}\n"
    assert submit(write_job(tmp_path, THREE_PROMPTS), sim, out)[0] == 0
    refused, blocked = "refused {n} [sim:400]", "blocked {n} [sim:blocked-prompt]"
    prompts = [
        "ok",
        *(refused.format(n=n) for n in range(2)),
        *(blocked.format(n=n) for n in range(3)),
        *(f"never sent {n}" for n in range(4)),
    ]
    mixed = (
        f"name: mixed\nprompts: {prompts}\nbudget: {{max_requests: 6}}\n"
        "concurrency: 1\n"
    )
    assert submit(write_job(tmp_path, mixed, name="mixed.yaml"), sim, out)[0] == 1
    result = invoke("list", "--output", out)
    assert result.exit_code == 0, result.output
    ((header, *rows),) = tab_tables(result.stdout)
    assert header == [
        "job", "items", "succeeded", "simulated", "failed", "blocked", "pending",
        "updated",
    ]  # fmt: skip
    # items, succeeded, simulated, failed, blocked, pending (never sent: the budget
    # stopped it)
    assert [row[:7] for row in rows] == [
        ["mixed", "10", "1", "0", "2", "3", "4"],
        ["three", "3", "3", "0", "0", "0", "0"],
    ]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", r[7]) for r in rows)
    listed = json.loads(invoke("list", "--json", "--output", out).stdout)
    assert [(j["job"], j["file"], j["counts"]) for j in listed] == [
        ("mixed", str(tmp_path / "mixed.yaml"), counts(1, 2, 3, 4)),
        ("three", str(tmp_path / "job.yaml"), counts(3, 0, 0, 0)),
    ]


def counts(succeeded: int, failed: int, blocked: int, pending: int) -> dict[str, int]:
    return {
        "pending": pending,
        "running": 0,
        "succeeded": succeeded,
        "simulated": 0,
        "failed": failed,
        "blocked": blocked,
        "in_batch": 0,
    }


def test_plan_counts_new_and_done_items_and_sends_nothing(
    sim: SimServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    job = write_job(tmp_path, THREE_PROMPTS)
    submit(job, sim, out)
    job.write_text(job.read_text().replace('["1:1"]', '["1:1", "4:5"]'))
    result = invoke("plan", job, "--json", "--output", out)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["items"] == 6 and data["new"] == 3 and data["to_send"] == 3
    assert data["stored"] == {"succeeded": 3}
    assert data["axes"]["aspect_ratio"] == {"1:1": 3, "4:5": 3}
    assert data["estimate"]["whole_plan"]["tokens"]["candidatesTokenCount"] == 6 * 1120
    assert sim.stats()["requests"] == 3


def test_the_simulated_demo_ignores_a_proxy_named_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A user behind a proxy can still run the demo: the simulated API is local.
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    out = tmp_path / "out"
    result = invoke(
        "submit", REPO / "jobs" / "demo.yaml", "--simulate", "--output", out
    )
    assert result.exit_code == 0, result.output
    assert status_json("demo", out)["counts"]["simulated"] == 12
