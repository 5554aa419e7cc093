"""The simulated Batch and Files APIs over loopback, with httpx and with Google's own
SDK (google-genai), a client nobody here wrote.

The wire shapes are checked against answers the real API gave, kept in
tests/data/api-samples/batch-*: a create and poll of a gemini-2.5-flash inline batch
(December 2025) and the operation and a result line of a file batch (August 2026),
both quoted publicly by their authors, texts cut.
"""

from __future__ import annotations

import base64
import io
import json
import re
import socket
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from google import genai
from google.genai import errors, types
from PIL import Image

from runner.simulate import BATCH_FAULT_KINDS, Fault, SimServer
from tests.simulator_process import module_main

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

SAMPLES = Path(__file__).parent / "data" / "api-samples"
MODEL = "gemini-3.1-flash-image-preview"
CREATE = f"/v1beta/models/{MODEL}:batchGenerateContent"
UPLOAD = "/upload/v1beta/files"
TERMINAL = {
    "BATCH_STATE_SUCCEEDED",
    "BATCH_STATE_FAILED",
    "BATCH_STATE_CANCELLED",
    "BATCH_STATE_EXPIRED",
}
SDK_TERMINAL = {state.replace("BATCH_", "JOB_") for state in TERMINAL}
SCALE = 1 / 16
KEY = "batch-key"


@pytest.fixture(scope="module")
def batch_server() -> Iterator[SimServer]:
    """Batches that neither wait nor run longer than their lines take; tiny images."""
    with SimServer(image_scale=SCALE, batch_pending=0, batch_running=0) as server:
        yield server


@pytest.fixture
def server(batch_server: SimServer) -> SimServer:
    batch_server.reset()
    return batch_server


@pytest.fixture
def client(server: SimServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        yield http


def generate_body(text: str, ratio: str = "1:1") -> dict[str, Any]:
    """A generateContent request as the runner sends it."""
    return {
        "contents": [{"role": "user", "parts": [{"text": text}]}],
        "generationConfig": {
            "responseModalities": ["IMAGE"],
            "imageConfig": {"aspectRatio": ratio},
            "candidateCount": 1,
        },
    }


def inline_body(texts: Sequence[str], display_name: str = "job-1") -> dict[str, Any]:
    requests = [
        {"request": generate_body(text), "metadata": {"key": f"item-{i}"}}
        for i, text in enumerate(texts)
    ]
    return {
        "batch": {
            "displayName": display_name,
            "inputConfig": {"requests": {"requests": requests}},
        }
    }


def jsonl(texts: Sequence[str]) -> bytes:
    """An input file: one `{"key", "request"}` per line."""
    return b"".join(
        json.dumps({"key": f"item-{i}", "request": generate_body(text)}).encode()
        + b"\n"
        for i, text in enumerate(texts)
    )


def create(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(CREATE, json=body)
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    return created


def finished(server: SimServer, client: httpx.Client, name: str) -> dict[str, Any]:
    """The operation of batch `name` once it has ended."""
    server.wait_until(
        lambda s: (
            name in s["batch"]["batches"]
            and s["batch"]["batches"][name]["state"] in TERMINAL
        )
    )
    response = client.get(f"/v1beta/{name}")
    assert response.status_code == 200
    operation: dict[str, Any] = response.json()
    return operation


def start_upload(
    client: httpx.Client,
    file: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> str:
    """Start a resumable upload of a File described by `file`; its session URL."""
    start = client.post(
        UPLOAD,
        json={"file": file or {}},
        headers={
            "X-Goog-Upload-Protocol": "resumable",
            "X-Goog-Upload-Command": "start",
            **(headers or {}),
        },
    )
    assert start.status_code == 200, start.text
    assert start.headers["x-goog-upload-status"] == "active"
    return start.headers["x-goog-upload-url"]


def upload(
    client: httpx.Client, data: bytes, *, chunks: int = 1, **headers: str
) -> dict[str, Any]:
    """Upload `data` through the resumable protocol in `chunks` pieces; the File."""
    url = start_upload(
        client,
        {"displayName": "requests"},
        {
            "X-Goog-Upload-Header-Content-Length": str(len(data)),
            "X-Goog-Upload-Header-Content-Type": "application/jsonl",
            **headers,
        },
    )
    size = -(-len(data) // chunks)
    offset = 0
    while True:
        piece = data[offset : offset + size]
        last = offset + len(piece) >= len(data)
        answer = client.post(
            url,
            content=piece,
            headers={
                "X-Goog-Upload-Command": "upload, finalize" if last else "upload",
                "X-Goog-Upload-Offset": str(offset),
            },
        )
        assert answer.status_code == 200, answer.text
        offset += len(piece)
        if last:
            assert answer.headers["x-goog-upload-status"] == "final"
            file: dict[str, Any] = answer.json()["file"]
            return file
        assert answer.headers["x-goog-upload-status"] == "active"


def decoded_image(response: dict[str, Any]) -> Image.Image:
    parts = response["candidates"][0]["content"]["parts"]
    (data,) = [p["inlineData"]["data"] for p in parts if "inlineData" in p]
    return Image.open(io.BytesIO(base64.b64decode(data)))


def skeleton(value: Any) -> Any:
    """The field names of a JSON value, recursively (a list by its first item; a
    GenerateContentResponse, compared elsewhere, as "response")."""
    if isinstance(value, dict):
        if "candidates" in value or "promptFeedback" in value:
            return "response"
        return {key: skeleton(item) for key, item in value.items()}
    if isinstance(value, list):
        return [skeleton(value[0])] if value else []
    return type(value).__name__


def covers(ours: Any, theirs: Any) -> bool:
    """Whether skeleton `ours` has every field of `theirs` (a sample cut short by
    its author may lack some of ours), with the same shape."""
    if isinstance(theirs, dict):
        return isinstance(ours, dict) and all(
            key in ours and covers(ours[key], value) for key, value in theirs.items()
        )
    if isinstance(theirs, list):
        return isinstance(ours, list) and all(covers(ours[0], v) for v in theirs)
    return bool(ours == theirs)


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


# -- inline batches ---------------------------------------------------------------


def test_a_create_answers_a_pending_operation_shaped_like_googles(
    client: httpx.Client,
) -> None:
    operation = create(client, inline_body(["a cat", "a dog", "a fox"]))

    assert skeleton(operation) == skeleton(sample("batch-200-create-pending.json"))
    assert re.fullmatch(r"batches/[a-z0-9]{36}", operation["name"])
    metadata = operation["metadata"]
    assert metadata["model"] == f"models/{MODEL}"
    assert metadata["displayName"] == "job-1"
    assert metadata["batchStats"] == {"requestCount": "3", "pendingRequestCount": "3"}
    assert metadata["state"] == "BATCH_STATE_PENDING"
    assert metadata["name"] == operation["name"]


def test_an_inline_batch_ends_with_its_responses_in_input_order_twice(
    server: SimServer, client: httpx.Client
) -> None:
    texts = ["a cat", "a dog", "a fox"]
    name = create(client, inline_body(texts))["name"]

    operation = finished(server, client, name)

    assert skeleton(operation) == skeleton(sample("batch-200-succeeded-inline.json"))
    metadata = operation["metadata"]
    assert operation["done"] is True
    assert metadata["state"] == "BATCH_STATE_SUCCEEDED"
    assert metadata["batchStats"] == {
        "requestCount": "3",
        "successfulRequestCount": "3",
    }
    output = metadata["output"]
    assert operation["response"] == {
        "@type": "type.googleapis.com/google.ai.generativelanguage.v1main."
        "GenerateContentBatchOutput",
        **output,
    }
    answers = output["inlinedResponses"]["inlinedResponses"]
    assert [a["metadata"] for a in answers] == [
        {"key": "item-0"},
        {"key": "item-1"},
        {"key": "item-2"},
    ]
    assert [decoded_image(a["response"]).size for a in answers] == [(64, 64)] * 3


def test_lines_are_answered_like_generate_content_and_counted_apart(
    server: SimServer, client: httpx.Client
) -> None:
    interactive = client.post(
        f"/v1beta/models/{MODEL}:generateContent", json=generate_body("a cat")
    ).json()
    name = create(client, inline_body(["a cat", "a dog"]))["name"]

    answers = finished(server, client, name)["response"]["inlinedResponses"]

    first = answers["inlinedResponses"][0]["response"]
    assert first["usageMetadata"] == interactive["usageMetadata"]
    assert first["modelVersion"] == interactive["modelVersion"]
    stats = server.stats()
    assert stats["requests"] == 1
    assert stats["batch"]["lines"] == 2
    assert stats["batch"]["images"] == 2
    billed = [a["response"]["usageMetadata"] for a in answers["inlinedResponses"]]
    assert stats["batch"]["usage"]["totalTokenCount"] == sum(
        u["totalTokenCount"] for u in billed
    )
    assert (
        stats["usage"]["totalTokenCount"]
        == interactive["usageMetadata"]["totalTokenCount"]
    )


def test_a_lines_fault_directive_gives_the_same_answer_or_its_rpc_status(
    server: SimServer, client: httpx.Client
) -> None:
    name = create(
        client,
        inline_body(["a cat [sim:blocked-prompt]", "a dog [sim:429]", "[sim:drop]"]),
    )["name"]

    operation = finished(server, client, name)

    blocked, quota, dropped = operation["response"]["inlinedResponses"][
        "inlinedResponses"
    ]
    assert blocked["response"]["promptFeedback"] == {
        "blockReason": "PROHIBITED_CONTENT"
    }
    assert quota["error"]["code"] == 8  # RESOURCE_EXHAUSTED
    assert "quota" in quota["error"]["message"]
    assert any(d["@type"].endswith("RetryInfo") for d in quota["error"]["details"])
    assert dropped["error"] == {"code": 13, "message": "Internal error encountered."}
    assert quota["metadata"] == {"key": "item-1"}
    assert operation["metadata"]["batchStats"] == {
        "requestCount": "3",
        "successfulRequestCount": "1",
        "failedRequestCount": "2",
    }
    assert server.stats()["batch"]["by_kind"] == {
        "blocked-prompt": 1,
        "429": 1,
        "drop": 1,
    }


def test_a_counted_directive_fails_the_first_line_and_not_its_retry(
    server: SimServer, client: httpx.Client
) -> None:
    first = create(client, inline_body(["a cat [sim:500*1]"]))["name"]
    again = create(client, inline_body(["a cat [sim:500*1]"]))["name"]

    answers = [
        finished(server, client, name)["response"]["inlinedResponses"][
            "inlinedResponses"
        ][0]
        for name in (first, again)
    ]

    assert answers[0]["error"]["code"] == 13
    assert "response" in answers[1]


def test_inline_requests_in_snake_case_are_read_too(
    server: SimServer, client: httpx.Client
) -> None:
    body = {
        "batch": {
            "display_name": "snake",
            "input_config": {
                "requests": {"requests": [{"request": generate_body("a cat")}]}
            },
        }
    }

    operation = finished(server, client, create(client, body)["name"])

    (answer,) = operation["response"]["inlinedResponses"]["inlinedResponses"]
    assert "metadata" not in answer
    assert decoded_image(answer["response"]).size == (64, 64)


# -- states, cancel, list, delete -------------------------------------------------


def test_a_batch_waits_pending_then_runs_by_the_clock() -> None:
    with (
        SimServer(image_scale=SCALE, batch_pending=3600, batch_running=0) as slow,
        httpx.Client(base_url=slow.url, timeout=10) as http,
    ):
        name = create(http, inline_body(["a cat"]))["name"]

        assert http.get(f"/v1beta/{name}").json()["metadata"]["state"] == (
            "BATCH_STATE_PENDING"
        )
        assert slow.stats()["batch"]["lines"] == 0

    with (
        SimServer(image_scale=SCALE, batch_pending=0, batch_running=3600) as long,
        httpx.Client(base_url=long.url, timeout=10) as http,
    ):
        name = create(http, inline_body(["a cat", "a dog"]))["name"]
        long.wait_until(lambda s: s["batch"]["batches"][name]["succeeded"] == 2)

        running = http.get(f"/v1beta/{name}").json()

        assert running["metadata"]["state"] == "BATCH_STATE_RUNNING"
        assert running["metadata"]["batchStats"] == {
            "requestCount": "2",
            "successfulRequestCount": "2",
        }
        assert "done" not in running and "output" not in running["metadata"]


def test_cancel_ends_a_running_batch_cancelled_without_results() -> None:
    with (
        SimServer(image_scale=SCALE, batch_pending=0, batch_running=3600) as long,
        httpx.Client(base_url=long.url, timeout=10) as http,
    ):
        name = create(http, inline_body(["a cat"]))["name"]
        long.wait_until(lambda s: s["batch"]["batches"][name]["succeeded"] == 1)

        cancelled = http.post(f"/v1beta/{name}:cancel")
        operation = http.get(f"/v1beta/{name}").json()
        again = http.post(f"/v1beta/{name}:cancel")

    assert (cancelled.status_code, cancelled.json()) == (200, {})
    assert operation["done"] is True
    assert operation["metadata"]["state"] == "BATCH_STATE_CANCELLED"
    assert operation["error"]["code"] == 1
    assert "output" not in operation["metadata"] and "response" not in operation
    assert again.status_code == 400
    assert again.json()["error"]["status"] == "FAILED_PRECONDITION"


def test_list_pages_through_batches_newest_first(
    server: SimServer, client: httpx.Client
) -> None:
    assert client.get("/v1beta/batches").json() == {}
    names = [
        create(client, inline_body(["a cat"], f"job-{i}"))["name"] for i in range(5)
    ]

    seen, token, pages = [], None, 0
    while True:
        params = {"pageSize": "2"} | ({"pageToken": token} if token else {})
        page = client.get("/v1beta/batches", params=params).json()
        seen += [op["metadata"]["displayName"] for op in page["operations"]]
        pages += 1
        token = page.get("nextPageToken")
        if token is None:
            break

    assert seen == ["job-4", "job-3", "job-2", "job-1", "job-0"]
    assert pages == 3
    assert {
        op["name"] for op in client.get("/v1beta/batches").json()["operations"]
    } == (set(names))


def test_a_listed_batch_carries_its_inline_results(
    server: SimServer, client: httpx.Client
) -> None:
    name = create(client, inline_body(["a cat"]))["name"]
    alone = finished(server, client, name)

    (listed,) = client.get("/v1beta/batches").json()["operations"]

    assert listed == alone


def test_unknown_batches_are_googles_404_and_delete_forgets_a_batch(
    server: SimServer, client: httpx.Client
) -> None:
    name = create(client, inline_body(["a cat"]))["name"]

    deleted = client.delete(f"/v1beta/{name}")
    gone = client.get(f"/v1beta/{name}")

    assert (deleted.status_code, deleted.json()) == (200, {})
    assert gone.status_code == 404
    assert gone.json()["error"] == {
        "code": 404,
        "message": "Requested entity was not found.",
        "status": "NOT_FOUND",
    }
    assert client.post("/v1beta/batches/nosuchbatch:cancel").status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({}, 400, "batch is required"),
        ({"batch": {"displayName": "x"}}, 400, "input_config is required"),
        (
            {"batch": {"inputConfig": {"fileName": "files/x", "requests": {}}}},
            400,
            "exactly one",
        ),
        (
            {"batch": {"inputConfig": {"requests": {"requests": []}}}},
            400,
            "must not be empty",
        ),
        (
            {"batch": {"inputConfig": {"fileName": "files/nosuchfile"}}},
            404,
            "Requested entity was not found.",
        ),
    ],
)
def test_a_create_google_would_refuse_is_refused(
    server: SimServer,
    client: httpx.Client,
    body: dict[str, Any],
    status: int,
    message: str,
) -> None:
    response = client.post(CREATE, json=body)

    assert response.status_code == status
    assert message in response.json()["error"]["message"]
    assert server.stats()["batch"]["creates"] == {}


def test_a_create_for_an_unknown_model_is_googles_model_404(
    client: httpx.Client,
) -> None:
    response = client.post(
        "/v1beta/models/gemini-9-image:batchGenerateContent", json=inline_body(["x"])
    )

    assert response.status_code == 404
    assert response.json()["error"]["message"].startswith(
        "models/gemini-9-image is not found"
    )


def test_inline_input_over_20_mb_is_refused(client: httpx.Client) -> None:
    body = inline_body(["x" * (21 * 1024 * 1024)])

    response = client.post(CREATE, json=body)

    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "Request payload size exceeds the limit: 20971520 bytes."
    )


def test_batch_and_file_routes_need_the_key_but_an_upload_session_does_not() -> None:
    with (
        SimServer(
            image_scale=SCALE, api_key=KEY, batch_pending=0, batch_running=0
        ) as keyed,
        httpx.Client(base_url=keyed.url, timeout=10) as http,
    ):
        goog = http.get("/v1beta/batches", headers={"x-goog-api-key": "wrong"})
        bearer = http.get("/v1beta/batches", headers={"Authorization": "Bearer no"})
        fine = http.get("/v1beta/batches", headers={"x-goog-api-key": KEY})
        file = upload(http, jsonl(["a cat"]), chunks=2, **{"x-goog-api-key": KEY})

    assert goog.status_code == 400
    assert goog.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    assert bearer.status_code == 401
    assert fine.status_code == 200
    assert file["sizeBytes"] == str(len(jsonl(["a cat"])))


# -- file batches and the Files API -----------------------------------------------


def test_an_uploaded_file_is_a_file_resource(
    server: SimServer, client: httpx.Client
) -> None:
    data = jsonl(["a cat", "a dog"])

    file = upload(client, data, chunks=3)

    assert re.fullmatch(r"files/[a-z0-9]{12}", file["name"])
    assert file["displayName"] == "requests"
    assert file["mimeType"] == "application/jsonl"
    assert file["sizeBytes"] == str(len(data))
    assert file["state"] == "ACTIVE" and file["source"] == "UPLOADED"
    assert "downloadUri" not in file
    assert client.get(f"/v1beta/{file['name']}").json() == file
    assert server.stats()["batch"]["uploads"] == 1


def test_an_upload_can_be_streamed_chunked(client: httpx.Client) -> None:
    data = jsonl(["a cat"] * 50)
    url = start_upload(client)

    def pieces() -> Iterator[bytes]:
        for i in range(0, len(data), 1000):
            yield data[i : i + 1000]

    final = client.post(
        url,
        content=pieces(),
        headers={
            "X-Goog-Upload-Command": "upload, finalize",
            "X-Goog-Upload-Offset": "0",
        },
    )

    assert final.headers["x-goog-upload-status"] == "final"
    assert final.json()["file"]["sizeBytes"] == str(len(data))


def test_a_malformed_chunked_upload_is_a_400_and_the_server_keeps_serving(
    server: SimServer, client: httpx.Client
) -> None:
    url = httpx.URL(start_upload(client))
    head = (
        f"POST {url.raw_path.decode()} HTTP/1.1\r\nHost: x\r\n"
        "Transfer-Encoding: chunked\r\nX-Goog-Upload-Command: upload\r\n"
        "X-Goog-Upload-Offset: 0\r\n\r\n"
    )
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode() + b"zz\r\nnot a chunk\r\n")
        answer = sock.recv(65536)

    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"Malformed request body" in answer
    assert client.get("/v1beta/batches").status_code == 200


def test_an_upload_at_the_wrong_offset_is_refused_and_query_says_where_it_is(
    client: httpx.Client,
) -> None:
    url = start_upload(client)
    client.post(
        url,
        content=b"0123456789",
        headers={"X-Goog-Upload-Command": "upload", "X-Goog-Upload-Offset": "0"},
    )

    wrong = client.post(
        url,
        content=b"abc",
        headers={"X-Goog-Upload-Command": "upload", "X-Goog-Upload-Offset": "3"},
    )
    query = client.post(url, headers={"X-Goog-Upload-Command": "query"})

    assert wrong.status_code == 400
    assert query.headers["x-goog-upload-status"] == "active"
    assert query.headers["x-goog-upload-size-received"] == "10"


def test_a_finalize_short_of_the_announced_size_is_refused(
    client: httpx.Client,
) -> None:
    url = start_upload(client, headers={"X-Goog-Upload-Header-Content-Length": "100"})

    final = client.post(
        url,
        content=b"too short",
        headers={
            "X-Goog-Upload-Command": "upload, finalize",
            "X-Goog-Upload-Offset": "0",
        },
    )

    assert final.status_code == 400
    assert "100" in final.json()["error"]["message"]


def test_only_resumable_uploads_are_served(client: httpx.Client) -> None:
    response = client.post(
        UPLOAD, content=b"data", headers={"Content-Type": "text/plain"}
    )

    assert response.status_code == 400
    assert "resumable" in response.json()["error"]["message"]


def test_a_file_batch_writes_a_result_file_keyed_like_googles(
    server: SimServer, client: httpx.Client
) -> None:
    file = upload(client, jsonl(["a cat", "a dog [sim:400]", "a fox"]))
    body = {
        "batch": {"displayName": "files", "inputConfig": {"fileName": file["name"]}}
    }
    name = create(client, body)["name"]

    operation = finished(server, client, name)

    assert covers(
        skeleton(operation), skeleton(sample("batch-200-succeeded-file.json"))
    )
    assert operation["metadata"]["inputConfig"] == {"fileName": file["name"]}
    results = operation["metadata"]["output"]["responsesFile"]
    assert results == f"files/batch-{name.removeprefix('batches/')}"
    assert operation["response"]["responsesFile"] == results
    download = client.get(
        f"/download/v1beta/{results}:download", params={"alt": "media"}
    )
    lines = [json.loads(line) for line in download.content.splitlines()]
    real = json.loads((SAMPLES / "batch-result-line.jsonl").read_text())
    assert covers(skeleton(lines[0]), skeleton(real))
    assert [line["key"] for line in lines] == ["item-0", "item-1", "item-2"]
    assert lines[1]["error"]["code"] == 3  # INVALID_ARGUMENT
    assert decoded_image(lines[2]["response"]).size == (64, 64)
    sdk_path = client.get(f"/v1beta/{results}:download", params={"alt": "media"})
    assert sdk_path.content == download.content
    described = client.get(f"/v1beta/{results}").json()
    assert described["source"] == "GENERATED"
    assert described["sizeBytes"] == str(len(download.content))
    assert server.stats()["batch"]["downloads"] == 2


def test_bad_input_lines_answer_an_error_line(
    server: SimServer, client: httpx.Client
) -> None:
    data = b'not json\n{"key": "k", "nothing": 1}\n\n' + jsonl(["a cat"])
    file = upload(client, data)
    body = {"batch": {"inputConfig": {"fileName": file["name"]}}}

    operation = finished(server, client, create(client, body)["name"])

    results = operation["response"]["responsesFile"]
    lines = client.get(f"/v1beta/{results}:download?alt=media").content.splitlines()
    parsed = [json.loads(line) for line in lines]
    assert [p["error"]["code"] for p in parsed[:2]] == [3, 3]
    assert parsed[1]["key"] == "k"
    assert parsed[2]["key"] == "item-0" and "response" in parsed[2]
    assert operation["metadata"]["batchStats"]["requestCount"] == "3"


def test_uploaded_files_cannot_be_downloaded(client: httpx.Client) -> None:
    file = upload(client, jsonl(["a cat"]))

    response = client.get(f"/v1beta/{file['name']}:download?alt=media")

    assert response.status_code == 400
    assert response.json()["error"]["status"] == "FAILED_PRECONDITION"


def test_a_deleted_file_is_gone_and_counted(
    server: SimServer, client: httpx.Client
) -> None:
    file = upload(client, jsonl(["a cat"]))

    assert client.delete(f"/v1beta/{file['name']}").json() == {}
    assert client.get(f"/v1beta/{file['name']}").status_code == 404
    assert client.delete(f"/v1beta/{file['name']}").status_code == 404
    assert server.stats()["batch"]["deletes"] == 1  # the one that deleted


def test_a_file_delete_error_rule_fails_the_delete_of_the_files_it_matches(
    server: SimServer, client: httpx.Client
) -> None:
    server.add_fault(Fault("file-delete-error", match="requests", times=1))
    file = upload(client, jsonl(["a cat"]))  # displayName "requests"

    refused = client.delete(f"/v1beta/{file['name']}")
    assert refused.status_code == 500
    assert refused.json()["error"]["status"] == "INTERNAL"
    assert client.get(f"/v1beta/{file['name']}").status_code == 200  # still there
    assert client.delete(f"/v1beta/{file['name']}").status_code == 200
    assert server.stats()["batch"]["deletes"] == 1


def test_a_batch_of_big_answers_is_never_held_whole_in_memory() -> None:
    """60 answers of ~400 KB each (24 MB of results): answering them and streaming
    their download keeps Python's peak allocation under a quarter of that (one
    prompt, so the drawn canvas is cached once)."""
    pad = 300_000
    with (
        SimServer(
            image_scale=SCALE, image_pad_bytes=pad, batch_pending=0, batch_running=0
        ) as big,
        httpx.Client(base_url=big.url, timeout=10) as http,
    ):
        file = upload(http, jsonl(["a poster"] * 60))
        body = {"batch": {"inputConfig": {"fileName": file["name"]}}}
        tracemalloc.start()
        try:
            name = create(http, body)["name"]
            operation = finished(big, http, name)
            results = operation["response"]["responsesFile"]
            received = 0
            with http.stream("GET", f"/v1beta/{results}:download?alt=media") as stream:
                for piece in stream.iter_bytes():
                    received += len(piece)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

    assert received > 60 * pad
    assert peak < received / 4


# -- faults -----------------------------------------------------------------------


def test_a_share_of_lines_fails_at_the_line_error_rate() -> None:
    with (
        SimServer(
            image_scale=SCALE, line_error_rate=0.5, batch_pending=0, batch_running=0
        ) as flaky,
        httpx.Client(base_url=flaky.url, timeout=10) as http,
    ):
        name = create(http, inline_body([f"cat {i}" for i in range(20)]))["name"]
        operation = finished(flaky, http, name)
        interactive = http.post(
            f"/v1beta/models/{MODEL}:generateContent", json=generate_body("a cat")
        )

    answers = operation["response"]["inlinedResponses"]["inlinedResponses"]
    failed = [a for a in answers if "error" in a]
    assert 0 < len(failed) < 20
    assert {json.dumps(a["error"]) for a in failed} == {
        json.dumps({"code": 13, "message": "Internal error encountered."})
    }
    stats = operation["metadata"]["batchStats"]
    assert stats["failedRequestCount"] == str(len(failed))
    assert stats["successfulRequestCount"] == str(20 - len(failed))
    assert interactive.status_code == 200


def test_a_line_error_rule_fails_only_the_lines_it_matches(
    server: SimServer, client: httpx.Client
) -> None:
    server.add_fault(Fault("line-error", match="nebula"))
    name = create(client, inline_body(["a nebula", "a cat"]))["name"]

    answers = finished(server, client, name)["response"]["inlinedResponses"]

    first, second = answers["inlinedResponses"]
    assert first["error"]["code"] == 13
    assert "response" in second
    direct = client.post(
        f"/v1beta/models/{MODEL}:generateContent", json=generate_body("a nebula")
    )
    assert direct.status_code == 200


@pytest.mark.parametrize(
    ("kind", "state", "code"),
    [
        ("batch-expired", "BATCH_STATE_EXPIRED", 4),
        ("batch-failed", "BATCH_STATE_FAILED", 13),
    ],
)
def test_an_expired_or_failed_batch_ends_without_results_or_usage(
    server: SimServer, client: httpx.Client, kind: str, state: str, code: int
) -> None:
    server.add_fault(Fault(kind, match="nightly"))
    name = create(client, inline_body(["a cat", "a dog"], "nightly-7"))["name"]
    other = create(client, inline_body(["a cat"], "daytime"))["name"]

    operation = finished(server, client, name)

    assert operation["done"] is True
    assert operation["metadata"]["state"] == state
    assert operation["error"]["code"] == code
    assert "output" not in operation["metadata"] and "response" not in operation
    assert operation["metadata"]["batchStats"] == {
        "requestCount": "2",
        "pendingRequestCount": "2",
    }
    assert finished(server, client, other)["metadata"]["state"] == (
        "BATCH_STATE_SUCCEEDED"
    )
    assert server.stats()["batch"]["lines"] == 1


def test_a_batch_directive_in_a_prompt_expires_the_first_batch_only(
    server: SimServer, client: httpx.Client
) -> None:
    texts = ["a cat", "a dog [sim:batch-expired*1]"]
    first = create(client, inline_body(texts))["name"]
    second = create(client, inline_body(texts))["name"]

    states = [finished(server, client, n)["metadata"]["state"] for n in (first, second)]

    assert states == ["BATCH_STATE_EXPIRED", "BATCH_STATE_SUCCEEDED"]


def test_a_lost_create_answer_still_makes_the_batch_and_counts_it(
    server: SimServer, client: httpx.Client
) -> None:
    server.add_fault(Fault("batch-create-lost", times=1))

    with pytest.raises(httpx.RemoteProtocolError):
        client.post(CREATE, json=inline_body(["a cat"], "job-lost"))
    (listed,) = client.get("/v1beta/batches").json()["operations"]
    name = listed["name"]

    assert listed["metadata"]["displayName"] == "job-lost"
    assert finished(server, client, name)["metadata"]["state"] == (
        "BATCH_STATE_SUCCEEDED"
    )
    assert server.stats()["batch"]["creates"] == {"job-lost": 1}


def test_a_hung_create_makes_the_batch_and_never_answers(server: SimServer) -> None:
    server.add_fault(Fault("batch-create-hang", match="job-hung"))

    with (
        httpx.Client(base_url=server.url, timeout=0.3) as impatient,
        pytest.raises(httpx.ReadTimeout),
    ):
        impatient.post(CREATE, json=inline_body(["a cat"], "job-hung"))

    assert server.stats()["batch"]["creates"] == {"job-hung": 1}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        (listed,) = client.get("/v1beta/batches").json()["operations"]
        assert listed["metadata"]["displayName"] == "job-hung"
        done = finished(server, client, listed["name"])
    assert done["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"


def test_creates_are_counted_per_display_name(
    server: SimServer, client: httpx.Client
) -> None:
    for display_name in ("job-a", "job-b", "job-a"):
        create(client, inline_body(["a cat"], display_name))

    assert server.stats()["batch"]["creates"] == {"job-a": 2, "job-b": 1}


def test_batch_counts_are_in_the_stats_endpoint(
    server: SimServer, client: httpx.Client
) -> None:
    name = create(client, inline_body(["a cat"], "job-x"))["name"]
    finished(server, client, name)

    stats = client.get("/_sim/stats").json()["batch"]

    assert stats["creates"] == {"job-x": 1}
    assert stats["batches"][name] == {
        "display_name": "job-x",
        "model": MODEL,
        "source": "inline",
        "state": "BATCH_STATE_SUCCEEDED",
        "requests": 1,
        "succeeded": 1,
        "failed": 0,
    }


def test_batch_rules_come_through_the_control_endpoint(
    server: SimServer, client: httpx.Client
) -> None:
    rule = {"kind": "batch-failed", "match": "job-f"}
    assert client.post("/_sim/faults", json=rule).json()["ok"] is True

    name = create(client, inline_body(["a cat"], "job-f"))["name"]

    assert finished(server, client, name)["metadata"]["state"] == "BATCH_STATE_FAILED"


def test_batch_faults_do_nothing_to_generate_content(client: httpx.Client) -> None:
    for kind in BATCH_FAULT_KINDS:
        response = client.post(
            f"/v1beta/models/{MODEL}:generateContent",
            json=generate_body(f"a cat [sim:{kind}]"),
        )
        assert response.status_code == 200


def test_batch_kinds_cannot_be_random_faults() -> None:
    with pytest.raises(ValueError, match="batch fault"):
        SimServer(fault_rate=0.1, fault_mix=["batch-expired"])


def test_without_batch_support_the_batch_and_file_routes_are_the_relays_404() -> None:
    with (
        SimServer(image_scale=SCALE, batch_support=False) as relay,
        httpx.Client(base_url=relay.url, timeout=10) as http,
    ):
        probe = http.get("/v1beta/batches")
        created = http.post(CREATE, json=inline_body(["a cat"]))
        started = http.post(
            UPLOAD,
            json={},
            headers={
                "X-Goog-Upload-Protocol": "resumable",
                "X-Goog-Upload-Command": "start",
            },
        )
        generated = http.post(
            f"/v1beta/models/{MODEL}:generateContent", json=generate_body("a cat")
        )
        stats = relay.stats()

    assert probe.status_code == 404
    assert probe.json() == {
        "error": {
            "message": "Invalid URL (GET /v1beta/batches)",
            "type": "invalid_request_error",
            "param": "",
            "code": "",
        }
    }
    assert created.status_code == 404 and started.status_code == 404
    assert generated.status_code == 200
    assert stats["batch"]["creates"] == {}


def test_reset_forgets_batches_and_files(
    server: SimServer, client: httpx.Client
) -> None:
    file = upload(client, jsonl(["a cat"]))
    name = create(client, inline_body(["a cat"]))["name"]
    finished(server, client, name)

    server.reset()

    assert client.get(f"/v1beta/{name}").status_code == 404
    assert client.get(f"/v1beta/{file['name']}").status_code == 404
    assert server.stats()["batch"]["batches"] == {}


def test_module_main_takes_batch_turnaround_and_fault_rules() -> None:
    flags = ("--batch-pending", "3600", "--image-scale", "0.0625")
    rule = '[{"kind": "batch-create-lost", "match": "lost"}]'
    with (
        module_main(*flags, "--faults", rule) as url,
        httpx.Client(base_url=url, timeout=10) as http,
    ):
        pending = create(http, inline_body(["a cat"], "kept"))
        with pytest.raises(httpx.RemoteProtocolError):
            http.post(CREATE, json=inline_body(["a cat"], "lost"))
        stats = http.get("/_sim/stats").json()["batch"]

    assert pending["metadata"]["state"] == "BATCH_STATE_PENDING"
    assert stats["creates"] == {"kept": 1, "lost": 1}


def test_module_main_can_serve_without_batch_support() -> None:
    with (
        module_main("--no-batch-support") as url,
        httpx.Client(base_url=url, timeout=10) as http,
    ):
        probe = http.get("/v1beta/batches")

    assert probe.status_code == 404
    assert probe.json()["error"]["message"] == "Invalid URL (GET /v1beta/batches)"


def test_module_main_refuses_fault_rules_that_are_not_json() -> None:
    command = [sys.executable, "-m", "runner.simulate", "--faults", "{nope"]

    done = subprocess.run(command, capture_output=True, text=True, timeout=30)

    assert done.returncode == 2
    assert "--faults" in done.stderr


# -- google-genai ---------------------------------------------------------------


@pytest.fixture
def sdk(server: SimServer) -> Iterator[genai.Client]:
    options = types.HttpOptions(base_url=server.url, timeout=10_000)
    client = genai.Client(api_key=KEY, http_options=options)
    yield client
    client.close()


def sdk_finished(server: SimServer, sdk: genai.Client, name: str) -> types.BatchJob:
    server.wait_until(
        lambda s: (
            name in s["batch"]["batches"]
            and s["batch"]["batches"][name]["state"] in TERMINAL
        )
    )
    job = sdk.batches.get(name=name)
    assert job.state is not None and job.state.value in SDK_TERMINAL
    return job


def image_config(ratio: str) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(
        response_modalities=["IMAGE"],
        image_config=types.ImageConfig(aspect_ratio=ratio),
    )


def test_the_sdk_runs_an_inline_batch_and_reads_its_images(
    server: SimServer, sdk: genai.Client
) -> None:
    requests = [
        types.InlinedRequest(
            contents=f"a poster {i}", config=image_config(ratio), metadata={"key": key}
        )
        for i, (key, ratio) in enumerate([("wide", "16:9"), ("tall", "9:16")])
    ]

    job = sdk.batches.create(
        model=MODEL, src=requests, config=types.CreateBatchJobConfig(display_name="sdk")
    )
    assert job.state == types.JobState.JOB_STATE_PENDING
    assert job.name is not None
    done = sdk_finished(server, sdk, job.name)

    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    assert done.display_name == "sdk" and done.model == f"models/{MODEL}"
    assert done.dest is not None and done.dest.inlined_responses is not None
    sizes = {}
    for answer in done.dest.inlined_responses:
        assert answer.response is not None and answer.metadata is not None
        (part,) = [p for p in answer.response.parts or [] if p.inline_data]
        assert part.inline_data is not None and part.inline_data.data is not None
        sizes[answer.metadata["key"]] = Image.open(
            io.BytesIO(part.inline_data.data)
        ).size
    assert sizes == {"wide": (86, 48), "tall": (48, 86)}


def test_the_sdk_uploads_a_file_batch_and_downloads_its_results(
    server: SimServer, sdk: genai.Client
) -> None:
    upload_config = types.UploadFileConfig(display_name="requests", mime_type="jsonl")
    file = sdk.files.upload(
        file=io.BytesIO(jsonl(["a cat", "a dog"])), config=upload_config
    )
    assert file.name is not None and file.state == types.FileState.ACTIVE

    job = sdk.batches.create(model=MODEL, src=file.name)
    assert job.name is not None
    done = sdk_finished(server, sdk, job.name)

    assert done.dest is not None and done.dest.file_name is not None
    data = sdk.files.download(file=done.dest.file_name)
    keys = [json.loads(line)["key"] for line in data.splitlines()]
    assert keys == ["item-0", "item-1"]
    # the input deleted once the batch is done, as the runner does it
    sdk.files.delete(name=file.name)
    with pytest.raises(errors.ClientError) as gone:
        sdk.files.get(name=file.name)
    assert gone.value.code == 404
    assert server.stats()["batch"]["deletes"] == 1


def test_the_sdk_lists_cancels_and_deletes_batches() -> None:
    with SimServer(image_scale=SCALE, batch_pending=3600) as slow:
        sdk = genai.Client(
            api_key=KEY, http_options=types.HttpOptions(base_url=slow.url)
        )
        names = []
        for i in range(3):
            job = sdk.batches.create(
                model=MODEL, src=[types.InlinedRequest(contents=f"cat {i}")]
            )
            assert job.name is not None
            names.append(job.name)

        listed = [j.name for j in sdk.batches.list(config={"page_size": 2})]
        sdk.batches.cancel(name=names[0])
        cancelled = sdk.batches.get(name=names[0])
        sdk.batches.delete(name=names[1])
        with pytest.raises(errors.ClientError) as gone:
            sdk.batches.get(name=names[1])
        sdk.close()

    assert listed == names[::-1]
    assert cancelled.state == types.JobState.JOB_STATE_CANCELLED
    assert cancelled.dest is None
    assert gone.value.code == 404


def test_the_sdk_sees_an_expired_batch_without_results(
    server: SimServer, sdk: genai.Client
) -> None:
    server.add_fault(Fault("batch-expired"))

    job = sdk.batches.create(model=MODEL, src=[types.InlinedRequest(contents="a cat")])
    assert job.name is not None
    done = sdk_finished(server, sdk, job.name)

    assert done.state == types.JobState.JOB_STATE_EXPIRED
    assert done.dest is None


def test_the_sdk_gets_a_404_client_error_from_a_relay_without_batches() -> None:
    with SimServer(batch_support=False) as relay:
        sdk = genai.Client(
            api_key=KEY, http_options=types.HttpOptions(base_url=relay.url)
        )
        with pytest.raises(errors.ClientError) as caught:
            list(sdk.batches.list())
        sdk.close()

    assert caught.value.code == 404
