"""Disk space: `plan` says how many bytes a run may write, `submit` refuses a run
whose images would not fit, and a run stops sending while the answers in flight
still fit, so a full disk never costs a paid answer. Free space is patched (no disk
is filled); requests go over loopback to the simulated API."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from runner import outputs
from runner.store import Store
from tests.e2e import SECRET, invoke, submit_prompts, write_job

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from runner.simulate import SimServer

FAST = {"backoff_base": 0.01, "request_timeout": 5.0, "handle_signals": False}
IMAGE = outputs.image_bytes("1K")
PROMPTS = [f"a roomy picture {n}" for n in range(8)]


def disk_holding(
    images: int, monkeypatch: pytest.MonkeyPatch, *, then: int | None = None
) -> list[int]:
    """A disk with room for the runner's reserve and `images` more 1K images (after
    the first look, `then` images: another program wrote the rest), each image
    file in the job's images folder taking its estimated size; the free space each
    time the runner asked."""
    asked: list[int] = []

    def free_bytes(folder: Path) -> int:
        room = images if then is None or not asked else then
        used = sum(1 for _ in folder.glob(f"{outputs.IMAGES_DIR}/*.png")) * IMAGE
        asked.append(outputs.KEEP_FREE + room * IMAGE - used)
        return asked[-1]

    monkeypatch.setattr(outputs, "free_bytes", free_bytes)
    return asked


async def test_a_run_stops_sending_while_the_answers_in_flight_still_fit(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Room for every image when submitted, then for 5: the run reserves two images
    # per answer in flight.
    asked = disk_holding(len(PROMPTS), monkeypatch, then=5)
    report, attempts = await submit_prompts(
        tmp_path, sim.url, PROMPTS, "concurrency: 2\n", FAST, Store.attempt_rows
    )

    assert report.exit_code == 3
    stopped = report.result.stopped or ""
    assert str(tmp_path / "out" / "t") in stopped and "free space" in stopped
    sent = sim.stats()["images_sent"]
    assert 0 < sent < len(PROMPTS)
    # Every answer paid for was written and recorded: none lost to a full disk.
    assert [a["outcome"] for a in attempts] == ["success"] * sent
    assert report.status.counts["succeeded"] == sent
    assert report.status.counts["pending"] == len(PROMPTS) - sent
    assert min(asked) >= outputs.KEEP_FREE  # the reserve was never touched


async def test_free_space_is_measured_now_and_then_not_per_request(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = disk_holding(10_000, monkeypatch)
    prompts = [f"picture {n}" for n in range(30)]
    report, _ = await submit_prompts(
        tmp_path, sim.url, prompts, "concurrency: 4\n", FAST, Store.status
    )
    assert report.exit_code == 0 and sim.stats()["requests"] == 30
    # Once before the run (the submit's own check) and about once a second.
    assert 1 <= len(asked) <= 4


def test_submit_refuses_a_run_whose_images_would_not_fit(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk_holding(2, monkeypatch)
    listed = "\n".join(f"  - {p!r}" for p in PROMPTS[:3])
    job = write_job(tmp_path, f"name: big\nprompts:\n{listed}\n")
    out = tmp_path / "out"
    result = invoke(
        "submit", job, "--base-url", sim.url, "--output", out,
        env={"TOKAIFY_API_KEY": SECRET},
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert str(out / "big") in message
    assert "short of" in message and "free space" in message
    assert "Traceback" not in result.output
    assert sim.stats()["requests"] == 0


def test_plan_estimates_the_bytes_a_run_writes(tmp_path: Path) -> None:
    job = write_job(
        tmp_path,
        """
        name: sizes
        prompts: ["a fox", "a hen"]
        image_sizes: ["1K", "4K"]
        """,
    )
    result = invoke("plan", job, "--json", "--output", tmp_path / "out")
    assert result.exit_code == 0, result.output
    estimate = json.loads(result.stdout)["estimate"]["to_send"]
    assert estimate["bytes"] == 2 * (IMAGE + outputs.image_bytes("4K"))
    assert outputs.image_bytes("4K") == 16 * IMAGE  # by pixels: 4x each side
    text = invoke("plan", job, "--output", tmp_path / "out").output
    assert "MB of images" in text
