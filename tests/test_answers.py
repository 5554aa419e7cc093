"""What the runner keeps of an answer, end to end: real loopback HTTP to the simulated
API, a real SQLite store, image files on disk. Each attempt stores its answer's parts
without image bytes (each final image names the file it went to) and its
groundingMetadata; relay answers keep every image they carry."""

from __future__ import annotations

import json
from base64 import b64encode
from typing import TYPE_CHECKING

import httpx

from tests.e2e import SECRET
from tests.test_scheduler import item, run

if TYPE_CHECKING:
    from pathlib import Path

    from runner.simulate import SimServer

PNG_BASE64_HEAD = b"iVBORw0KGgo"  # every PNG's first bytes, in base64


async def test_an_answers_parts_are_stored_with_the_file_of_its_image(
    sim: SimServer, tmp_path: Path
) -> None:
    report, attempts = await run(tmp_path, sim, ["a quiet harbour"])

    row = item(report, tmp_path)
    (attempt,) = attempts
    assert json.loads(attempt["parts_json"]) == [
        {"text": "Planning the composition for: a quiet harbour", "thought": True},
        {"inlineData": {"mimeType": "image/png", "file": row["outputs"][0]}},
    ]
    assert (tmp_path / "out" / "t" / row["outputs"][0]).is_file()
    # the image bytes live in the images folder only, never in the store
    assert PNG_BASE64_HEAD not in (tmp_path / "out" / "runner.db").read_bytes()


async def test_a_relays_data_uri_answer_is_stored_without_its_base64(
    sim: SimServer, tmp_path: Path
) -> None:
    report, attempts = await run(tmp_path, sim, ["a kite [sim:relay-markdown]"])

    assert item(report, tmp_path)["status"] == "succeeded"
    (attempt,) = attempts
    assert json.loads(attempt["parts_json"]) == [
        {"text": "![image](data:image/png;base64,…)"}
    ]
    assert PNG_BASE64_HEAD not in (tmp_path / "out" / "runner.db").read_bytes()


async def test_a_relays_link_to_its_own_files_is_fetched(
    sim: SimServer, tmp_path: Path
) -> None:
    """The simulator links its files on its own loopback origin, over http: the
    base URL's own host, so allowed."""
    report, attempts = await run(tmp_path, sim, ["a kite [sim:relay-url]"])

    row = item(report, tmp_path)
    assert row["status"] == "succeeded" and len(row["outputs"]) == 1
    (attempt,) = attempts
    assert attempt["reason"].startswith(f"image fetched from {sim.url}/files/")


async def test_an_answer_without_grounding_stores_none(
    sim: SimServer, tmp_path: Path
) -> None:
    report, attempts = await run(tmp_path, sim, ["a quiet harbour"])

    assert item(report, tmp_path)["grounding"] is None
    assert [a["grounding_json"] for a in attempts] == [None]


async def test_an_inline_image_beside_a_dead_link_is_kept_and_not_paid_again(
    sim: SimServer, tmp_path: Path
) -> None:
    report, attempts = await run(tmp_path, sim, ["a kite [sim:relay-inline-dead-url]"])

    row = item(report, tmp_path)
    assert row["status"] == "succeeded" and len(row["outputs"]) == 1
    assert report.exit_code == 0
    assert sim.stats()["requests"] == 1  # sent once: nothing to pay for again
    (attempt,) = attempts
    assert attempt["outcome"] == "success"
    assert attempt["reason"].startswith(
        f"could not fetch the image URL {sim.url}/files/"
    )
    parts = json.loads(attempt["parts_json"])
    assert parts[1] == {
        "inlineData": {"mimeType": "image/png", "file": row["outputs"][0]}
    }


async def test_thought_images_are_kept_as_parts_but_never_written(
    sim: SimServer, tmp_path: Path
) -> None:
    settings = "generation: {thinkingConfig: {includeThoughts: true}}\n"
    report, attempts = await run(tmp_path, sim, ["a lighthouse"], settings=settings)

    row = item(report, tmp_path)
    assert row["status"] == "succeeded"
    (output,) = row["outputs"]  # the final image only
    assert [p.name for p in (tmp_path / "out" / "t" / "images").iterdir()] == [
        output.removeprefix("images/")
    ]
    (attempt,) = attempts
    parts = json.loads(attempt["parts_json"])
    thoughts = [p for p in parts if p.get("thought")]
    assert {"inlineData": {"mimeType": "image/png"}, "thought": True} in thoughts
    final = parts[-1]
    assert final["inlineData"] == {"mimeType": "image/png", "file": output}
    assert final["thoughtSignature"]  # kept as sent, to send back
    assert all("thoughtSignature" not in p for p in thoughts)
    assert PNG_BASE64_HEAD not in (tmp_path / "out" / "runner.db").read_bytes()


async def test_a_stored_answer_is_enough_to_send_the_conversation_back(
    sim: SimServer, tmp_path: Path
) -> None:
    """A later turn: the first turn's stored parts become the model's turn, each
    final image's bytes read back from its file, the interim thought images (whose
    bytes are not kept, and which carry no signature) left out."""
    settings = "generation: {thinkingConfig: {includeThoughts: true}}\n"
    _, attempts = await run(tmp_path, sim, ["a lighthouse"], settings=settings)
    (attempt,) = attempts
    model_turn = []
    for part in json.loads(attempt["parts_json"]):
        inline = part.get("inlineData")
        if inline is None:
            model_turn.append(part)
        elif "file" in inline:
            data = (tmp_path / "out" / "t" / inline["file"]).read_bytes()
            image = {"mimeType": inline["mimeType"], "data": b64encode(data).decode()}
            model_turn.append({**part, "inlineData": image})
    body = {
        "contents": [
            {"role": "user", "parts": [{"text": "a lighthouse"}]},
            {"role": "model", "parts": model_turn},
            {"role": "user", "parts": [{"text": "now at night"}]},
        ],
        "generationConfig": {"responseModalities": ["IMAGE"]},
    }
    url = f"{sim.url}/v1beta/models/gemini-3.1-flash-image-preview:generateContent"
    async with httpx.AsyncClient() as http:
        answer = await http.post(url, json=body, headers={"x-goog-api-key": SECRET})

    assert answer.status_code == 200, answer.text
    assert any("thoughtSignature" in p for p in model_turn)
    assert [p["inlineData"]["mimeType"] for p in model_turn if "inlineData" in p] == [
        "image/png"
    ]
    # the image went back whole: the simulator counted it as input
    details = answer.json()["usageMetadata"]["promptTokensDetails"]
    assert "IMAGE" in {d["modality"] for d in details}


async def test_a_grounded_job_sends_its_tools_and_keeps_and_shows_the_sources(
    sim: SimServer, tmp_path: Path
) -> None:
    """The whole path: `tools:` in the job file, the request's `tools`, the
    simulator's groundingMetadata, the attempt and item in the store, the manifest
    and the gallery (sources as links, suggestions in a sandboxed frame)."""
    from runner.review import build_review
    from runner.store import Store
    from tests.test_review import gallery_items

    report, attempts = await run(
        tmp_path,
        sim,
        ["a lighthouse at dusk"],
        settings="tools: [{google_search: {}}]\n",
    )

    row = item(report, tmp_path)
    assert row["status"] == "succeeded"
    stored = json.loads(attempts[0]["grounding_json"])
    assert row["grounding"] == stored
    uris = [c["web"]["uri"] for c in stored["groundingChunks"]]
    assert uris and all(u.startswith("https://") for u in uris)
    assert stored["searchEntryPoint"]["renderedContent"]

    store = Store.for_output(tmp_path / "out")
    try:
        job = store.get_job("t")
        assert job is not None
        built = build_review(store, job, tmp_path / "out" / "t")
    finally:
        store.close()
    (shown,) = [i["grounding"] for i in gallery_items(built.index.parent)]
    assert [uri for _, uri in shown["sources"]] == list(dict.fromkeys(uris))
    rendered = stored["searchEntryPoint"]["renderedContent"]
    assert rendered in shown["suggestions"]


async def test_a_job_without_tools_asks_for_no_grounding(
    sim: SimServer, tmp_path: Path
) -> None:
    report, attempts = await run(tmp_path, sim, ["a lighthouse at dusk"])

    assert item(report, tmp_path)["grounding"] is None
    assert attempts[0]["grounding_json"] is None
