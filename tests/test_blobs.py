"""Image data is taken out of a streaming JSON answer, whatever the chunking."""

from __future__ import annotations

import base64
import json
import os
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from runner import client
from runner.client.blobs import MIN_BLOB_CHARS, BlobExtractor
from runner.plan import Request

if TYPE_CHECKING:
    from pathlib import Path

IMAGE = b"\x89PNG\r\n\x1a\n" + os.urandom(300_000)


def answer(payload: str, **extra: Any) -> bytes:
    return json.dumps(
        {
            "candidates": [
                {
                    "content": {
                        "parts": [
                            {"text": "plan", "thought": True},
                            {"inlineData": {"mimeType": "image/png", "data": payload}},
                        ]
                    },
                    "finishReason": "STOP",
                }
            ],
            "usageMetadata": {"totalTokenCount": 1},
            **extra,
        }
    ).encode()


def extract(
    raw: bytes, chunk: int, spool: Path | None = None
) -> tuple[BlobExtractor, Any]:
    blobs = BlobExtractor(spool_dir=spool, spill_bytes=100_000)
    for start in range(0, len(raw), chunk):
        blobs.feed(raw[start : start + chunk])
    return blobs, json.loads(blobs.finish())


def inline_data(doc: Any) -> Any:
    return doc["candidates"][0]["content"]["parts"][1]["inlineData"]["data"]


@pytest.mark.parametrize("chunk", [1, 3, 4, 5, 31, 4096, 1 << 20])
def test_any_chunking_gives_the_same_bytes_and_a_small_document(chunk: int) -> None:
    raw = answer(base64.b64encode(IMAGE).decode(), data="short values stay")
    blobs, doc = extract(raw, chunk)
    blob = blobs.blob_for(inline_data(doc))
    assert blob is not None and blob.error is None
    assert blob.read() == IMAGE
    assert doc["data"] == "short values stay"
    assert len(blobs.finish()) < 600


def test_large_images_spill_to_a_hidden_temp_file(tmp_path: Path) -> None:
    blobs, doc = extract(answer(base64.b64encode(IMAGE).decode()), 65536, tmp_path)
    blob = blobs.blob_for(inline_data(doc))
    assert blob is not None and blob.path is not None
    assert blob.path.parent == tmp_path and blob.path.name.startswith(".")
    assert blob.path.read_bytes() == IMAGE and not blob.data
    blobs.discard()
    assert list(tmp_path.iterdir()) == []


def test_an_answer_declared_large_spills_its_images_from_the_first_byte(
    tmp_path: Path,
) -> None:
    raw = answer(base64.b64encode(IMAGE).decode())
    blobs = BlobExtractor(spool_dir=tmp_path, expected=len(raw) * 10)
    for start in range(0, len(raw), 65536):
        blobs.feed(raw[start : start + 65536])
        assert not any(blob.data for blob in blobs.blobs)
    doc = json.loads(blobs.finish())
    blob = blobs.blob_for(inline_data(doc))
    assert blob is not None and blob.path is not None
    assert blob.path.read_bytes() == IMAGE


def test_spilled_bytes_wait_for_flush_and_nothing_is_written_before(
    tmp_path: Path,
) -> None:
    raw = answer(base64.b64encode(IMAGE).decode())
    blobs = BlobExtractor(spool_dir=tmp_path, spill_bytes=1000)
    blobs.feed(raw)
    assert blobs.needs_flush and blobs.unwritten == len(IMAGE)
    assert list(tmp_path.iterdir()) == []
    blobs.flush()
    assert not blobs.needs_flush and blobs.unwritten == 0
    (path,) = tmp_path.iterdir()
    assert path.read_bytes() == IMAGE


def test_escaped_slashes_are_base64_slashes() -> None:
    raw = answer(base64.b64encode(IMAGE).decode()).replace(b"/", b"\\/")
    blobs, doc = extract(raw, 1000)
    blob = blobs.blob_for(inline_data(doc))
    assert blob is not None and blob.read() == IMAGE


def test_invalid_base64_is_reported_not_decoded() -> None:
    blobs, doc = extract(answer("*" * (MIN_BLOB_CHARS * 2)), 100)
    blob = blobs.blob_for(inline_data(doc))
    assert blob is not None and blob.error and "invalid base64" in blob.error


def test_a_body_cut_inside_the_data_marks_the_blob_broken() -> None:
    raw = answer(base64.b64encode(IMAGE).decode())
    blobs = BlobExtractor()
    blobs.feed(raw[: len(raw) // 2])
    blobs.finish()
    assert blobs.blobs[0].error == "the answer ended inside the image data"


async def test_the_client_returns_spilled_images_as_files(tmp_path: Path) -> None:
    big = IMAGE * 5  # past the 1 MiB kept in memory
    raw = answer(base64.b64encode(big).decode())

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=raw)

    request = Request("m", "t", "1:1", None, (), {}, None, None)
    mock = httpx.MockTransport(handler)
    async with client.make_http_client(concurrency=1, transport=mock) as http:
        outcome = await client.generate(
            http, client.Endpoint("http://sim"), request, [], spool_dir=tmp_path
        )
    assert outcome.kind is client.Kind.SUCCESS
    (image,) = outcome.images
    assert image.path is not None and image.path.read_bytes() == big


async def test_files_of_an_answer_that_is_not_used_are_deleted(tmp_path: Path) -> None:
    doc = json.loads(answer(base64.b64encode(IMAGE * 5).decode()))
    doc["candidates"][0]["content"]["parts"].append(
        {"inlineData": {"mimeType": "image/png", "data": "@" * 4000}}
    )
    raw = json.dumps(doc).encode()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=raw)

    request = Request("m", "t", "1:1", None, (), {}, None, None)
    mock = httpx.MockTransport(handler)
    async with client.make_http_client(concurrency=1, transport=mock) as http:
        outcome = await client.generate(
            http, client.Endpoint("http://sim"), request, [], spool_dir=tmp_path
        )
    assert outcome.kind is client.Kind.UNKNOWN and "invalid base64" in outcome.reason
    assert list(tmp_path.iterdir()) == []  # noqa: ASYNC240
