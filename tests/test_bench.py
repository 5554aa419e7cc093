"""A small run of the benchmark harness, so that it cannot rot: the figures it prints
are measured by `python -m benchmarks.bench`, never asserted here."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from benchmarks.harness import (
    REPO,
    SIM_RPM_OPTION,
    Figures,
    Sizes,
    Verdict,
    peer_available,
    render_verdicts,
    simulator_options,
)
from benchmarks.scenarios import (
    run_batch,
    run_gallery,
    run_inflight,
    run_memory,
    run_review,
    run_rpm,
    run_scale,
    run_throughput,
)
from benchmarks.scenarios.inflight import perfect_seconds
from benchmarks.scenarios.rpm import TARGET_RPM_REJECTED
from benchmarks.scenarios.scale_job import build_fixture, write_scale_job
from runner.plan import build_plan
from runner.spec import load_job

if TYPE_CHECKING:
    from pathlib import Path

    from runner.store import Store

TINY = Sizes(prompts=2, samples=4, concurrency=4, latency=0.05, scale_items=500)


def test_the_runner_side_of_the_throughput_run_sends_every_item(
    tmp_path: Path,
) -> None:
    section = run_throughput(TINY, tmp_path, peer=False)

    runner = section.data["runner"]
    assert runner["items"] == runner["images"] == 8, section.render()
    assert runner["errors"] == 0
    assert runner["rate"] > 0
    assert runner["server"]["max_in_flight"] <= 4
    assert section.data["peer"] is None
    assert [v.ok is not None for v in section.verdicts] == [True, False, True]
    assert "requests/s" in section.render()


@pytest.mark.skipif(not peer_available(), reason="google-genai is not installed")
def test_the_google_genai_script_writes_one_file_per_image(tmp_path: Path) -> None:
    section = run_throughput(TINY, tmp_path, peer=True)

    peer = section.data["peer"]
    assert peer["items"] == peer["images"] == 8, section.render()
    assert peer["errors"] == 0
    assert len(list((tmp_path / "throughput/peer/images").iterdir())) == 8


TINY_INFLIGHT = Sizes(
    inflight_prompts=2,
    inflight_samples=4,
    inflight_concurrency=4,
    inflight_latency=0.1,
    inflight_jitter=0.05,
    inflight_written_share=0.5,
)


def test_the_inflight_run_compares_each_contender_with_a_perfect_scheduler(
    tmp_path: Path,
) -> None:
    peer = peer_available()
    section = run_inflight(TINY_INFLIGHT, tmp_path, peer=peer)

    contenders = section.data["contenders"]
    names = ["runner", "genai, pool 4", "genai as written"] if peer else ["runner"]
    assert list(contenders) == names, section.render()
    for name, figures in contenders.items():
        assert figures["images"] == figures["items"], (name, section.render())
        # Every request's latency came back from the simulator for the replay.
        assert figures["latencies"] == figures["server"]["requests"]
        assert 0 < figures["rate"] < figures["perfect_rate"] * 1.05
    runner = contenders["runner"]
    assert runner["items"] == 8 and runner["server"]["max_in_flight"] <= 4
    assert runner["extra"]["loop_lag_ms"]["ticks"] > 0
    if peer:
        assert contenders["genai as written"]["items"] == 4
    assert len(section.verdicts) == 5
    assert not list(tmp_path.glob("inflight/**/images/*"))  # ~9 GB at full size


@pytest.mark.slow
@pytest.mark.timeout(120)  # nine processes: ~21 s alone, more on busy cores
def test_the_review_run_times_submit_with_and_without_its_gallery(
    tmp_path: Path,
) -> None:
    sizes = Sizes(
        concurrency=4,
        latency=0.05,
        review_prompts=2,
        review_samples=3,
        review_rounds=1,
        review_paced_prompts=2,
        review_paced_samples=2,
        review_paced_latency=0.2,
    )
    section = run_review(sizes, tmp_path, peer=False, sim_help=simulator_options())

    for images in ("small", "real-size", "real-size, API pace"):
        figures = section.data[images]
        runs = figures["runs"]
        assert list(runs) == ["runner", "--no-review"], section.render()
        (runner,), (plain,) = runs["runner"], runs["--no-review"]
        assert runner["images"] == plain["images"] == figures["items"]
        assert runner["index"] is not None and plain["index"] is None
        assert runner["index"] >= runner["last_image"]
        gallery = runner["gallery"]
        made = gallery["thumbnails_during_run"] + gallery["thumbnails_at_end"]
        assert made == figures["items"]
        assert figures["thumbnail_cpu_ms"] > 0
    assert section.data["real-size"]["image_bytes"] > 1_000_000  # a real 1K PNG
    judged = [True, False, True]  # the script is not run here
    assert [v.ok is not None for v in section.verdicts] == [
        *judged,
        False,
        False,
        False,
        *judged,
    ]


@pytest.mark.slow
def test_the_review_floor_runs_each_helper_beside_a_no_review_run(
    tmp_path: Path,
) -> None:
    figures = tmp_path / "floor.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.review_floor", "--prompts", "1"]
        + ["--samples", "3", "--rounds", "1", "--json", str(figures)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert "helper: s after the last image" in done.stdout, done.stdout
    runs = json.loads(figures.read_text("utf-8"))["runs"]
    assert [r["mode"] for r in runs] == ["none", "decode", "thumbnail"]
    assert "helper_cpu_ms" not in runs[0]
    assert all(r["helper_cpu_ms"] > 0 for r in runs[1:])
    assert all(r["last_image"] <= r["wall"] for r in runs)


def test_the_gallery_run_reports_the_page_in_chromium_unjudged_below_full_size(
    tmp_path: Path,
) -> None:
    section = run_gallery(Sizes(gallery_items=200), tmp_path)

    figures = section.data
    assert figures["items"] == 200 and figures["thumbnails_made"] > 0
    assert figures["bytes_per_item"] > 0
    text = section.render()
    assert "build cold:" in text, text
    marks = [v.ok for v in section.verdicts]
    if shutil.which("chromium"):
        assert "filter status" in text, text
        assert figures["browser"]["painted"] > 0
        # bytes, first paint, filters: not judged at 200 items; the page worked
        assert marks == [None, None, None, True], text
    else:
        assert marks == [None, None, None]


def test_a_perfect_scheduler_gives_each_request_the_first_free_slot() -> None:
    # Two slots: 3 and 1 start at once; 1 ends first and takes 2 (ends at 3);
    # then 3's slot and that one are both free at 3 for the last, 1: ends at 4.
    assert perfect_seconds([3, 1, 2, 1], 2) == 4
    assert perfect_seconds([5, 5, 5], 8) == 5
    assert perfect_seconds([1, 1, 1, 1], 1) == 4


@pytest.mark.slow
def test_the_scale_fixture_reads_back_through_runner_status(tmp_path: Path) -> None:
    section = run_scale(TINY, tmp_path)

    summary = section.render()
    assert "does not read back" not in summary, summary
    assert section.data["items"] == 500
    assert section.data["attempts"] == 1500
    assert section.data["done"] == 495
    assert section.data["resume_cli_first_request"] > 0, summary
    assert all(v.ok is None for v in section.verdicts)  # 500 items: not judged


def test_the_scale_job_has_the_asked_number_of_distinct_items(tmp_path: Path) -> None:
    plan = build_plan(load_job(write_scale_job(tmp_path, 2_000)))
    assert len(plan.items) == 2_000
    assert plan.duplicates == 0


def test_the_scale_fixture_is_a_99_percent_done_job_in_the_stores_records(
    tmp_path: Path, store: Store
) -> None:
    spec = load_job(write_scale_job(tmp_path, 300))
    plan = build_plan(spec)
    job = store.upsert_job(spec.name, str(spec.path), spec.model)
    store.sync_plan(job, plan.items)

    assert build_fixture(store, job) == (297, 900)
    status = store.status(job)
    assert status.counts["succeeded"] == 297
    assert status.counts["pending"] == 3
    assert (status.spend.requests, status.spend.images) == (900, 297)
    assert status.spend.tokens["total_tokens"] == 297 * 1312
    # Every 100th item in plan order is left, after three tries.
    left = store.pending_items(job)
    assert [w.key for w in left] == [plan.items[p].key for p in (99, 199, 299)]
    assert {(w.attempts, w.tries_used) for w in left} == {(3, 3)}
    first = store.manifest_rows(job)[0]
    name = f"p1_subject00_style000_1x1_noref_s1_{first['key'][:8]}.png"
    assert first["outputs"] == [f"images/{name}"]  # vars in the prompt's order
    assert (first["attempts"], first["finish_reason"]) == (3, "STOP")


def test_a_short_rpm_run_keeps_the_pace_the_job_file_sets(tmp_path: Path) -> None:
    if SIM_RPM_OPTION not in simulator_options():
        pytest.skip(f"the simulator has no {SIM_RPM_OPTION}")
    # 1200/min is one request every 50 ms: 40 items take about 2 s paced. Unpaced,
    # 4 in flight at 50 ms latency send them about three times as fast.
    sizes = Sizes(latency=0.05, rpm=1200, rpm_items=40, rpm_concurrency=4)
    section = run_rpm(sizes, tmp_path)

    assert section.data["rpm"] == 1200, section.render()
    assert 0.75 * 1200 <= section.data["achieved"] <= 1.1 * 1200, section.render()
    # The simulator counts its limit over a trailing minute, which a run this short
    # cannot reach; the full run (160 items at 120/min) is where 429s can show.
    assert section.data["rejected_share"] <= TARGET_RPM_REJECTED, section.render()
    assert [v.ok is not None for v in section.verdicts] == [True]


def test_the_runner_side_of_the_memory_run_gets_4k_size_answers(
    tmp_path: Path,
) -> None:
    sizes = Sizes(latency=0.05, memory_prompts=1, memory_samples=2)
    section = run_memory(sizes, tmp_path, peer=False)

    runner = section.data["runner"]
    assert runner["items"] == runner["images"] == 2, section.render()
    if section.data["padding"] == "image":
        assert runner["extra"]["image_file_bytes"] > 15_000_000
    assert [v.ok is not None for v in section.verdicts] == [True]


def test_the_batch_run_marks_each_phase_of_a_batch(
    tmp_path: Path,
) -> None:
    section = run_batch(Sizes(batch_small_items=10, batch_big_items=2), tmp_path)

    for name, items in (("small", 10), ("2k", 2)):
        runner = section.data[name]
        assert runner["items"] == runner["images"] == items, section.render()
        marks = runner["extra"]["batch_marks"]
        order = ["batch_run", "batch_built", "batch_created", "batch_ended"]
        walls = [marks[mark]["wall"] for mark in order]
        assert walls == sorted(walls)
        assert list(runner["server"]["batch"]["creates"].values()) == [1]
    assert [v.ok for v in section.verdicts] == [True, True]
    assert "ingest the results" in section.render()


def test_rpm_is_reported_as_not_measured_without_simulator_support(
    tmp_path: Path,
) -> None:
    section = run_rpm(TINY, tmp_path, sim_help="usage: simulate [--latency S]")
    assert "not measured" in section.render()
    assert [v.ok for v in section.verdicts] == [None]


def test_figures_and_verdicts_render_as_the_report_prints_them() -> None:
    figures = Figures(
        contender="runner",
        items=100,
        images=100,
        errors=0,
        imported={"wall": 0.3, "cpu": 0.25},
        first_request={"wall": 0.5, "cpu": 0.4},
        last_image={"wall": 2.5, "cpu": 0.6},
        end={"wall": 2.6, "cpu": 0.65},
        process_cpu=0.7,
        maxrss_kb=80 * 1024,
    )
    assert figures.rate == pytest.approx(50.0)
    assert figures.cpu_ms_per_item == pytest.approx(2.0)
    assert figures.process_cpu_ms_per_item == pytest.approx(7.0)
    assert figures.peak_rss_mb == pytest.approx(80.0)

    table = render_verdicts(
        [
            Verdict("throughput", "50.0/s", "40.0/s", ">= 47.5/s", True),
            Verdict("rpm", "not measured", "-", ">= 108/min", None, "no option"),
        ]
    )
    lines = table.splitlines()
    assert lines[0] == "targets"
    assert lines[2].split() == "throughput 50.0/s 40.0/s >= 47.5/s PASS".split()
    assert lines[3].endswith("n/a  (no option)")


def test_a_childs_peak_memory_is_its_own_not_its_parents() -> None:
    held = bytearray(256 * 1024 * 1024)
    held[::4096] = b"\1" * len(range(0, len(held), 4096))  # resident, page by page
    code = "from benchmarks.harness.measure import peak_rss_kb; print(peak_rss_kb())"
    child = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert int(child.stdout) < 128 * 1024  # an interpreter, not the 256 MB held here
    del held


def test_a_launched_commands_peak_memory_and_exit_code_are_its_own(
    tmp_path: Path,
) -> None:
    held = bytearray(256 * 1024 * 1024)
    held[::4096] = b"\1" * len(range(0, len(held), 4096))
    figures = tmp_path / "figures.json"
    launched = [sys.executable, "-m", "benchmarks.harness.launch", str(figures), "--"]
    command = [sys.executable, "-c", "import sys; sys.exit(3)"]
    done = subprocess.run([*launched, *command], cwd=REPO, check=False)
    del held
    assert done.returncode == 3
    measured = json.loads(figures.read_text("utf-8"))
    assert 0 < measured["maxrss_kb"] < 128 * 1024  # not the 256 MB held here
    assert measured["wall"] > 0 and measured["cpu"] > 0
