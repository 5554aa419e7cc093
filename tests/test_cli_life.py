"""A job's life in the store, end to end through the CLI: simulated results replaced
by real ones (SPEC 5), `runner rm`, stale items and `runner prune`, and who owns a
job name. Real SQLite files and the simulated API on loopback."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from contextlib import closing, nullcontext
from typing import TYPE_CHECKING

import pytest
from PIL import Image

from runner import cli as cli_module
from runner import runs
from runner.errors import UsageError
from runner.simulate import Fault
from tests.e2e import SECRET, invoke, manifest, status_json, write_job
from tests.test_review import gallery_items

if TYPE_CHECKING:
    from pathlib import Path

    from click.testing import Result

    from runner.reports import Confirmation
    from runner.simulate import SimServer

PROMPTS = ("a red fox in snow", "a lighthouse at dusk", "a bowl of ramen")
JOB = f"""
    name: life
    prompts: {list(PROMPTS)}
    aspect_ratios: ["1:1"]
    image_sizes: ["1K"]
    concurrency: 3
"""
SESSION_SIM_SIZE = (64, 64)  # the session simulator draws 1K 1:1 at 1/16 scale


def real_submit(job: Path, sim: SimServer, out: Path, *extra: str) -> Result:
    """`runner submit` against `sim` standing for the real API."""
    return invoke(
        "submit", job, "--base-url", sim.url, "--output", out, *extra,
        env={"TOKAIFY_API_KEY": SECRET},
    )  # fmt: skip


def requests_by_prompt(sim: SimServer) -> dict[str, int]:
    counts: dict[str, int] = {}
    for body in sim.stats()["bodies"].values():
        counts[body["text"]] = counts.get(body["text"], 0) + body["received"]
    return counts


def image_files(out: Path, job: str) -> set[str]:
    return {f"images/{p.name}" for p in (out / job / "images").iterdir()}


# -- simulated results never stand in for real ones ---------------------------------


def test_a_real_submit_after_simulate_sends_every_item_and_keeps_the_real_images(
    sim: SimServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    job = write_job(tmp_path, JOB)
    simulated = invoke("submit", job, "--simulate", "--output", out)
    assert simulated.exit_code == 0, simulated.output
    status = status_json("life", out)
    assert status["counts"]["simulated"] == 3 and status["counts"]["succeeded"] == 0
    assert status["requests"]["sent"] == 0 and status["cost"]["total_usd"] == 0
    rows = manifest(out, "life")
    assert {r["simulated"] for r in rows} == {True}
    assert [i["simulated"] for i in gallery_items(out / "life")] == [True] * 3
    # one simulated answer came back as a JPEG: the real PNG gets another name
    renamed = rows[0]["outputs"][0].removesuffix(".png") + ".jpg"
    (out / "life" / rows[0]["outputs"][0]).rename(out / "life" / renamed)
    with closing(sqlite3.connect(out / "runner.db")) as db, db:
        db.execute(
            "UPDATE items SET outputs_json = ? WHERE key = ?",
            (json.dumps([renamed]), rows[0]["key"]),
        )

    # a budget of 3 requests: the simulated ones spent none of it
    real = real_submit(job, sim, out, "--max-requests", "3")
    assert real.exit_code == 0, real.output
    assert requests_by_prompt(sim) == dict.fromkeys(PROMPTS, 1)
    status = status_json("life", out)
    assert status["counts"]["succeeded"] == 3 and status["counts"]["simulated"] == 0
    assert status["requests"]["sent"] == 3
    rows = manifest(out, "life")
    assert {r["simulated"] for r in rows} == {False}
    outputs = {o for r in rows for o in r["outputs"]}
    assert image_files(out, "life") == outputs  # the simulated JPEG is gone
    for name in outputs:
        with Image.open(out / "life" / name) as image:
            assert image.size == SESSION_SIM_SIZE, name  # the real API's images
    assert not any(i["simulated"] for i in gallery_items(out / "life"))
    again = real_submit(job, sim, out)
    assert again.exit_code == 0 and sim.stats()["requests"] == 3


def test_a_simulated_image_stays_until_a_real_answer_replaces_it(
    sim: SimServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    job = write_job(tmp_path, JOB)
    assert invoke("submit", job, "--simulate", "--output", out).exit_code == 0
    before = image_files(out, "life")
    sim.add_fault(Fault("400", match="lighthouse"))
    assert real_submit(job, sim, out).exit_code == 1
    status = status_json("life", out)
    assert status["counts"] == {
        "pending": 0, "running": 0, "succeeded": 2, "simulated": 0, "failed": 1,
        "blocked": 0, "in_batch": 0,
    }  # fmt: skip
    assert image_files(out, "life") == before  # the refused item's file is kept
    (failed,) = [r for r in manifest(out, "life") if r["status"] == "failed"]
    assert failed["outputs"] == [] and failed["simulated"] is False


def test_simulate_never_asks_about_cost(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNNER_CONFIRM_USD", "0")  # ask about any cost at all
    monkeypatch.setenv("TOKAIFY_API_KEY", SECRET)
    asked: list[Confirmation] = []

    def ask(question: Confirmation) -> bool:
        asked.append(question)
        return False

    job = write_job(tmp_path, JOB)
    workspace = runs.Workspace(tmp_path / "out")
    simulated = runs.SendOptions(simulator=lambda: nullcontext(sim.url), review=False)
    report = runs.submit(job, workspace=workspace, send=simulated, confirm=ask)
    assert asked == [] and report.exit_code == 0
    real = runs.SendOptions(base_url=sim.url, review=False)
    with pytest.raises(UsageError, match="not confirmed"):
        runs.submit(job, workspace=workspace, send=real, confirm=ask)
    assert [q.to_send for q in asked] == [3]  # the simulated items, for real


# -- runner rm -------------------------------------------------------------------


def test_rm_off_a_terminal_needs_yes_and_removes_the_job_but_not_its_images(
    sim: SimServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert real_submit(write_job(tmp_path, JOB), sim, out).exit_code == 0
    refused = invoke("rm", "life", "--output", out)
    assert refused.exit_code == 2
    assert "remove job life and its 3 item(s)" in refused.output
    assert "pass --yes" in refused.output
    assert status_json("life", out)["counts"]["succeeded"] == 3
    removed = invoke("rm", "life", "--yes", "--output", out)
    assert removed.exit_code == 0, removed.output
    assert "removed job life: 3 item(s), 3 attempt(s)" in removed.output
    assert invoke("list", "--json", "--output", out).stdout.strip() == "[]"
    assert invoke("status", "life", "--output", out).exit_code == 2
    assert len(image_files(out, "life")) == 3
    with closing(sqlite3.connect(out / "runner.db")) as db:
        for table in ("items", "attempts", "runs", "job_totals", "jobs"):
            assert db.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)


def test_rm_asks_on_a_terminal_and_images_takes_the_folder(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    job = write_job(tmp_path, JOB)
    assert real_submit(job, sim, out).exit_code == 0
    monkeypatch.setattr(cli_module, "_interactive", lambda: True)
    declined = invoke_with_input("n\n", "rm", "life", "--images", "--output", out)
    assert declined.exit_code == 2 and "not confirmed" in declined.output
    assert f"with their images in {out / 'life'}" in declined.output
    assert status_json("life", out)["total"] == 3
    agreed = invoke_with_input("y\n", "rm", "life", "--images", "--output", out)
    assert agreed.exit_code == 0, agreed.output
    assert "3 image file(s) deleted" in agreed.output
    assert not (out / "life").exists()
    # a new submit of the same file starts from nothing
    assert real_submit(job, sim, out).exit_code == 0
    assert sim.stats()["requests"] == 6


def invoke_with_input(text: str, *args: str | Path) -> Result:
    from click.testing import CliRunner

    return CliRunner().invoke(cli_module.cli, [str(a) for a in args], input=text)


# -- stale items --------------------------------------------------------------------


def test_stale_items_are_reported_left_out_of_counts_and_ratios_and_pruned(
    sim: SimServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    job = write_job(tmp_path, JOB.replace("a bowl of ramen", "refused [sim:400]"))
    assert real_submit(job, sim, out).exit_code == 1  # the refused item failed
    before = status_json("life", out)
    assert before["attempts_per_success"] == 1.5 and before["stale"] == 0
    job.write_text(job.read_text().replace(", 'refused [sim:400]'", ""))

    plan = invoke("plan", job, "--json", "--output", out)
    assert plan.exit_code == 0, plan.output
    data = json.loads(plan.stdout)
    assert data["stale"] == 1 and data["items"] == 2
    assert any("1 stored item(s) of life are no longer" in w for w in data["warnings"])
    again = real_submit(job, sim, out)
    assert again.exit_code == 0, again.output  # the stale failure does not count
    assert "1 stored item(s) of life are no longer in the job file" in again.output
    assert "runner prune life" in again.output
    status = status_json("life", out)
    assert status["total"] == 2 and status["counts"]["failed"] == 0
    assert status["stale"] == 1
    assert status["attempts_per_success"] == 1.0  # the stale item's request left out
    assert status["requests"]["sent"] == 3  # its cost is still the job's
    shown = invoke("status", "life", "--output", out)
    assert "1 stored item(s) of life are no longer" in shown.output

    kept = image_files(out, "life")
    pruned = invoke("prune", "life", "--images", "--yes", "--output", out)
    assert pruned.exit_code == 0, pruned.output
    assert "pruned 1 stale item(s) of life with 1 attempt(s)" in pruned.output
    status = status_json("life", out)
    assert status["stale"] == 0 and status["total"] == 2
    assert status["attempts_per_success"] == 1.0 and status["requests"]["sent"] == 3
    assert image_files(out, "life") == kept  # a refused item has no image
    assert "no stale items" in invoke("prune", "life", "--output", out).output
    assert (
        json.loads(invoke("plan", job, "--json", "--output", out).stdout)["stale"] == 0
    )


def test_prune_images_deletes_the_images_of_items_the_job_file_dropped(
    sim: SimServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    job = write_job(tmp_path, JOB)
    assert real_submit(job, sim, out).exit_code == 0
    (ramen,) = [r for r in manifest(out, "life") if "ramen" in r["prompt"]]
    job.write_text(job.read_text().replace(", 'a bowl of ramen'", ""))
    assert real_submit(job, sim, out).exit_code == 0
    assert (out / "life" / ramen["outputs"][0]).is_file()  # kept until pruned
    refused = invoke("prune", "life", "--images", "--output", out)
    assert refused.exit_code == 2 and "pass --yes" in refused.output
    pruned = invoke("prune", "life", "--images", "--yes", "--output", out)
    assert pruned.exit_code == 0, pruned.output
    assert "1 image file(s) deleted" in pruned.output
    assert not (out / "life" / ramen["outputs"][0]).exists()
    assert len(image_files(out, "life")) == 2
    # the file has the prompt again: a new item
    job.write_text(textwrap.dedent(JOB).lstrip())
    data = json.loads(invoke("plan", job, "--json", "--output", out).stdout)
    assert data["new"] == 1 and data["to_send"] == 1 and data["stale"] == 0


# -- who owns a job name ----------------------------------------------------------


def test_a_name_made_from_another_file_is_refused_unless_take_over(
    sim: SimServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = write_job(tmp_path, JOB, name="first.yaml")
    second = write_job(
        tmp_path, JOB.replace("a bowl of ramen", "a tram"), name="second.yaml"
    )
    assert real_submit(first, sim, out).exit_code == 0
    plan = invoke("plan", second, "--output", out)
    assert plan.exit_code == 0 and str(first) in plan.output
    refused = real_submit(second, sim, out)
    assert refused.exit_code == 2
    assert str(first) in refused.output and str(second) in refused.output
    assert "--take-over" in refused.output
    assert sim.stats()["requests"] == 3
    taken = real_submit(second, sim, out, "--take-over")
    assert taken.exit_code == 0, taken.output
    (listed,) = json.loads(invoke("list", "--json", "--output", out).stdout)
    assert listed["file"] == str(second)
    assert real_submit(first, sim, out).exit_code == 2  # now second's
    second.unlink()
    adopted = real_submit(first, sim, out)  # second is gone: adopted silently
    assert adopted.exit_code == 0, adopted.output
    assert "take-over" not in adopted.output
    (listed,) = json.loads(invoke("list", "--json", "--output", out).stdout)
    assert listed["file"] == str(first)


def test_simulated_answers_teach_the_estimates_nothing(tmp_path: Path) -> None:
    """SPEC 5: simulated usage counts toward no cost estimate; after a --simulate
    run, `plan` still estimates from the published figures."""
    job = write_job(tmp_path, JOB)
    out = tmp_path / "out"
    done = invoke("submit", job, "--simulate", "--output", out)
    assert done.exit_code == 0, done.output

    data = json.loads(invoke("plan", job, "--json", "--output", out).stdout)
    to_send = data["estimate"]["to_send"]
    assert to_send["requests"] == len(PROMPTS)
    assert to_send["recorded_answers"] == 0
