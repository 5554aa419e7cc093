"""The Batch API transport (SPEC 7): half price, crash-safe, never paid twice."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from runner import pricing
from runner.errors import JobSpecError
from runner.models import MODELS
from runner.spec import load_job
from runner.store import Store
from tests.e2e import invoke, status_json, write_job

if TYPE_CHECKING:
    from pathlib import Path

GRID = """\
name: grid
prompts: ["A lighthouse, {style}", "A fox, {style}"]
vars: {style: [ink, neon]}
image_sizes: ["1K"]
"""


# -- the job file and the plan ---------------------------------------------------


def test_transport_batch_is_read_from_the_job_file(tmp_path: Path) -> None:
    spec = load_job(write_job(tmp_path, GRID + "transport: batch\n"))
    assert spec.transport == "batch"
    assert load_job(write_job(tmp_path, GRID)).transport == "interactive"


def test_an_unknown_transport_names_the_line_and_the_choices(tmp_path: Path) -> None:
    with pytest.raises(JobSpecError) as caught:
        load_job(write_job(tmp_path, GRID + "transport: batched\n"))
    assert caught.value.line == 5
    assert "interactive, batch" in caught.value.message


def test_the_batch_price_is_half_the_standard_one_for_every_known_model() -> None:
    for model in MODELS:
        price, batch = pricing.price_for(model), pricing.batch_price_for(model)
        assert price is not None and batch is not None
        assert batch.input_per_million == price.input_per_million / 2
        assert batch.output_image_per_million == price.output_image_per_million / 2
        assert batch.output_text_per_million == price.output_text_per_million / 2
    # a job's own prices are standard ones: by batch, half of them
    override = {"output_image_per_million": 100.0}
    batch = pricing.batch_price_for("gemini-3.1-flash-image", override)
    assert batch is not None and batch.output_image_per_million == 50.0


def test_plan_with_batch_shows_both_prices(tmp_path: Path) -> None:
    job = write_job(tmp_path, GRID)
    out = tmp_path / "out"
    result = invoke("plan", job, "--batch", "--json", "--output", out)
    assert result.exit_code == 0, result.output
    estimate = json.loads(result.stdout)["estimate"]["to_send"]
    assert estimate["batch_cost_usd"] == pytest.approx(estimate["cost_usd"] / 2, 1e-3)
    text = invoke("plan", job, "--batch", "--output", out).stdout
    half = f"${estimate['batch_cost_usd']:,.2f} by batch"
    assert f"${estimate['cost_usd']:,.2f} ({half})" in text
    # without --batch, only the standard price; a job file's `transport: batch`
    # shows both unless --no-batch
    plain = json.loads(invoke("plan", job, "--json", "--output", out).stdout)
    assert "batch_cost_usd" not in plain["estimate"]["to_send"]
    batch_job = write_job(tmp_path, GRID + "transport: batch\n", name="b.yaml")
    both = json.loads(invoke("plan", batch_job, "--json", "--output", out).stdout)
    assert "batch_cost_usd" in both["estimate"]["to_send"]
    one = invoke("plan", batch_job, "--no-batch", "--json", "--output", out)
    assert "batch_cost_usd" not in json.loads(one.stdout)["estimate"]["to_send"]


# -- the store ---------------------------------------------------------------------


def test_status_counts_items_in_batch_and_lists_batches_as_last_seen(
    tmp_path: Path,
) -> None:
    """Offline: status reads the store only, and says what the API said last."""
    from runner.plan import build_plan

    out = tmp_path / "out"
    spec = load_job(write_job(tmp_path, GRID))
    store = Store.for_output(out)
    try:
        job = store.upsert_job("grid", str(spec.path), spec.model)
        store.sync_plan(job, build_plan(spec).items)
        work = store.pending_items(job)
        run = store.start_run(job, "submit")
        batch = store.record_batch(
            job, run, [w.id for w in work[:3]], model=spec.model, input_kind="inline"
        )
        store.update_batch(
            batch.id,
            remote_name="batches/abc",
            state="BATCH_STATE_RUNNING",
            requests=3,
            succeeded=1,
            failed=0,
            pending=2,
        )
    finally:
        store.close()
    data = status_json("grid", out)
    assert data["counts"]["in_batch"] == 3
    assert data["counts"]["pending"] == 1
    [shown] = data["batches"]
    assert shown["display_name"] == f"grid-batch-{batch.id}"
    assert shown["name"] == "batches/abc"
    assert shown["state"] == "BATCH_STATE_RUNNING"
    assert shown["live"] is True
    assert shown["stats"] == {"requests": 3, "succeeded": 1, "failed": 0, "pending": 2}
    assert shown["seen_at"] is not None
    text = invoke("status", "grid", "--output", out).stdout
    assert "in batches: 3 items wait for results in 1 live batch" in text
    assert f"grid-batch-{batch.id} running: 1 of 3 done" in text
