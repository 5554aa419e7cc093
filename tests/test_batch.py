"""The Batch API transport (SPEC 7): half price, crash-safe, never paid twice."""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import sqlite3
from contextlib import closing
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from PIL import Image

from runner import pricing, runs
from runner.client import Endpoint, Kind, build_body, make_http_client
from runner.client import batch as client_batch
from runner.client.blobs import BlobExtractor
from runner.client.call import SPOOL_FLUSH_BYTES
from runner.errors import JobSpecError
from runner.models import MODELS
from runner.plan import Request, build_plan
from runner.review import build_review
from runner.runs import execution
from runner.scheduler.batches import inline_matches
from runner.simulate import Fault, SimServer
from runner.spec import load_job
from runner.store import Store, WorkItem
from tests.e2e import (
    SECRET,
    Proc,
    invoke,
    manifest,
    spawn,
    status_json,
    write_job,
)
from tests.test_resume import wait_for

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator
    from pathlib import Path

    from click.testing import Result

    from runner.reports import RunReport
    from runner.store import BatchRow

GRID = """\
name: grid
prompts: ["A lighthouse, {style}", "A fox, {style}"]
vars: {style: [ink, neon]}
image_sizes: ["1K"]
generation: {temperature: 0.4}
"""


# -- the job file and the plan ---------------------------------------------------


def test_transport_batch_is_read_from_the_job_file(tmp_path: Path) -> None:
    spec = load_job(write_job(tmp_path, GRID + "transport: batch\n"))
    assert spec.transport == "batch"
    assert load_job(write_job(tmp_path, GRID)).transport == "interactive"


def test_an_unknown_transport_names_the_line_and_the_choices(tmp_path: Path) -> None:
    with pytest.raises(JobSpecError) as caught:
        load_job(write_job(tmp_path, GRID + "transport: batched\n"))
    assert caught.value.line == 6
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


def test_submit_by_batch_says_so_before_sending_with_the_batch_price_first(
    tmp_path: Path,
) -> None:
    job = write_job(tmp_path, GRID)
    out = tmp_path / "out"
    plan = json.loads(invoke("plan", job, "--batch", "--json", "--output", out).stdout)
    estimate = plan["estimate"]["to_send"]
    result = invoke("submit", job, "--simulate", "--batch", "--output", out)
    assert result.exit_code == 0, result.output
    first = result.stderr.splitlines()[0]
    assert first.endswith(
        f"simulating {estimate['requests']} by batch (est. "
        f"${estimate['batch_cost_usd']:,.2f} at the batch price, "
        f"${estimate['cost_usd']:,.2f} interactive if real; nothing is spent)"
    ), first
    again = invoke("submit", job, "--simulate", "--output", tmp_path / "two")
    assert " by batch" not in again.stderr.splitlines()[0]


# -- the store ---------------------------------------------------------------------


def test_status_counts_items_in_batch_and_lists_batches_as_last_seen(
    tmp_path: Path,
) -> None:
    """Offline: status reads the store only, and says what the API said last."""
    out = tmp_path / "out"
    batch = crash_before_create(tmp_path, items=3)
    store = Store.for_output(out)
    try:
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


# -- the wire (httpx.MockTransport through the production client) -------------------

ENDPOINT = Endpoint(base_url="https://api.example", api_key=SECRET)


def mock_client(
    handler: Callable[[httpx.Request], httpx.Response],
) -> httpx.AsyncClient:
    return make_http_client(concurrency=1, transport=httpx.MockTransport(handler))


def test_the_sdks_job_state_spelling_and_string_counts_are_read() -> None:
    info = client_batch.batch_info(
        {
            "name": "batches/x",
            "metadata": {
                "displayName": "grid-batch-1",
                "state": "JOB_STATE_RUNNING",
                "batchStats": {"requestCount": "3", "successfulRequestCount": "1"},
            },
        }
    )
    assert info.state == "BATCH_STATE_RUNNING" and not info.terminal
    # proto3 JSON leaves zero counts out
    assert info.stats == {"requests": 3, "succeeded": 1, "failed": 0, "pending": 0}


async def test_inline_results_without_echoed_keys_are_matched_by_position() -> None:
    image = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(2000)).decode()
    answer = {
        "candidates": [
            {
                "content": {
                    "parts": [{"inlineData": {"mimeType": "image/png", "data": image}}]
                },
                "finishReason": "STOP",
            }
        ]
    }
    done = {  # a bare GenerateContentBatch, its results in `output` only
        "name": "batches/x",
        "displayName": "grid-batch-1",
        "state": "BATCH_STATE_SUCCEEDED",
        "output": {"inlinedResponses": {"inlinedResponses": [
            {"response": answer}, {"error": {"code": 8, "message": "slow down"}},
        ]}},
    }  # fmt: skip

    async with mock_client(lambda r: httpx.Response(200, json=done)) as http:
        info = await client_batch.get_batch(http, ENDPOINT, "batches/x")
        a, b = (work_item(n, key) for n, key in enumerate(("ka", "kb")))
        matched = inline_matches(info.results, [a, b], {"ka": a, "kb": b})
        assert [(item.key, result.key) for item, result in matched] == [
            ("ka", None),
            ("kb", None),
        ]
        first = await client_batch.result_outcome(
            http, ENDPOINT, info.results[0], model="m"
        )
        second = await client_batch.result_outcome(
            http, ENDPOINT, info.results[1], model="m"
        )
    assert first.kind is Kind.SUCCESS and len(first.images) == 1
    assert first.images[0].data.startswith(b"\x89PNG")  # decoded while streaming
    assert (second.kind, second.http_status) == (Kind.TRANSIENT, 429)
    # an echoed key wins over the position; a result for no waiting item is dropped
    keyed = [
        client_batch.BatchResult("kb", b"{}", None),
        client_batch.BatchResult("kz", b"{}", None),
    ]
    assert [i.key for i, _ in inline_matches(keyed, [a, b], {"kb": b})] == ["kb"]


async def test_an_inline_batchs_images_go_to_disk_as_the_body_streams_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight 1 MB images inline: what spilled is written as it comes, never all
    of it held until the body ends."""
    images = [os.urandom(1_000_000) for _ in range(8)]
    parts = [{"inlineData": {"mimeType": "image/png", "data": base64.b64encode(
        b"\x89PNG\r\n\x1a\n" + data).decode()}} for data in images]  # fmt: skip
    done = {
        "name": "batches/x",
        "state": "BATCH_STATE_SUCCEEDED",
        "output": {"inlinedResponses": {"inlinedResponses": [
            {"response": {"candidates": [{"content": {"parts": [part]}}]}}
            for part in parts
        ]}},
    }  # fmt: skip
    body = json.dumps(done).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for at in range(0, len(body), 65_536):
            yield body[at : at + 65_536]

    held: list[int] = []
    feed = BlobExtractor.feed

    def watched(self: BlobExtractor, data: bytes) -> None:
        feed(self, data)
        held.append(self.unwritten)

    monkeypatch.setattr(BlobExtractor, "feed", watched)
    respond = lambda r: httpx.Response(200, content=chunks())  # noqa: E731
    async with mock_client(respond) as http:
        info = await client_batch.get_batch(
            http, ENDPOINT, "batches/x", spool_dir=tmp_path
        )
        outcomes = [
            await client_batch.result_outcome(http, ENDPOINT, r, model="m")
            for r in info.results
        ]
    spilled = [o.images[0].path for o in outcomes]
    assert all(p is not None for p in spilled)  # past RESULT_SPILL_BYTES: on disk
    assert [p.read_bytes()[8:] for p in spilled if p] == images
    assert max(held) < 2 * SPOOL_FLUSH_BYTES  # not the 8 MB of images


@pytest.mark.parametrize(
    ("error", "kind", "status"),
    [
        ({"code": 3, "message": "bad field"}, Kind.FATAL_ITEM, 400),
        ({"code": 13, "message": "Internal error encountered."}, Kind.TRANSIENT, 500),
        ({"code": 14, "message": "try later"}, Kind.TRANSIENT, 503),
        ({"code": 503, "message": "relay says HTTP"}, Kind.TRANSIENT, 503),
        ({"code": 16, "message": "who are you"}, Kind.FATAL_RUN, 401),
    ],
)
async def test_a_failed_line_is_classified_like_the_http_error_it_stands_for(
    error: dict[str, Any], kind: Kind, status: int
) -> None:
    result = client_batch.BatchResult("k", None, error)
    async with mock_client(lambda r: httpx.Response(500)) as http:
        outcome = await client_batch.result_outcome(http, ENDPOINT, result, model="m")
    assert (outcome.kind, outcome.http_status) == (kind, status)
    assert error["message"] in outcome.reason


async def test_the_probe_tells_no_batch_api_from_other_failures() -> None:
    relay = {
        "error": {
            "message": "Invalid URL (GET /v1beta/batches)",
            "type": "invalid_request_error",
        }
    }
    async with mock_client(lambda r: httpx.Response(404, json=relay)) as http:
        with pytest.raises(client_batch.NoBatchApi) as missing:
            await client_batch.probe(http, ENDPOINT)
    assert "has no Batch API" in missing.value.outcome.reason
    async with mock_client(lambda r: httpx.Response(401, json={})) as http:
        with pytest.raises(client_batch.BatchCallFailed) as refused:
            await client_batch.probe(http, ENDPOINT)
    assert not isinstance(refused.value, client_batch.NoBatchApi)
    assert refused.value.outcome.kind is Kind.FATAL_RUN
    assert SECRET not in refused.value.outcome.reason


async def test_the_upload_follows_the_resumable_protocol_chunk_by_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_batch, "UPLOAD_CHUNK_BYTES", 10)
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"x" * 25)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.headers.get("x-goog-upload-command") == "start":
            url = "https://upstream.example/upload/v1beta/files?upload_id=u1"
            return httpx.Response(200, headers={"x-goog-upload-url": url})
        final = "finalize" in request.headers["x-goog-upload-command"]
        status = "final" if final else "active"
        body = {"file": {"name": "files/f1"}} if final else {}
        return httpx.Response(200, json=body, headers={"x-goog-upload-status": status})

    async with mock_client(handler) as http:
        name = await client_batch.upload_file(http, ENDPOINT, path, "grid-batch-1")

    assert name == "files/f1"
    start, *chunks = seen
    assert start.url == "https://api.example/upload/v1beta/files"
    assert start.headers["x-goog-upload-protocol"] == "resumable"
    assert start.headers["x-goog-upload-header-content-length"] == "25"
    # the upload URL on the base URL's host, as google-genai rewrites it
    assert {str(c.url.host) for c in chunks} == {"api.example"}
    assert [c.headers["x-goog-upload-offset"] for c in chunks] == ["0", "10", "20"]
    assert [c.headers["x-goog-upload-command"] for c in chunks] == [
        "upload", "upload", "upload, finalize",
    ]  # fmt: skip
    assert [len(c.content) for c in chunks] == [10, 10, 5]
    assert all(c.headers["authorization"] == f"Bearer {SECRET}" for c in chunks)


def test_an_inline_request_is_the_jsonl_line_with_its_key_as_metadata() -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "a cat"}]}],
            "generationConfig": {"responseModalities": ["IMAGE"]}}  # fmt: skip
    line = client_batch.request_line("k1", body)
    assert json.loads(line) == {"key": "k1", "request": body}
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    inline = json.loads(client_batch.inline_request(line))
    assert inline == {"metadata": {"key": "k1"}, "request": body}


# -- over loopback, against the simulated Batch API ----------------------------------

# Polls every few milliseconds: the simulated batches end in a twentieth of a second.
FAST = {"batch_poll": 0.01, "batch_poll_max": 0.02, "handle_signals": False}
CLI_ENV = {"TOKAIFY_API_KEY": SECRET, "RUNNER_BATCH_POLL": "0.01"}


@pytest.fixture(scope="module")
def batch_server() -> Iterator[SimServer]:
    with SimServer(image_scale=0.0625, batch_pending=0.0, batch_running=0.05) as s:
        yield s


@pytest.fixture
def bsim(batch_server: SimServer) -> Iterator[SimServer]:
    """The module's server, reset: a test may change its batches' turnaround."""
    batch_server.reset()
    batch_server.batch_support = True
    batch_server.batch_running = 0.05
    yield batch_server


async def send(
    tmp_path: Path,
    url: str,
    body: str = GRID,
    *,
    batch: bool | None = True,
    detach: bool = False,
    out: str = "out",
    **overrides: Any,
) -> RunReport:
    """Submit the job file `body` through the runs layer with the key SECRET."""
    job = write_job(tmp_path, body)
    workspace = runs.Workspace(tmp_path / out)
    store = workspace.open_store()
    try:
        return await execution.submit_spec(
            load_job(job),
            workspace=workspace,
            store=store,
            endpoint=Endpoint(base_url=url, api_key=SECRET),
            send=runs.SendOptions(batch=batch, detach=detach, review=False),
            overrides={**FAST, **overrides},
        )
    finally:
        store.close()


def creates(sim: SimServer) -> dict[str, int]:
    """Batches created at the server, per display name."""
    return sim.stats()["batch"]["creates"]


def attempts(out: Path, job: str = "grid") -> list[dict[str, Any]]:
    store = Store.for_output(out)
    try:
        row = store.get_job(job)
        assert row is not None
        return store.attempt_rows(row)
    finally:
        store.close()


async def test_a_grid_by_batch_ends_as_it_does_interactively(
    bsim: SimServer, tmp_path: Path
) -> None:
    interactive = await send(tmp_path, bsim.url, batch=False, out="one")
    by_batch = await send(tmp_path, bsim.url, out="two")

    assert interactive.exit_code == by_batch.exit_code == 0
    assert manifest(tmp_path / "one", "grid") == manifest(tmp_path / "two", "grid")
    for row in manifest(tmp_path / "two", "grid"):
        for image in row["outputs"]:  # the same file names, the same pictures
            with (
                Image.open(tmp_path / "one" / "grid" / image) as one,
                Image.open(tmp_path / "two" / "grid" / image) as two,
            ):
                assert (two.format, two.size) == (one.format, one.size)
    assert list(creates(bsim).values()) == [1]  # one batch for the four items
    stats = bsim.stats()
    assert stats["batch"]["lines"] == 4
    # each batch line held the very request the interactive run sent, settings in
    # its generationConfig (the JSONL pitfall of SPEC 7: the same request)
    assert len(stats["bodies"]) == 4
    assert {body["received"] for body in stats["bodies"].values()} == {2}
    assert {a["transport"] for a in attempts(tmp_path / "two")} == {"batch"}
    assert {a["transport"] for a in attempts(tmp_path / "one")} == {"interactive"}
    # the gallery too: the same page and data, thumbnails and contact sheets
    first, second = (gallery(tmp_path / out) for out in ("one", "two"))
    assert first == second
    assert first["gallery-data.js"] and first["thumbs"] and first["contact"]


def gallery(out: Path) -> dict[str, Any]:
    """A job's gallery as `runner review` builds it: its page and data, and the
    names of its thumbnails and contact sheets (whose pixels are the images')."""
    store = Store.for_output(out)
    try:
        job = store.get_job("grid")
        assert job is not None
        build_review(store, job, out / "grid")
    finally:
        store.close()
    folder = out / "grid"
    return {
        "index.html": (folder / "index.html").read_text("utf-8"),
        "gallery-data.js": (folder / "gallery-data.js").read_text("utf-8"),
        "thumbs": sorted(p.name for p in (folder / "thumbs").iterdir()),
        "contact": sorted(p.name for p in (folder / "contact").iterdir()),
    }


async def test_usage_and_cost_by_batch_are_the_servers_at_half_price(
    bsim: SimServer, tmp_path: Path
) -> None:
    report = await send(tmp_path, bsim.url)

    data = report.status.as_dict()
    served = bsim.stats()["batch"]["usage"]  # the lines the server answered
    assert served["totalTokenCount"] > 0
    assert data["usage"] == served
    assert data["batch_requests"] == data["requests"]["sent"] == 4
    price = pricing.batch_price_for("gemini-3.1-flash-image-preview")
    standard = pricing.price_for("gemini-3.1-flash-image-preview")
    assert price is not None and standard is not None
    # the server's usage at the batch price, half the standard one
    at_batch_price = pricing.usage_cost(served, price)
    assert at_batch_price == pytest.approx(pricing.usage_cost(served, standard) / 2)
    assert data["cost"]["billed_usd"] == pytest.approx(at_batch_price, abs=1e-6)
    assert data["cost"]["total_usd"] == pytest.approx(at_batch_price, abs=1e-6)
    # and each attempt's, as the store recorded it
    billed = sum(
        pricing.usage_cost(json.loads(a["usage_json"]), price)
        for a in attempts(tmp_path / "out")
    )
    assert billed == pytest.approx(at_batch_price, abs=1e-9)


async def test_a_batch_too_big_to_send_inline_goes_as_an_uploaded_file(
    bsim: SimServer, tmp_path: Path
) -> None:
    report = await send(tmp_path, bsim.url, batch_inline_bytes=0)

    assert report.exit_code == 0
    stats = bsim.stats()["batch"]
    assert stats["uploads"] == 1 and stats["downloads"] == 1
    [batch] = stats["batches"].values()
    assert batch["source"] == "file" and batch["succeeded"] == 4
    shown = report.status.as_dict()["batches"][0]
    assert shown["input"] == "file"
    # the local input file is gone once the batch exists, the uploaded one once
    # its results are stored
    assert not list((tmp_path / "out" / "grid" / "batches").iterdir())
    assert stats["deletes"] == 1 and shown["input_file"] is None


async def test_an_uploaded_input_is_deleted_however_its_batch_ends(
    bsim: SimServer, tmp_path: Path
) -> None:
    """An expired batch's input, and the input of the batch its items went in
    next: each deleted at the API once its batch is closed."""
    bsim.add_fault(Fault("batch-expired", match="grid-batch", times=1))

    report = await send(tmp_path, bsim.url, batch_inline_bytes=0)

    assert report.exit_code == 0
    stats = bsim.stats()["batch"]
    assert stats["uploads"] == stats["deletes"] == 2
    assert [b["input_file"] for b in report.status.as_dict()["batches"]] == [
        None,
        None,
    ]


async def test_an_input_that_could_not_be_deleted_is_a_note_not_a_failure(
    bsim: SimServer, tmp_path: Path
) -> None:
    bsim.add_fault(Fault("file-delete-error", match="grid-batch"))

    report = await send(tmp_path, bsim.url, batch_inline_bytes=0)

    assert report.exit_code == 0
    assert report.status.counts["succeeded"] == 4
    assert bsim.stats()["batch"]["deletes"] == 0
    [shown] = status_json("grid", tmp_path / "out")["batches"]
    assert shown["input_file"].startswith("files/")  # the store keeps its name
    text = invoke("status", "grid", "--output", tmp_path / "out").stdout
    assert (
        f"{shown['display_name']}: its uploaded input {shown['input_file']} could "
        "not be deleted; the API deletes it 48 hours after its upload"
    ) in " ".join(text.split())


async def test_items_past_the_count_limit_go_in_further_batches(
    bsim: SimServer, tmp_path: Path
) -> None:
    report = await send(tmp_path, bsim.url, batch_max_items=3)

    assert report.exit_code == 0
    assert sorted(b["requests"] for b in bsim.stats()["batch"]["batches"].values()) == [
        1,
        3,
    ]
    assert sorted(creates(bsim).values()) == [1, 1]


async def test_an_expired_batch_is_sent_again_in_a_new_batch(
    bsim: SimServer, tmp_path: Path
) -> None:
    bsim.add_fault(Fault("batch-expired", match="grid-batch", times=1))

    report = await send(tmp_path, bsim.url)

    assert report.exit_code == 0
    assert report.status.counts["succeeded"] == 4
    states = sorted(b["state"] for b in bsim.stats()["batch"]["batches"].values())
    assert states == ["BATCH_STATE_EXPIRED", "BATCH_STATE_SUCCEEDED"]
    assert sorted(creates(bsim).values()) == [1, 1]  # two batches, each once
    expired = [a for a in attempts(tmp_path / "out") if a["outcome"] == "transient"]
    assert len(expired) == 4
    assert all("its batch expired" in a["reason"] for a in expired)
    # not billed, and not a request sent
    assert report.status.as_dict()["requests"]["sent"] == 4


async def test_failed_lines_are_classified_by_reason_and_retried_in_a_new_batch(
    bsim: SimServer, tmp_path: Path
) -> None:
    bsim.add_fault(Fault("line-error", match="lighthouse, ink", times=1))
    bsim.add_fault(Fault("blocked-prompt", match="fox, neon"))
    bsim.add_fault(Fault("400", match="fox, ink"))

    report = await send(tmp_path, bsim.url)

    rows = {row["prompt"]: row for row in manifest(tmp_path / "out", "grid")}
    assert rows["A lighthouse, ink"]["status"] == "succeeded"
    assert rows["A lighthouse, ink"]["attempts"] == 2
    assert rows["A fox, neon"]["status"] == "blocked"
    assert rows["A fox, ink"]["status"] == "failed"
    assert rows["A fox, ink"]["error"].startswith("400 INVALID_ARGUMENT")
    failures = {f["status"]: f["reason"] for f in report.status.as_dict()["failures"]}
    assert failures["blocked"].startswith("prompt blocked")
    first = [a for a in attempts(tmp_path / "out") if a["number"] == 1]
    line_error = next(a for a in first if a["outcome"] == "transient")
    assert line_error["http_status"] == 500
    assert line_error["reason"].startswith("500 INTERNAL")
    assert report.exit_code == 1


async def test_a_lost_create_answer_is_found_by_its_name_not_created_again(
    bsim: SimServer, tmp_path: Path
) -> None:
    bsim.add_fault(Fault("batch-create-lost", times=1))

    report = await send(tmp_path, bsim.url)

    assert report.exit_code == 0
    assert list(creates(bsim).values()) == [1]


async def test_a_batch_recorded_but_never_created_is_let_go_then_sent(
    bsim: SimServer, tmp_path: Path
) -> None:
    """The runner died after recording the batch and before its create reached
    the API: the name is not listed, so its items are batched again."""
    crash_before_create(tmp_path)

    report = await send(tmp_path, bsim.url)

    assert report.exit_code == 0
    data = report.status.as_dict()
    assert [b["error"] for b in data["batches"]][-1].startswith("not created")
    assert list(creates(bsim).values()) == [1]


async def test_a_batch_created_whose_answer_never_came_is_found_and_collected(
    bsim: SimServer, tmp_path: Path
) -> None:
    """The runner died between the create and its answer: the batch exists at
    the API under the recorded name, and is collected, never made twice."""
    batch = crash_before_create(tmp_path)
    async with httpx.AsyncClient() as http:
        await client_batch.create_batch(
            http,
            Endpoint(base_url=bsim.url, api_key=SECRET),
            "gemini-3.1-flash-image-preview",
            batch.display_name,
            requests_file=batch_input(tmp_path, batch.id),
        )

    report = await send(tmp_path, bsim.url)

    assert report.exit_code == 0
    assert creates(bsim) == {batch.display_name: 1}
    assert report.status.counts["succeeded"] == 4


async def test_detach_returns_once_the_batch_exists_and_a_later_submit_collects(
    bsim: SimServer, tmp_path: Path
) -> None:
    bsim.batch_running = 0.3
    detached = await send(tmp_path, bsim.url, detach=True)
    assert detached.exit_code == 0
    assert detached.result.detached and detached.result.batches_left == 1
    assert detached.status.counts["in_batch"] == 4
    bsim.wait_until(
        lambda s: all(
            b["state"] == "BATCH_STATE_SUCCEEDED"
            for b in s["batch"]["batches"].values()
        )
    )

    later = await send(tmp_path, bsim.url, batch=None)  # the job file says nothing

    assert later.exit_code == 0
    assert later.status.counts["succeeded"] == 4
    assert later.result.progress.succeeded == 4  # what this submit collected
    assert later.result.batches_left == 0
    assert bsim.stats()["requests"] == 0  # no generateContent call: all by batch
    assert list(creates(bsim).values()) == [1]


async def test_the_budget_caps_what_goes_in_a_batch(
    bsim: SimServer, tmp_path: Path
) -> None:
    report = await send(tmp_path, bsim.url, GRID + "budget: {max_requests: 3}\n")

    assert report.result.budget_stop is not None
    assert report.status.counts == {
        **report.status.counts,
        "succeeded": 3,
        "pending": 1,
    }
    assert bsim.stats()["batch"]["lines"] == 3


async def test_items_in_live_batches_count_against_the_caps_of_an_interactive_run(
    bsim: SimServer, tmp_path: Path
) -> None:
    """Four items wait in a detached batch; with max_requests 5, a --no-batch
    submit of the job (now six items) may send one request, not two."""
    capped = GRID + "budget: {max_requests: 5}\n"
    bsim.batch_running = 30.0
    await send(tmp_path, bsim.url, capped, detach=True)
    more = capped.replace('"A fox, {style}"]', '"A fox, {style}", "A owl, {style}"]')

    report = await send(tmp_path, bsim.url, more, batch=False)

    assert bsim.stats()["requests"] == 1
    assert report.result.budget_stop is not None
    counts = report.status.counts
    assert (counts["in_batch"], counts["succeeded"], counts["pending"]) == (4, 1, 1)


def test_an_endpoint_without_a_batch_api_is_exit_2_with_nothing_sent(
    bsim: SimServer, tmp_path: Path
) -> None:
    bsim.batch_support = False
    job = write_job(tmp_path, GRID)

    result = invoke(
        "submit", job, "--batch", "--base-url", bsim.url, "--output", tmp_path / "o",
        env={"TOKAIFY_API_KEY": SECRET},
    )  # fmt: skip

    assert result.exit_code == 2, result.output
    assert "has no Batch API" in result.stderr
    assert "Traceback" not in result.output
    stats = bsim.stats()
    assert stats["requests"] == 0 and stats["batch"]["creates"] == {}
    assert status_json("grid", tmp_path / "o")["counts"]["pending"] == 4


def test_simulate_detach_is_refused_before_anything_runs(tmp_path: Path) -> None:
    job = write_job(tmp_path, GRID)
    result = invoke("submit", job, "--batch", "--detach", "--simulate")
    assert result.exit_code == 2
    assert "--simulate --detach" in result.stderr
    assert invoke("submit", job, "--detach", "--simulate").exit_code == 2


def test_cancel_stops_a_live_batch_and_its_items_go_back_to_pending(
    bsim: SimServer, tmp_path: Path
) -> None:
    bsim.batch_running = 30.0
    out, first = submit_detached(tmp_path, bsim)
    assert "returned once they existed: 1 batch goes on" in first.stderr

    cancelled = cancel(bsim, out)

    assert cancelled.exit_code == 0, cancelled.output
    data = status_json("grid", out)
    assert data["counts"]["pending"] == 4 and data["counts"]["in_batch"] == 0
    assert data["batches"][0]["state"] == "BATCH_STATE_CANCELLED"
    assert not data["batches"][0]["live"]
    [batch] = bsim.stats()["batch"]["batches"].values()
    assert batch["state"] == "BATCH_STATE_CANCELLED"


def test_cancel_forgets_a_batch_the_endpoint_does_not_know(
    bsim: SimServer, tmp_path: Path
) -> None:
    """Deleted at the API, or made through another base URL: cancelling it
    closes it here, its items back to pending, rather than stopping on a 404."""
    batch = crash_before_create(tmp_path)
    store = Store.for_output(tmp_path / "out")
    try:
        store.update_batch(batch.id, remote_name="batches/gone")
    finally:
        store.close()

    result = cancel(bsim, tmp_path / "out")

    assert result.exit_code == 0, result.output
    data = status_json("grid", tmp_path / "out")
    assert data["counts"]["pending"] == 4 and data["counts"]["in_batch"] == 0
    [shown] = data["batches"]
    assert not shown["live"]
    assert shown["error"] == f"not found at {bsim.url} when cancelled; forgotten"


# -- rm and retry with batches ------------------------------------------------------


def test_rm_refuses_a_job_with_live_batches_until_they_are_cancelled(
    bsim: SimServer, tmp_path: Path
) -> None:
    bsim.batch_running = 30.0
    out, _ = submit_detached(tmp_path, bsim)

    refused = invoke("rm", "grid", "--yes", "--output", out)

    assert refused.exit_code == 2
    assert " ".join(refused.stderr.split()) == (
        "error: job 'grid' has 1 live batch at the API (4 item(s) waiting for "
        "results), which would go on, billed and never collected; `runner "
        "cancel grid` cancels it (what finished is collected), or `runner "
        "submit` collects it once done; then remove the job"
    )
    assert status_json("grid", out)["counts"]["in_batch"] == 4  # untouched
    as_json = invoke("rm", "grid", "--yes", "--json", "--output", out)
    assert as_json.exit_code == 2
    assert json.loads(as_json.stdout)["error"]["type"] == "LiveBatchesError"
    assert cancel(bsim, out).exit_code == 0

    removed = invoke("rm", "grid", "--yes", "--output", out)

    assert removed.exit_code == 0, removed.output
    assert "removed job grid: 4 item(s)" in removed.stdout
    assert list(creates(bsim).values()) == [1]


def test_prune_keeps_stale_items_waiting_in_a_live_batch_until_it_is_collected(
    bsim: SimServer, tmp_path: Path
) -> None:
    """Their answers are paid for and recorded when the batch is collected, which
    needs their items and attempts: pruning them would lose what was paid."""
    bsim.batch_running = 0.3
    out, _ = submit_detached(tmp_path, bsim)
    # The lighthouse leaves the job file while its two items wait in the batch.
    job_file = write_job(tmp_path, GRID.replace('"A lighthouse, {style}", ', ""))
    store = Store.for_output(out)
    try:
        job = store.get_job("grid")
        assert job is not None
        store.sync_plan(job, build_plan(load_job(job_file)).items)
        assert store.stale_count(job) == 2
    finally:
        store.close()

    kept = invoke("prune", "grid", "--yes", "--output", out)

    assert kept.exit_code == 0, kept.output
    assert " ".join(kept.stdout.split()) == (
        "kept 2 stale item(s) of grid: waiting in a live batch, paid for (`runner "
        "submit` collects the results, `runner cancel grid` stops the batch; prune "
        "takes them after)"
    )
    as_json = invoke("prune", "grid", "--yes", "--json", "--output", out)
    assert json.loads(as_json.stdout) == {
        **json.loads(as_json.stdout),
        "items": 0,
        "waiting": 2,
    }
    store = Store.for_output(out)
    try:
        job = store.get_job("grid")
        assert job is not None
        asked = store.prune_stale(job)  # the store keeps them too, asked directly
    finally:
        store.close()
    assert (asked.items, asked.waiting) == (0, 2)
    bsim.wait_until(
        lambda s: all(
            b["state"] == "BATCH_STATE_SUCCEEDED"
            for b in s["batch"]["batches"].values()
        )
    )
    collected = resubmit(job_file, bsim, out)
    assert collected.exit_code == 0, collected.output
    assert attempts(out)[-1]["outcome"] == "success"
    assert len([a for a in attempts(out) if a["outcome"] == "success"]) == 4

    pruned = invoke("prune", "grid", "--yes", "--output", out)

    assert pruned.exit_code == 0, pruned.output
    assert pruned.stdout.startswith("pruned 2 stale item(s) of grid"), pruned.stdout
    assert list(creates(bsim).values()) == [1]


def test_a_batch_left_by_a_simulate_run_does_not_block_rm(
    tmp_path: Path,
) -> None:
    """Its simulated API ended with its command: nothing goes on to be billed."""
    crash_before_create(tmp_path, simulated=True)

    removed = invoke("rm", "grid", "--yes", "--output", tmp_path / "out")

    assert removed.exit_code == 0, removed.output


def test_retry_sends_by_batch_when_the_job_file_says_transport_batch(
    bsim: SimServer, tmp_path: Path
) -> None:
    job = write_job(tmp_path, GRID + "transport: batch\n")
    out = tmp_path / "o"
    bsim.add_fault(Fault("400", match="fox, ink", times=2))
    where = ("--base-url", bsim.url, "--output", out, "--no-review")
    first = invoke("submit", job, *where, env=CLI_ENV)
    assert first.exit_code == 1, first.output
    assert f"runner retry grid --output {out} --base-url {bsim.url}\n" in (
        first.stderr
    )  # the job's transport: no flag needed

    again = invoke("retry", "grid", *where, env=CLI_ENV)

    assert again.exit_code == 1, again.output  # the fault's second time
    assert sorted(creates(bsim).values()) == [1, 1]  # a batch of its own
    assert bsim.stats()["requests"] == 0  # no generateContent call
    [(two, sent)] = [
        (b["requests"], b["display_name"])
        for b in bsim.stats()["batch"]["batches"].values()
        if b["display_name"] == "grid-batch-2"
    ]
    assert two == 1 and sent == "grid-batch-2"

    interactive = invoke("retry", "grid", "--no-batch", *where, env=CLI_ENV)

    assert interactive.exit_code == 0, interactive.output
    assert bsim.stats()["requests"] == 1
    rows = {row["prompt"]: row for row in manifest(out, "grid")}
    assert rows["A fox, ink"]["status"] == "succeeded"
    fox = [a for a in attempts(out) if a["key"] == rows["A fox, ink"]["key"]]
    assert [a["transport"] for a in fox] == ["batch", "batch", "interactive"]


def test_retry_with_batch_sends_an_interactive_jobs_failures_by_batch(
    bsim: SimServer, tmp_path: Path
) -> None:
    job = write_job(tmp_path, GRID)
    out = tmp_path / "o"
    bsim.add_fault(Fault("400", match="fox, ink", times=1))
    where = ("--base-url", bsim.url, "--output", out, "--no-review")
    first = invoke("submit", job, "--batch", *where, env=CLI_ENV)
    assert first.exit_code == 1, first.output
    suggested = f"runner retry grid --output {out} --base-url {bsim.url} --batch"
    assert suggested in first.stderr  # as the submit was told
    assert invoke("retry", "grid", "--detach", "--simulate").exit_code == 2

    retried = invoke("retry", "grid", "--batch", *where, env=CLI_ENV)

    assert retried.exit_code == 0, retried.output
    assert sorted(creates(bsim).values()) == [1, 1]
    assert bsim.stats()["requests"] == 0
    assert bsim.stats()["batch"]["lines"] == 5
    assert status_json("grid", out)["counts"]["succeeded"] == 4


# -- a runner killed or interrupted mid-batch --------------------------------------

KILL_ENV = {"TOKAIFY_API_KEY": SECRET, "RUNNER_BATCH_POLL": "0.02"}


@pytest.mark.slow
def test_a_runner_killed_between_create_and_its_answer_makes_no_second_batch(
    tmp_path: Path,
) -> None:
    """The API made the batch; its answer never reached the runner, killed while
    waiting for it. The next submit finds the batch by its recorded name and
    collects it."""
    job = write_job(tmp_path, GRID)
    out = tmp_path / "o"
    with SimServer(image_scale=0.0625, batch_pending=0.0, batch_running=0.1) as sim:
        sim.add_fault(Fault("batch-create-hang", times=1))
        proc = submit_in_a_child(job, sim, out)
        sim.wait_until(lambda s: bool(s["batch"]["creates"]), timeout=60)
        assert live_names(out) == {""}  # recorded before the create, never named
        kill(proc)
        assert status_json("grid", out)["counts"]["in_batch"] == 4

        result = resubmit(job, sim, out, "--batch")

        assert result.exit_code == 0, result.output
        stats = sim.stats()
        assert stats["batch"]["creates"] == {"grid-batch-1": 1}
        assert stats["batch"]["lines"] == 4 and stats["requests"] == 0
    assert status_json("grid", out)["counts"]["succeeded"] == 4
    assert [a["number"] for a in attempts(out)] == [1, 1, 1, 1]


@pytest.mark.slow
def test_a_runner_killed_while_polling_is_resumed_without_a_second_batch(
    tmp_path: Path,
) -> None:
    job = write_job(tmp_path, GRID)
    out = tmp_path / "o"
    with SimServer(image_scale=0.0625, batch_pending=0.2, batch_running=1.0) as sim:
        proc = submit_in_a_child(job, sim, out)
        sim.wait_until(lambda s: bool(s["batch"]["creates"]))
        wait_for(lambda: live_names(out) == {"batches/"})  # its answer recorded
        kill(proc)
        assert status_json("grid", out)["counts"]["in_batch"] == 4

        result = resubmit(job, sim, out, "--batch")

        assert result.exit_code == 0, result.output
        assert list(sim.stats()["batch"]["creates"].values()) == [1]
        assert sim.stats()["batch"]["lines"] == 4
    assert status_json("grid", out)["counts"]["succeeded"] == 4
    assert [a["number"] for a in attempts(out)] == [1, 1, 1, 1]


@pytest.mark.slow
def test_a_runner_killed_while_downloading_results_records_each_once(
    tmp_path: Path,
) -> None:
    """A batch too big to send inline (a large reference image in every request),
    its results a file of large answers: the kill comes once the first image is
    written, while the file still streams in. The next submit reads the file again
    and records only the items not recorded yet; nothing is created or paid twice."""
    (tmp_path / "refs").mkdir()
    noise = Image.frombytes(
        "RGB", (640, 640), random.Random(7).randbytes(640 * 640 * 3)
    )
    noise.save(tmp_path / "refs" / "noise.png")
    body = GRID.replace('["A lighthouse, {style}", "A fox, {style}"]', PROMPTS)
    job = write_job(tmp_path, body + "references: [[refs/noise.png]]\n")
    out = tmp_path / "o"
    images = out / "grid" / "images"
    with SimServer(
        image_scale=0.0625, batch_pending=0.0, batch_running=0.1,
        image_pad_bytes=2_000_000,
    ) as sim:  # fmt: skip
        proc = submit_in_a_child(job, sim, out)
        wait_for(lambda: images.is_dir() and any(images.glob("*.png")))
        kill(proc)
        assert sim.stats()["batch"]["uploads"] == 1  # a file batch
        assert status_json("grid", out)["counts"]["in_batch"] > 0

        result = resubmit(job, sim, out)  # the job file says nothing: collects

        assert result.exit_code == 0, result.output
        stats = sim.stats()
        assert list(stats["batch"]["creates"].values()) == [1]
        assert stats["requests"] == 0  # nothing sent again, by batch or not
    assert status_json("grid", out)["counts"]["succeeded"] == 20
    assert [a["number"] for a in attempts(out)] == [1] * 20  # each recorded once
    assert not list(images.glob(".*.tmp"))


@pytest.mark.slow
def test_ctrl_c_stops_waiting_not_the_batch(tmp_path: Path) -> None:
    job = write_job(tmp_path, GRID)
    out = tmp_path / "o"
    with SimServer(image_scale=0.0625, batch_pending=0.2, batch_running=1.0) as sim:
        proc = submit_in_a_child(job, sim, out)
        wait_for(lambda: live_names(out) == {"batches/"})
        proc.popen.send_signal(signal.SIGINT)
        code, _, err = proc.finish()

        assert code == 130, err
        assert "stopped waiting: 1 batch goes on at the API" in err
        assert "`runner submit` collects them" in err
        assert "Traceback" not in err
        assert status_json("grid", out)["counts"]["in_batch"] == 4
        [batch] = sim.stats()["batch"]["batches"].values()
        assert batch["state"] != "BATCH_STATE_CANCELLED"


# -- helpers ------------------------------------------------------------------------


def crash_before_create(
    tmp_path: Path, items: int = 4, *, simulated: bool = False
) -> BatchRow:
    """The store as a runner killed right after recording a batch leaves it: the
    plan stored, the batch recorded with its (first `items`) items in it, no
    remote name (`simulated`: made by a --simulate run)."""
    from runner.plan import build_plan

    spec = load_job(write_job(tmp_path, GRID))
    store = runs.Workspace(tmp_path / "out").open_store()
    try:
        job = store.upsert_job("grid", str(spec.path), spec.model)
        store.sync_plan(job, build_plan(spec).items)
        work = store.pending_items(job)[:items]
        run = store.start_run(job, "submit", simulated)
        batch = store.record_batch(
            job,
            run,
            [w.id for w in work],
            model=spec.model,
            input_kind="inline",
            simulated=simulated,
        )
        folder = tmp_path / "out" / "grid" / "batches"
        folder.mkdir(parents=True)
        with (folder / f"{batch.display_name}.jsonl").open("wb") as lines:
            for item in work:
                request = Request.from_json(item.request_json)
                lines.write(
                    client_batch.request_line(item.key, build_body(request, []))
                )
        return batch
    finally:
        store.close()


PROMPTS = "[" + ", ".join(f'"Scene {n}, {{style}}"' for n in range(10)) + "]"


def submit_in_a_child(job: Path, sim: SimServer, out: Path) -> Proc:
    """`runner submit JOB --batch` against `sim`, in a process of its own."""
    return spawn(
        "submit", job, "--batch", "--base-url", sim.url, "--output", out, env=KILL_ENV
    )  # fmt: skip


def submit_detached(tmp_path: Path, sim: SimServer) -> tuple[Path, Result]:
    """`runner submit JOB --batch --detach` of GRID, in process: its output
    folder, and what it said."""
    out = tmp_path / "o"
    result = invoke(
        "submit", write_job(tmp_path, GRID), "--batch", "--detach", "--base-url",
        sim.url, "--output", out, "--no-review", env=CLI_ENV,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out, result


def cancel(sim: SimServer, out: Path) -> Result:
    """`runner cancel grid`, in process."""
    return invoke("cancel", "grid", "--base-url", sim.url, "--output", out, env=CLI_ENV)


def kill(proc: Proc) -> None:
    """SIGKILL the child: nothing of it runs after, no handler, no cleanup."""
    proc.popen.send_signal(signal.SIGKILL)
    code, _, _ = proc.finish()
    assert code == -signal.SIGKILL


def resubmit(job: Path, sim: SimServer, out: Path, *flags: str) -> Result:
    """`runner submit JOB` again, in process, after a child was killed."""
    return invoke(
        "submit", job, *flags, "--base-url", sim.url, "--output", out, "--no-review",
        env=KILL_ENV,
    )  # fmt: skip


def live_names(out: Path) -> set[str]:
    """The remote names of the job's live batches as the store has them, cut to
    their prefix ("batches/"; "" while not named yet)."""
    if not (out / "runner.db").is_file():
        return set()
    with closing(sqlite3.connect(out / "runner.db")) as db:
        try:
            rows = db.execute(
                "SELECT remote_name FROM batches WHERE ended_at IS NULL"
            ).fetchall()
        except sqlite3.OperationalError:  # not migrated yet
            return set()
    return {(name or "")[:8] for (name,) in rows}


def work_item(n: int, key: str) -> WorkItem:
    return WorkItem(n, key, "p1", "{}", "1:1", "noref", 1, "{}", 0, 0, 0)


def batch_input(tmp_path: Path, batch_id: int) -> Path:
    return tmp_path / "out" / "grid" / "batches" / f"grid-batch-{batch_id}.jsonl"
