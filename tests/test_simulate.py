"""The simulated Gemini API, tested over real loopback HTTP as the runner uses it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import random
import re
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from PIL import Image

from runner.simulate import (
    ASPECT_RATIOS,
    FAULT_KINDS,
    Fault,
    SimServer,
    image_dimensions,
)
from runner.simulate import server as server_module
from tests.google_sizes import (
    EXTREME_RATIOS,
    FLASH_SIZES,
    GEMINI_2_5,
    GEMINI_3_AT_1K,
    PRO_SIZES,
    google_size,
)
from tests.simulator_process import module_main

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

SAMPLES = Path(__file__).parent / "data" / "api-samples"
MODEL = "gemini-3.1-flash-image-preview"
GENERATE = f"/v1beta/models/{MODEL}:generateContent"
SCALE = 0.0625  # the session simulator's image_scale


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def png_bytes(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(buffer, "PNG")
    return buffer.getvalue()


def request_body(
    text: str = "A cat astronaut, flat vector",
    *,
    aspect_ratio: str | None = "1:1",
    image_size: str | None = None,
    references: Sequence[bytes] = (),
    modalities: Sequence[str] = ("IMAGE",),
) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"text": text}]
    for data in references:
        encoded = base64.b64encode(data).decode()
        parts.append({"inline_data": {"mime_type": "image/png", "data": encoded}})
    image_config: dict[str, str] = {}
    if aspect_ratio is not None:
        image_config["aspectRatio"] = aspect_ratio
    if image_size is not None:
        image_config["imageSize"] = image_size
    return {
        "contents": [{"role": "user", "parts": parts}],
        "generationConfig": {
            "responseModalities": list(modalities),
            "imageConfig": image_config,
            "candidateCount": 1,
        },
    }


def image_parts(answer: dict[str, Any]) -> list[dict[str, Any]]:
    parts = answer["candidates"][0]["content"]["parts"]
    return [p["inlineData"] for p in parts if "inlineData" in p]


def decode_image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def answer_image(answer: dict[str, Any]) -> Image.Image:
    (inline,) = image_parts(answer)
    return decode_image(base64.b64decode(inline["data"], validate=True))


def raw_exchange(
    address: tuple[str, int], data: bytes, *, close_after_send: bool = False
) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes on a fresh socket and read one HTTP response."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(data)
        if close_after_send:
            sock.shutdown(socket.SHUT_WR)
        return read_response(sock)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response head")
        buffer += chunk
    head, _, body = buffer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(status_line.split()[1]), headers, body


def address_of(server: SimServer) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


@pytest.fixture
def client(sim: SimServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.url, timeout=10) as http:
        yield http


# -- a normal answer -------------------------------------------------------------------


def test_success_answer_has_the_shape_of_a_real_image_answer(
    client: httpx.Client,
) -> None:
    response = client.post(GENERATE, json=request_body())

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    real = sample("200-image.json")
    assert answer.keys() == real.keys()
    candidate = answer["candidates"][0]
    assert candidate.keys() == real["candidates"][0].keys()
    assert candidate["finishReason"] == "STOP"
    thought, image = candidate["content"]["parts"]
    assert thought["thought"] is True and thought["text"]
    assert image["inlineData"]["mimeType"] == "image/png"
    assert answer_image(answer).format == "PNG"
    assert answer["usageMetadata"].keys() == real["usageMetadata"].keys()
    assert answer["modelVersion"] == MODEL


def test_total_tokens_are_prompt_plus_candidates_plus_thoughts(
    client: httpx.Client,
) -> None:
    usage = client.post(GENERATE, json=request_body()).json()["usageMetadata"]

    assert 0 < usage["thoughtsTokenCount"] < 300
    assert usage["totalTokenCount"] == (
        usage["promptTokenCount"]
        + usage["candidatesTokenCount"]
        + usage["thoughtsTokenCount"]
    )


@pytest.mark.parametrize(
    ("image_size", "tokens"),
    [(None, 1120), ("512", 747), ("1K", 1120), ("2K", 1680), ("4K", 2520)],
)
def test_candidate_tokens_follow_the_image_size(
    client: httpx.Client, image_size: str | None, tokens: int
) -> None:
    body = request_body(image_size=image_size)

    usage = client.post(GENERATE, json=body).json()["usageMetadata"]

    assert usage["candidatesTokenCount"] == tokens
    assert usage["candidatesTokensDetails"] == [
        {"modality": "IMAGE", "tokenCount": tokens}
    ]


def test_image_dimensions_match_the_real_model_table() -> None:
    assert image_dimensions("1:1") == (1024, 1024)
    assert image_dimensions("21:9", "1K") == (1584, 672)
    assert image_dimensions("9:16", "2K") == (1536, 2752)
    assert image_dimensions("4:5", "4K") == (3712, 4608)
    assert image_dimensions("16:9", "512") == (688, 384)
    assert image_dimensions(None, None) == (1024, 1024)
    assert image_dimensions("1:1", "1K", scale=0.0625) == (64, 64)
    assert image_dimensions("8:1", "512", scale=0.001) == (8, 8)


@pytest.mark.parametrize("ratio", sorted(ASPECT_RATIOS))
def test_answer_image_has_the_requested_aspect_ratio(
    client: httpx.Client, ratio: str
) -> None:
    answer = client.post(GENERATE, json=request_body(aspect_ratio=ratio)).json()

    assert answer_image(answer).size == image_dimensions(ratio, scale=SCALE)


@pytest.mark.parametrize("image_size", ["512", "2K", "4K"])
def test_answer_image_scales_with_the_image_size(
    client: httpx.Client, image_size: str
) -> None:
    body = request_body(aspect_ratio="3:4", image_size=image_size)

    answer = client.post(GENERATE, json=body).json()

    assert answer_image(answer).size == image_dimensions("3:4", image_size, scale=SCALE)


def test_full_scale_images_have_the_real_pixel_size() -> None:
    with (
        SimServer(image_scale=1.0) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        answer = http.post(GENERATE, json=request_body(aspect_ratio="16:9")).json()

    assert answer_image(answer).size == (1376, 768)


def test_without_aspect_ratio_the_first_reference_image_decides(
    client: httpx.Client,
) -> None:
    body = request_body(
        aspect_ratio=None, references=[png_bytes(160, 90), png_bytes(10, 40)]
    )

    answer = client.post(GENERATE, json=body).json()

    assert answer_image(answer).size == image_dimensions("16:9", scale=SCALE)


def test_without_aspect_ratio_or_reference_the_image_is_square(
    client: httpx.Client,
) -> None:
    answer = client.post(GENERATE, json=request_body(aspect_ratio=None)).json()

    assert answer_image(answer).size == image_dimensions("1:1", scale=SCALE)


def test_identical_requests_give_different_images_and_response_ids(
    client: httpx.Client,
) -> None:
    first = client.post(GENERATE, json=request_body()).json()
    second = client.post(GENERATE, json=request_body()).json()

    assert image_parts(first)[0]["data"] != image_parts(second)[0]["data"]
    assert first["responseId"] != second["responseId"]


def test_different_prompts_get_different_background_colours(
    client: httpx.Client,
) -> None:
    cat = client.post(GENERATE, json=request_body("a cat")).json()
    dog = client.post(GENERATE, json=request_body("a dog")).json()

    cat_pixel = answer_image(cat).convert("RGB").getpixel((0, 0))
    dog_pixel = answer_image(dog).convert("RGB").getpixel((0, 0))
    assert cat_pixel != dog_pixel


def test_model_version_echoes_the_model_in_the_url(client: httpx.Client) -> None:
    path = "/v1beta/models/gemini-2.5-flash-image:generateContent"

    answer = client.post(path, json=request_body()).json()

    assert answer["modelVersion"] == "gemini-2.5-flash-image"


@pytest.mark.parametrize("casing", ["snake", "camel"])
def test_reference_images_are_read_in_snake_and_camel_case(
    client: httpx.Client, casing: str
) -> None:
    body = sample("request-with-reference.json")
    if casing == "camel":
        part = body["contents"][0]["parts"][1]
        inline = part.pop("inline_data")
        part["inlineData"] = {"mimeType": inline["mime_type"], "data": inline["data"]}

    response = client.post(GENERATE, json=body)

    assert response.status_code == 200
    assert response.json()["usageMetadata"]["promptTokenCount"] > 258
    assert answer_image(response.json()).size == image_dimensions("4:5", scale=SCALE)


def test_text_and_image_modalities_add_a_text_part(client: httpx.Client) -> None:
    body = request_body(modalities=("TEXT", "IMAGE"))

    parts = client.post(GENERATE, json=body).json()["candidates"][0]["content"]["parts"]

    assert [p for p in parts if "text" in p and not p.get("thought")]


def test_invalid_json_is_a_google_invalid_argument(client: httpx.Client) -> None:
    response = client.post(GENERATE, content=b"{not json")

    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1beta/models"), ("POST", "/v1/chat/completions"), ("GET", "/")],
)
def test_a_path_no_api_serves_gets_googles_html_404_page(
    client: httpx.Client, method: str, path: str
) -> None:
    response = client.request(method, path, json={})

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "<title>Error 404 (Not Found)!!1</title>" in response.text
    assert f"The requested URL <code>{path}</code> was not found" in response.text


# -- how Google's JSON parser reads generationConfig ----------------------------------


def google_violations(response: httpx.Response) -> list[dict[str, str]]:
    """The BadRequest field violations of a Google 400 (after checking its shape)."""
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    (detail,) = error["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    violations: list[dict[str, str]] = detail["fieldViolations"]
    assert error["message"] == "\n".join(v["description"] for v in violations)
    return violations


@pytest.mark.parametrize("name", ["aspect", "imageSizes", "response_mime"])
def test_an_unknown_generation_config_name_is_refused_by_name(
    client: httpx.Client, name: str
) -> None:
    body = request_body()
    body["generationConfig"][name] = "x"

    violations = google_violations(client.post(GENERATE, json=body))

    assert violations == [
        {
            "field": "generation_config",
            "description": f'Invalid JSON payload received. Unknown name "{name}" '
            "at 'generation_config': Cannot find field.",
        }
    ]


def test_an_unknown_name_inside_image_config_is_refused_with_its_path(
    client: httpx.Client,
) -> None:
    body = request_body()
    body["generationConfig"]["imageConfig"]["aspect"] = "16:9"

    response = client.post(GENERATE, json=body)

    assert (
        response.json()["error"]["message"]
        == (sample("400-google-invalid-argument.json")["error"]["message"])
    )


def test_an_unknown_top_level_name_is_refused_without_a_path(
    client: httpx.Client,
) -> None:
    body = {**request_body(), "size": "1024x1024"}

    violations = google_violations(client.post(GENERATE, json=body))

    assert violations == [
        {
            "description": 'Invalid JSON payload received. Unknown name "size": '
            "Cannot find field."
        }
    ]


@pytest.mark.parametrize(
    ("name", "value", "path", "message"),
    [
        (
            "temperature",
            "hot",
            "generation_config.temperature",
            '(TYPE_FLOAT), "hot"',
        ),
        ("topK", 2.5, "generation_config.top_k", "(TYPE_INT32), 2.5"),
        (
            "candidate_count",
            True,
            "generation_config.candidate_count",
            "(TYPE_INT32), true",
        ),
        (
            "thinkingConfig",
            {"thinkingBudget": 19660.800000000003},
            "generation_config.thinking_config.thinking_budget",
            "(TYPE_INT32), 19660.800000000003",
        ),
        (
            "thinking_config",
            {"include_thoughts": "yes"},
            "generation_config.thinking_config.include_thoughts",
            '(TYPE_BOOL), "yes"',
        ),
        (
            "responseModalities",
            ["IMAGE", "PICTURE"],
            "generation_config.response_modalities[1]",
            "(type.googleapis.com/google.ai.generativelanguage.v1beta."
            'GenerationConfig.Modality), "PICTURE"',
        ),
        (
            "imageConfig",
            "16:9",
            "generation_config.image_config",
            "(type.googleapis.com/google.ai.generativelanguage.v1beta.ImageConfig), "
            '"16:9"',
        ),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_with_its_proto_type(
    client: httpx.Client, name: str, value: object, path: str, message: str
) -> None:
    body = request_body()
    body["generationConfig"][name] = value

    violations = google_violations(client.post(GENERATE, json=body))

    assert violations == [
        {"field": path, "description": f"Invalid value at '{path}' {message}"}
    ]


def test_a_list_for_a_single_field_is_refused(client: httpx.Client) -> None:
    body = request_body()
    body["generationConfig"]["temperature"] = [0.7]

    violations = google_violations(client.post(GENERATE, json=body))

    assert violations[0]["description"] == (
        "Invalid JSON payload received. "
        "Proto field is not repeating, cannot start list."
    )


def test_every_refusal_in_one_body_is_reported(client: httpx.Client) -> None:
    body = request_body()
    body["generationConfig"].update({"temperature": "hot", "bogus": 1})

    violations = google_violations(client.post(GENERATE, json=body))

    assert [v["field"] for v in violations] == [
        "generation_config.temperature",
        "generation_config",
    ]


def test_settings_in_either_casing_and_numbers_as_strings_are_accepted(
    client: httpx.Client,
) -> None:
    body = request_body()
    body["generation_config"] = body.pop("generationConfig")
    body["generation_config"].update(
        {
            "temperature": "0.7",
            "top_p": 0.9,
            "topK": "40",
            "seed": 7.0,
            "response_modalities": ["Text", "image"],
            "thinking_config": {"include_thoughts": False, "thinkingLevel": "high"},
            "stopSequences": None,
        }
    )

    response = client.post(GENERATE, json=body)

    assert response.status_code == 200, response.text


def test_latency_delays_every_answer() -> None:
    with (
        SimServer(image_scale=SCALE, latency=0.2) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        started = time.monotonic()
        http.post(GENERATE, json=request_body()).raise_for_status()

    assert time.monotonic() - started >= 0.2


def test_recorded_latencies_are_the_seeded_draws_again_after_a_reset() -> None:
    with (
        SimServer(
            image_scale=SCALE,
            latency=0.02,
            latency_jitter=0.01,
            seed=7,
            record_latencies=True,
        ) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        for _ in range(5):
            http.post(GENERATE, json=request_body()).raise_for_status()
        first = server.latencies()
        server.reset()
        for _ in range(5):
            http.post(GENERATE, json=request_body()).raise_for_status()
        again = http.get("/_sim/latencies").json()["latencies"]

    assert len(first) == 5 and len(set(first)) == 5
    assert all(0.01 <= x <= 0.03 for x in first)
    assert again == first


def test_latencies_are_not_kept_unless_asked(sim: SimServer) -> None:
    with httpx.Client(base_url=sim.url) as http:
        http.post(GENERATE, json=request_body()).raise_for_status()
    assert sim.latencies() == []


def test_reused_answers_are_the_same_bytes_for_the_same_request() -> None:
    with (
        SimServer(image_scale=SCALE, reuse_answers=True) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        first = http.post(GENERATE, json=request_body("a lighthouse"))
        second = http.post(GENERATE, json=request_body("a lighthouse"))
        other = http.post(GENERATE, json=request_body("a windmill"))
        stats = server.stats()

    assert first.content == second.content
    assert image_parts(other.json())[0]["data"] != image_parts(first.json())[0]["data"]

    # Each is counted as an answer sent, like any other.
    def tokens(response: httpx.Response) -> int:
        return int(response.json()["usageMetadata"]["totalTokenCount"])

    assert stats["images_sent"] == 3
    assert stats["usage"]["totalTokenCount"] == 2 * tokens(first) + tokens(other)


# -- models: what each one accepts -------------------------------------------------


def test_pixel_sizes_are_googles_table_for_every_model_ratio_and_size() -> None:
    cells = (
        [
            ("gemini-3.1-flash-image", ratio, size)
            for ratio in GEMINI_3_AT_1K
            for size in FLASH_SIZES
        ]
        + [
            ("gemini-3-pro-image", ratio, size)
            for ratio in GEMINI_3_AT_1K
            if ratio not in EXTREME_RATIOS
            for size in PRO_SIZES
        ]
        + [("gemini-2.5-flash-image", ratio, None) for ratio in GEMINI_2_5]
    )

    actual = {cell: image_dimensions(cell[1], cell[2], model=cell[0]) for cell in cells}

    assert actual == {cell: google_size(*cell) for cell in cells}
    assert image_dimensions("1:8", "1K") == (384, 3072)  # not 368x2896 any more


@pytest.mark.parametrize(
    ("model", "setting", "value", "message"),
    [
        (
            MODEL,
            "aspectRatio",
            "5:3",
            "* GenerateContentRequest.generation_config.image_config.aspect_ratio: "
            "aspect_ratio must be one of '1:1', '1:4', '1:8', '2:3', '3:2', '3:4', "
            "'4:1', '4:3', '4:5', '5:4', '8:1', '9:16', '16:9', or '21:9'.\n",
        ),
        (
            "gemini-3-pro-image-preview",
            "aspectRatio",
            "8:1",
            "* GenerateContentRequest.generation_config.image_config.aspect_ratio: "
            "aspect_ratio must be one of '1:1', '2:3', '3:2', '3:4', '4:3', '4:5', "
            "'5:4', '9:16', '16:9', or '21:9'.\n",
        ),
        (
            "gemini-3-pro-image-preview",
            "imageSize",
            "512",
            "* GenerateContentRequest.generation_config.image_config.image_size: "
            "image_size must be one of '1K', '2K', or '4K'.\n",
        ),
        (
            MODEL,
            "imageSize",
            "1k",
            "* GenerateContentRequest.generation_config.image_config.image_size: "
            "image_size must be one of '512', '1K', '2K', or '4K'.\n",
        ),
        (
            "gemini-2.5-flash-image",
            "imageSize",
            "1K",
            "Image size is not enabled for this model",
        ),
    ],
)
def test_a_setting_the_model_cannot_do_is_a_400(
    client: httpx.Client, model: str, setting: str, value: str, message: str
) -> None:
    body = request_body()
    body["generationConfig"]["imageConfig"][setting] = value
    path = f"/v1beta/models/{model}:generateContent"

    response = client.post(path, json=body)

    assert response.status_code == 400
    assert response.json() == {
        "error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}
    }


def test_more_than_one_candidate_is_refused_like_google(client: httpx.Client) -> None:
    body = request_body()
    body["generationConfig"]["candidateCount"] = 2

    response = client.post(GENERATE, json=body)

    assert response.status_code == 400
    assert response.json() == sample("400-google-multiple-candidates.json")


@pytest.mark.parametrize(
    ("model", "allowed"), [(MODEL, 14), ("gemini-2.5-flash-image", 3)]
)
def test_more_reference_images_than_the_model_takes_is_a_400(
    client: httpx.Client, model: str, allowed: int
) -> None:
    path = f"/v1beta/models/{model}:generateContent"
    tiny = png_bytes(8, 8)

    fits = client.post(path, json=request_body(references=[tiny] * allowed))
    over = client.post(path, json=request_body(references=[tiny] * (allowed + 1)))

    assert fits.status_code == 200
    assert over.status_code == 400
    assert f"at most {allowed}" in over.json()["error"]["message"]


def test_grounding_on_a_model_without_it_is_a_400(client: httpx.Client) -> None:
    body = {**request_body(), "tools": [{"google_search": {}}]}

    response = client.post(
        "/v1beta/models/gemini-2.5-flash-image:generateContent", json=body
    )

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Search Grounding is not supported."


def test_an_unknown_model_is_googles_404_whatever_the_header(
    client: httpx.Client,
) -> None:
    path = "/v1beta/models/gemini-3.1-flash-image-previw:generateContent"

    responses = [
        client.post(path, json=request_body(), headers=headers)
        for headers in ({"x-goog-api-key": "k"}, {"authorization": "Bearer k"})
    ]

    for response in responses:
        assert response.status_code == 404
        assert response.json() == sample("404-google-model-not-found.json")


def test_extra_models_are_served_like_flash_image() -> None:
    with (
        SimServer(image_scale=SCALE, extra_models=["relay-banana"]) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        path = "/v1beta/models/relay-banana:generateContent"
        answer = http.post(path, json=request_body(aspect_ratio="8:1")).json()

    assert answer["modelVersion"] == "relay-banana"
    assert answer_image(answer).size == image_dimensions("8:1", scale=SCALE)


@pytest.mark.parametrize(
    ("model", "tokens"),
    [(MODEL, 1120), ("gemini-3-pro-image", 560), ("gemini-2.5-flash-image", 258)],
)
def test_each_input_image_is_billed_at_the_models_rate(
    client: httpx.Client, model: str, tokens: int
) -> None:
    body = request_body("x" * 40, references=[png_bytes(8, 8), png_bytes(9, 9)])
    path = f"/v1beta/models/{model}:generateContent"

    usage = client.post(path, json=body).json()["usageMetadata"]

    assert usage["promptTokensDetails"] == [
        {"modality": "TEXT", "tokenCount": 11},
        {"modality": "IMAGE", "tokenCount": 2 * tokens},
    ]
    assert usage["promptTokenCount"] == 11 + 2 * tokens


def test_reference_image_tokens_overrides_every_models_rate() -> None:
    body = request_body(references=[png_bytes(8, 8)])
    with (
        SimServer(image_scale=SCALE, reference_image_tokens=100) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        usage = http.post(GENERATE, json=body).json()["usageMetadata"]

    assert usage["promptTokensDetails"][1] == {"modality": "IMAGE", "tokenCount": 100}


@pytest.mark.parametrize(
    ("model", "size", "tokens"),
    [
        ("gemini-3-pro-image", "2K", 1120),
        ("gemini-3-pro-image", "4K", 2000),
        ("gemini-2.5-flash-image", None, 1290),
    ],
)
def test_output_tokens_follow_the_models_table(
    client: httpx.Client, model: str, size: str | None, tokens: int
) -> None:
    path = f"/v1beta/models/{model}:generateContent"

    usage = client.post(path, json=request_body(image_size=size)).json()[
        "usageMetadata"
    ]

    assert usage["candidatesTokenCount"] == tokens


def test_a_text_part_in_the_answer_is_billed_as_text_output(
    client: httpx.Client,
) -> None:
    body = request_body(modalities=("TEXT", "IMAGE"))

    answer = client.post(GENERATE, json=body).json()

    (text,) = [
        p["text"]
        for p in answer["candidates"][0]["content"]["parts"]
        if "text" in p and not p.get("thought")
    ]
    usage = answer["usageMetadata"]
    assert usage["candidatesTokensDetails"] == [
        {"modality": "TEXT", "tokenCount": len(text) // 4 + 1},
        {"modality": "IMAGE", "tokenCount": 1120},
    ]
    assert usage["candidatesTokenCount"] == 1120 + len(text) // 4 + 1


# -- inline data: strict base64 in either alphabet -------------------------------------


def noisy_png() -> bytes:
    """A PNG whose standard base64 holds + and / (so URL-safe holds - and _)."""
    buffer = io.BytesIO()
    noise = random.Random(5).randbytes(32 * 18 * 3)
    Image.frombytes("RGB", (32, 18), noise).save(buffer, "PNG")
    data = buffer.getvalue()
    assert {"+", "/"} <= set(base64.b64encode(data).decode())
    return data


@pytest.mark.parametrize(
    "encode",
    [
        lambda d: base64.b64encode(d).decode(),
        lambda d: base64.urlsafe_b64encode(d).decode(),
        lambda d: base64.urlsafe_b64encode(d).decode().rstrip("="),
        lambda d: base64.b64encode(d).decode().rstrip("="),
    ],
    ids=["standard", "url-safe", "url-safe-unpadded", "standard-unpadded"],
)
def test_inline_data_in_either_base64_alphabet_is_accepted(
    client: httpx.Client, encode: Any
) -> None:
    body = request_body(aspect_ratio=None)
    data = noisy_png()
    body["contents"][0]["parts"].append(
        {"inlineData": {"mimeType": "image/png", "data": encode(data)}}
    )

    response = client.post(GENERATE, json=body)

    assert response.status_code == 200, response.text
    assert answer_image(response.json()).size == image_dimensions("16:9", scale=SCALE)


@pytest.mark.parametrize(
    "data",
    [
        "iVBOR+w0K_GgoAAAAN",  # both alphabets in one value
        "iVBORw0KGgo!",
        "iVBORw0KGgoA=====",
        "iVBOR w0KGgo",
        "data:image/png;base64,iVBORw0KGgo",
    ],
)
def test_data_that_is_not_base64_is_googles_400_naming_the_part(
    client: httpx.Client, data: str
) -> None:
    body = request_body()
    body["contents"][0]["parts"].append(
        {"inline_data": {"mime_type": "image/png", "data": data}}
    )

    violations = google_violations(client.post(GENERATE, json=body))

    path = "contents[0].parts[1].inline_data.data"
    assert violations == [
        {
            "field": path,
            "description": f"Invalid value at '{path}' (TYPE_BYTES), "
            f'Base64 decoding failed for "{data}"',
        }
    ]


# -- thoughts, signatures, turns and grounding -------------------------------------


def thinking_body(text: str = "a routing banner") -> dict[str, Any]:
    body = request_body(text, aspect_ratio="21:9", modalities=("TEXT", "IMAGE"))
    body["generationConfig"]["thinkingConfig"] = {"includeThoughts": True}
    return body


def test_include_thoughts_brings_two_thought_images_and_signed_final_parts(
    client: httpx.Client,
) -> None:
    answer = client.post(GENERATE, json=thinking_body()).json()

    parts = answer["candidates"][0]["content"]["parts"]
    real = sample("200-thought-images-and-signatures.json")
    real_parts = real["candidates"][0]["content"]["parts"]
    assert [sorted(p) for p in parts] == [sorted(p) for p in real_parts]
    for part in parts[1:3]:
        data = base64.b64decode(part["inlineData"]["data"])
        assert decode_image(data).size == image_dimensions("21:9", scale=SCALE)
    signatures = [p["thoughtSignature"] for p in parts if "thoughtSignature" in p]
    assert len(set(signatures)) == 2
    assert all(base64.b64decode(s, validate=True) for s in signatures)
    assert answer["usageMetadata"].keys() == real["usageMetadata"].keys()


def test_thought_images_can_be_fewer() -> None:
    with (
        SimServer(image_scale=SCALE, thought_images=1) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        answer = http.post(GENERATE, json=thinking_body()).json()

    parts = answer["candidates"][0]["content"]["parts"]
    assert [("inlineData" in p, p.get("thought", False)) for p in parts] == [
        (False, True),
        (True, True),
        (False, False),
        (True, False),
    ]


def test_a_model_that_does_not_think_sends_no_thought_images(
    client: httpx.Client,
) -> None:
    path = "/v1beta/models/gemini-2.5-flash-image:generateContent"

    answer = client.post(path, json=thinking_body()).json()

    parts = answer["candidates"][0]["content"]["parts"]
    assert not [p for p in parts if "thoughtSignature" in p]
    assert len([p for p in parts if "inlineData" in p]) == 1


def test_a_second_turn_with_the_models_signed_parts_is_answered(
    client: httpx.Client,
) -> None:
    first = client.post(GENERATE, json=thinking_body()).json()
    turn = thinking_body("now at night")
    model_turn = first["candidates"][0]["content"]
    turn["contents"] = [
        {"role": "user", "parts": [{"text": "a routing banner"}]},
        model_turn,
        *turn["contents"],
    ]

    response = client.post(GENERATE, json=turn)

    assert response.status_code == 200, response.text
    answer = response.json()
    assert len(image_parts(answer)) == 3  # two thoughts, one final
    # the model turn's three images are billed as input
    assert answer["usageMetadata"]["promptTokensDetails"][1] == {
        "modality": "IMAGE",
        "tokenCount": 3 * 1120,
    }


def second_turn(first: dict[str, Any]) -> dict[str, Any]:
    """A later turn sending `first`'s answer back as the model's turn."""
    turn = thinking_body("now at night")
    turn["contents"] = [
        {"role": "user", "parts": [{"text": "a routing banner"}]},
        first["candidates"][0]["content"],
        *turn["contents"],
    ]
    return turn


def test_a_signature_the_model_never_issued_is_googles_400(
    client: httpx.Client,
) -> None:
    turn = second_turn(client.post(GENERATE, json=thinking_body()).json())
    signed = [p for p in turn["contents"][1]["parts"] if "thoughtSignature" in p]
    signed[-1]["thoughtSignature"] = base64.b64encode(b"made up" * 7).decode()

    response = client.post(GENERATE, json=turn)

    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": 400,
        "message": "Unable to submit request because it has an invalid thought "
        "signature for content at index 1.",
        "status": "INVALID_ARGUMENT",
    }


def test_a_signature_is_recognised_in_either_base64_alphabet(
    client: httpx.Client,
) -> None:
    """google-genai sends bytes URL-safe: the same signature, spelt differently."""
    turn = second_turn(client.post(GENERATE, json=thinking_body()).json())
    for part in turn["contents"][1]["parts"]:
        if "thoughtSignature" in part:
            safe = part["thoughtSignature"].translate(str.maketrans("+/", "-_"))
            assert safe != part["thoughtSignature"]
            part["thoughtSignature"] = safe

    assert client.post(GENERATE, json=turn).status_code == 200


def test_the_signatures_remembered_are_bounded_oldest_forgotten_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server_module, "MAX_SIGNATURES", 4)  # two answers' worth
    with (
        SimServer(image_scale=SCALE) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        answers = [http.post(GENERATE, json=thinking_body()).json() for _ in range(3)]
        oldest = http.post(GENERATE, json=second_turn(answers[0]))
        newest = http.post(GENERATE, json=second_turn(answers[2]))

    assert (oldest.status_code, newest.status_code) == (400, 200)


def test_stats_show_each_turn_and_the_hash_of_each_image_sent(
    sim: SimServer, client: httpx.Client
) -> None:
    reference = png_bytes(8, 8)
    first = client.post(GENERATE, json=thinking_body()).json()
    turn = second_turn(first)
    turn["contents"][-1]["parts"].append(
        {
            "inline_data": {
                "mime_type": "image/png",
                "data": base64.b64encode(reference).decode(),
            }
        }
    )
    raw = json.dumps(turn).encode()
    client.post(GENERATE, content=raw).raise_for_status()

    body = sim.stats()["bodies"][hashlib.sha256(raw).hexdigest()]
    final = base64.b64decode(image_parts(first)[-1]["data"])
    shapes = [
        [(p["kind"], p["sha256"], p["signed"], p["thought"]) for p in turn["parts"]]
        for turn in body["contents"]
    ]
    thought_images = [
        ("image", hashlib.sha256(base64.b64decode(p["data"])).hexdigest(), False,
         True)
        for p in image_parts(first)[:-1]
    ]  # fmt: skip
    assert shapes == [
        [("text", None, False, False)],
        [
            ("text", None, False, True),
            *thought_images,
            ("text", None, True, False),
            ("image", hashlib.sha256(final).hexdigest(), True, False),
        ],
        [("text", None, False, False),
         ("image", hashlib.sha256(reference).hexdigest(), False, False)],
    ]  # fmt: skip


def test_a_signature_that_is_not_base64_is_refused(client: httpx.Client) -> None:
    body = request_body()
    body["contents"].insert(
        0, {"role": "model", "parts": [{"text": "hi", "thoughtSignature": "@@"}]}
    )

    violations = google_violations(client.post(GENERATE, json=body))

    assert violations[0]["field"] == "contents[0].parts[0].thought_signature"


@pytest.mark.parametrize("tool", [{"google_search": {}}, {"googleSearch": {}}])
def test_a_grounded_request_gets_grounding_metadata(
    client: httpx.Client, tool: dict[str, Any]
) -> None:
    body = {**request_body("a poster of today's weather in Paris"), "tools": [tool]}
    body["generationConfig"]["responseModalities"] = ["TEXT", "IMAGE"]

    answer = client.post(GENERATE, json=body).json()

    grounding = answer["candidates"][0]["groundingMetadata"]
    assert grounding["webSearchQueries"] == ["a poster of today's weather in Paris"]
    assert all(
        c["web"]["uri"].startswith("https://") and c["web"]["title"]
        for c in grounding["groundingChunks"]
    )
    (support,) = grounding["groundingSupports"]
    text = answer["candidates"][0]["content"]["parts"][1]["text"]
    assert support["segment"] == {
        "startIndex": 0,
        "endIndex": len(text.encode()),
        "text": text,
    }
    assert "<a" in grounding["searchEntryPoint"]["renderedContent"]


def test_an_ungrounded_request_has_no_grounding_metadata(
    client: httpx.Client,
) -> None:
    answer = client.post(GENERATE, json=request_body()).json()

    assert "groundingMetadata" not in answer["candidates"][0]


# -- faults: error statuses ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "real"),
    [
        ("429", 429, "429-google.json"),
        ("429-day", 429, "429-google.json"),
        ("500", 500, None),
        ("503", 503, "503-google-overloaded.json"),
        ("502-relay", 502, "502-relay-upstream.json"),
        ("504", 504, None),
        ("408", 408, None),
        ("401", 401, "401-relay.json"),
        ("403", 403, None),
        ("403-balance", 403, "403-relay-out-of-balance.json"),
        ("400", 400, "400-google-invalid-argument.json"),
    ],
)
def test_error_fault_answers_with_its_status_and_error_shape(
    sim: SimServer, client: httpx.Client, kind: str, status: int, real: str | None
) -> None:
    sim.add_fault(Fault(kind))

    response = client.post(GENERATE, json=request_body())

    assert response.status_code == status
    error = response.json()["error"]
    if real is None:  # Google shape without a stored sample
        assert {"code", "message", "status"} <= error.keys()
        assert error["code"] == status
    elif "status" in sample(real)["error"]:
        assert error.keys() == sample(real)["error"].keys()
        assert error["status"] == sample(real)["error"]["status"]
    else:  # relay shape: exactly the stored body
        assert response.json() == sample(real)


@pytest.mark.parametrize(
    ("kind", "google_status"),
    [("500", "INTERNAL"), ("504", "DEADLINE_EXCEEDED"), ("403", "PERMISSION_DENIED")],
)
def test_google_errors_carry_the_matching_status_name(
    sim: SimServer, client: httpx.Client, kind: str, google_status: str
) -> None:
    sim.add_fault(Fault(kind))

    error = client.post(GENERATE, json=request_body()).json()["error"]

    assert error["status"] == google_status


@pytest.mark.parametrize(
    ("kind", "quota_id"),
    [
        ("429", "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"),
        ("429-day", "GenerateRequestsPerDayPerProjectPerModel-FreeTier"),
    ],
)
def test_quota_faults_name_the_quota_and_default_to_a_one_second_retry(
    sim: SimServer, client: httpx.Client, kind: str, quota_id: str
) -> None:
    sim.add_fault(Fault(kind))

    details = client.post(GENERATE, json=request_body()).json()["error"]["details"]

    by_type = {d["@type"].rsplit(".", 1)[1]: d for d in details}
    assert by_type["QuotaFailure"]["violations"][0]["quotaId"] == quota_id
    assert by_type["RetryInfo"]["retryDelay"] == "1s"


def test_429_retry_after_goes_into_retry_info(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.add_fault(Fault("429", retry_after=1.5))

    response = client.post(GENERATE, json=request_body())

    assert {
        "@type": "type.googleapis.com/google.rpc.RetryInfo",
        "retryDelay": "1.5s",
    } in (response.json()["error"]["details"])


def test_503_retry_after_is_sent_as_header_and_retry_info(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.add_fault(Fault("503", retry_after=0.25))

    response = client.post(GENERATE, json=request_body())

    assert response.headers["retry-after"] == "0.25"
    assert response.json()["error"]["details"][0]["retryDelay"] == "0.25s"


def test_503_without_retry_after_has_no_header(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.add_fault(Fault("503"))

    response = client.post(GENERATE, json=request_body())

    assert "retry-after" not in response.headers
    assert response.json() == sample("503-google-overloaded.json")


# -- faults: the connection ------------------------------------------------------------


def test_hang_never_answers_and_frees_the_handler_when_the_client_leaves(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.add_fault(Fault("hang", times=1))

    with pytest.raises(httpx.ReadTimeout):
        client.post(GENERATE, json=request_body(), timeout=0.3)

    assert client.post(GENERATE, json=request_body()).status_code == 200
    # woken by the server when a request ends, rather than polling stats()
    sim.wait_until(lambda stats: stats["in_flight"] == 0, timeout=5)


def test_stop_ends_hanging_requests_promptly() -> None:
    server = SimServer(image_scale=SCALE).start()
    server.add_fault(Fault("hang"))
    errors: list[BaseException] = []

    def call() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            try:
                http.post(GENERATE, json=request_body())
            except httpx.HTTPError as exc:
                errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    server.wait_until(lambda stats: stats["in_flight"] == 1, timeout=5)
    started = time.monotonic()
    server.stop()
    thread.join(timeout=5)

    assert time.monotonic() - started < 2
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], httpx.RemoteProtocolError)


def test_wait_until_wakes_when_a_request_ends_and_times_out_otherwise(
    sim: SimServer, client: httpx.Client
) -> None:
    # slow, so that the request ends after the wait has started
    text = "a cat [sim:slow delay=0.3]"
    statuses: list[int] = []
    thread = threading.Thread(
        target=lambda: statuses.append(
            client.post(GENERATE, json=request_body(text)).status_code
        )
    )

    with pytest.raises(TimeoutError, match="'requests': 0"):
        sim.wait_until(lambda stats: stats["requests"] == 1, timeout=0.05)
    thread.start()
    stats = sim.wait_until(lambda stats: stats["images_sent"] == 1, timeout=5)
    thread.join(timeout=5)

    assert (stats["requests"], stats["in_flight"]) == (1, 0)
    assert statuses == [200]


def test_slow_answers_normally_after_the_delay(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.add_fault(Fault("slow", delay=0.3))

    started = time.monotonic()
    response = client.post(GENERATE, json=request_body())

    assert time.monotonic() - started >= 0.3
    assert response.status_code == 200
    assert answer_image(response.json())


def test_drop_closes_the_connection_without_a_response(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.add_fault(Fault("drop", times=1))

    with pytest.raises(httpx.RemoteProtocolError, match="without sending"):
        client.post(GENERATE, json=request_body())
    assert client.post(GENERATE, json=request_body()).status_code == 200


def test_drop_mid_body_sends_half_the_declared_body_then_closes(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.add_fault(Fault("drop-mid-body"))

    with pytest.raises(httpx.RemoteProtocolError, match="incomplete|complete message"):
        client.post(GENERATE, json=request_body())


def test_truncated_is_a_well_framed_200_with_half_a_json_body(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.add_fault(Fault("truncated"))

    response = client.post(GENERATE, json=request_body())

    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.content.startswith(b'{"candidates"')
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_non_json_is_a_200_html_page(sim: SimServer, client: httpx.Client) -> None:
    sim.add_fault(Fault("non-json"))

    response = client.post(GENERATE, json=request_body())

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text == "<html><body>Bad gateway</body></html>"


# -- faults: odd success bodies --------------------------------------------------------


def test_bad_base64_carries_image_data_that_does_not_decode(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.add_fault(Fault("bad-base64"))

    (inline,) = image_parts(client.post(GENERATE, json=request_body()).json())

    for validate in (True, False):
        with pytest.raises(binascii.Error):
            base64.b64decode(inline["data"], validate=validate)


def test_huge_pads_the_answer_to_about_the_given_size(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.add_fault(Fault("huge", size=2_000_000))

    response = client.post(GENERATE, json=request_body())

    assert abs(len(response.content) - 2_000_000) < 2_000
    assert answer_image(response.json())


def test_no_mime_sends_inline_data_without_a_mime_type(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.add_fault(Fault("no-mime"))

    answer = client.post(GENERATE, json=request_body()).json()

    assert "mimeType" not in image_parts(answer)[0]
    assert answer_image(answer).format == "PNG"


def test_wrong_mime_declares_jpeg_but_carries_png(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.add_fault(Fault("wrong-mime"))

    answer = client.post(GENERATE, json=request_body()).json()

    assert image_parts(answer)[0]["mimeType"] == "image/jpeg"
    assert answer_image(answer).format == "PNG"


def test_blocked_prompt_has_a_block_reason_and_usage(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.add_fault(Fault("blocked-prompt"))

    answer = client.post(GENERATE, json=request_body()).json()

    assert (
        answer["promptFeedback"] == sample("200-prompt-blocked.json")["promptFeedback"]
    )
    assert "candidates" not in answer
    assert answer["usageMetadata"]["promptTokenCount"] > 0


def test_blocked_finish_is_image_safety_without_content(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.add_fault(Fault("blocked-finish"))

    answer = client.post(GENERATE, json=request_body()).json()

    assert answer["candidates"] == sample("200-image-safety.json")["candidates"]
    assert answer["usageMetadata"]["totalTokenCount"] > 0


def test_text_only_answers_stop_with_text_and_no_image(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.add_fault(Fault("text-only"))

    answer = client.post(GENERATE, json=request_body()).json()

    (candidate,) = answer["candidates"]
    assert candidate["finishReason"] == "STOP"
    assert [list(p) for p in candidate["content"]["parts"]] == [["text"]]
    assert answer["usageMetadata"]["candidatesTokenCount"] > 0


def test_no_image_finish_has_no_parts(sim: SimServer, client: httpx.Client) -> None:
    sim.add_fault(Fault("no-image-finish"))

    answer = client.post(GENERATE, json=request_body()).json()

    assert answer["candidates"] == [{"finishReason": "NO_IMAGE", "index": 0}]
    assert "usageMetadata" in answer


def test_empty_candidates_still_reports_usage(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.add_fault(Fault("empty-candidates"))

    answer = client.post(GENERATE, json=request_body()).json()

    assert answer["candidates"] == []
    assert answer["usageMetadata"]["promptTokenCount"] > 0


def test_relay_markdown_puts_a_real_png_data_uri_in_a_text_part(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.add_fault(Fault("relay-markdown"))

    answer = client.post(GENERATE, json=request_body()).json()

    (part,) = answer["candidates"][0]["content"]["parts"]
    found = re.fullmatch(r"!\[image\]\(data:image/png;base64,([^)]+)\)", part["text"])
    assert found is not None
    assert decode_image(base64.b64decode(found.group(1))).size == (64, 64)


def test_relay_url_links_a_png_that_can_be_fetched_once(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.add_fault(Fault("relay-url"))

    answer = client.post(GENERATE, json=request_body()).json()

    (part,) = answer["candidates"][0]["content"]["parts"]
    found = re.fullmatch(
        r"!\[image\]\((http://127\.0\.0\.1:\d+/files/\w+\.png)\)", part["text"]
    )
    assert found is not None
    first = client.get(found.group(1))
    assert first.headers["content-type"] == "image/png"
    assert decode_image(first.content).size == (64, 64)
    assert client.get(found.group(1)).status_code == 404


# -- faults: answers that stop a whole run on the real API --------------------------


@pytest.mark.parametrize(
    ("kind", "status", "real"),
    [
        ("key-invalid", 400, "400-google-api-key-invalid.json"),
        ("permission-denied", 403, "403-google-permission-denied.json"),
        ("location", 400, "400-google-location-not-supported.json"),
    ],
)
def test_run_fatal_faults_answer_googles_body(
    sim: SimServer, client: httpx.Client, kind: str, status: int, real: str
) -> None:
    sim.add_fault(Fault(kind))

    response = client.post(GENERATE, json=request_body())

    assert response.status_code == status
    assert response.json() == sample(real)


def test_model_not_found_names_the_model_and_version_of_the_url(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.add_fault(Fault("model-not-found"))
    path = "/v1beta/models/gemini-3.1-flash-image-previw:generateContent"

    response = client.post(path, json=request_body())

    assert response.status_code == 404
    assert response.json() == sample("404-google-model-not-found.json")


def test_429_limit_0_is_a_free_tier_quota_of_zero_with_a_retry_hint(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.add_fault(Fault("429-limit-0", retry_after=2))
    path = "/v1beta/models/gemini-3.1-flash-image:generateContent"

    error = client.post(path, json=request_body()).json()["error"]

    real = sample("429-google-free-tier-limit-0.json")["error"]
    assert error["message"] == real["message"]
    assert error["status"] == "RESOURCE_EXHAUSTED"
    by_type = {d["@type"].rsplit(".", 1)[1]: d for d in error["details"]}
    real_by_type = {d["@type"].rsplit(".", 1)[1]: d for d in real["details"]}
    assert by_type["QuotaFailure"] == real_by_type["QuotaFailure"]
    assert by_type["Help"] == real_by_type["Help"]
    assert by_type["RetryInfo"]["retryDelay"] == "2s"


def test_image_recitation_is_a_200_without_an_image(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.add_fault(Fault("image-recitation"))

    answer = client.post(GENERATE, json=request_body()).json()

    assert answer["candidates"] == [{"finishReason": "IMAGE_RECITATION", "index": 0}]
    assert answer["usageMetadata"]["promptTokenCount"] > 0
    assert sim.stats()["images_sent"] == 0


def test_relay_inline_dead_url_holds_one_image_and_a_link_that_answers_404(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.add_fault(Fault("relay-inline-dead-url"))

    answer = client.post(GENERATE, json=request_body()).json()

    text, image = answer["candidates"][0]["content"]["parts"]
    found = re.fullmatch(
        r"!\[image\]\((http://127\.0\.0\.1:\d+/files/\w+\.png)\)", text["text"]
    )
    assert found is not None
    assert client.get(found.group(1)).status_code == 404
    assert answer_image(answer).size == (64, 64)
    assert sim.stats()["images_sent"] == 1


def test_every_fault_kind_is_known_to_fault() -> None:
    for kind in FAULT_KINDS:
        assert Fault(kind).kind == kind
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("418")
    with pytest.raises(ValueError, match="rate"):
        Fault("500", rate=1.5)


# -- choosing faults -------------------------------------------------------------------


def test_prompt_directive_applies_to_every_request(client: httpx.Client) -> None:
    body = request_body("a banner [sim:503]")

    statuses = [client.post(GENERATE, json=body).status_code for _ in range(3)]

    assert statuses == [503, 503, 503]


def test_counted_directive_applies_to_the_first_n_requests_of_that_body(
    client: httpx.Client,
) -> None:
    body = request_body("a banner [sim:500*2]")
    other = request_body("a banner [sim:500*2]", aspect_ratio="16:9")

    statuses = [client.post(GENERATE, json=body).status_code for _ in range(4)]

    assert statuses == [500, 500, 200, 200]
    assert client.post(GENERATE, json=other).status_code == 500


def test_directive_parameters_set_retry_after_and_delay(
    client: httpx.Client,
) -> None:
    quota = client.post(GENERATE, json=request_body("x [sim:429 retry_after=0.25]"))
    started = time.monotonic()
    slow = client.post(GENERATE, json=request_body("y [sim:slow delay=0.2]"))

    assert quota.json()["error"]["details"][1]["retryDelay"] == "0.25s"
    assert slow.status_code == 200 and time.monotonic() - started >= 0.2


def test_unknown_directive_kind_is_a_400_that_says_so(client: httpx.Client) -> None:
    response = client.post(GENERATE, json=request_body("x [sim:teapot]"))

    assert response.status_code == 400
    assert "teapot" in response.json()["error"]["message"]


def test_directive_wins_over_rules(sim: SimServer, client: httpx.Client) -> None:
    sim.add_fault(Fault("500"))

    assert client.post(GENERATE, json=request_body("[sim:503]")).status_code == 503


def test_rule_times_limits_how_often_it_fires(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.add_fault(Fault("500", times=2))

    statuses = [
        client.post(GENERATE, json=request_body()).status_code for _ in range(3)
    ]

    assert statuses == [500, 500, 200]


def test_rule_match_only_hits_prompts_containing_it(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.add_fault(Fault("503", match="zebra"))

    assert client.post(GENERATE, json=request_body("a zebra")).status_code == 503
    assert client.post(GENERATE, json=request_body("a horse")).status_code == 200


def test_first_matching_rule_wins(sim: SimServer, client: httpx.Client) -> None:
    sim.add_fault(Fault("500", match="cat"))
    sim.add_fault(Fault("503"))

    assert client.post(GENERATE, json=request_body("a cat")).status_code == 500
    assert client.post(GENERATE, json=request_body("a dog")).status_code == 503


def test_rule_with_rate_zero_never_fires(sim: SimServer, client: httpx.Client) -> None:
    sim.add_fault(Fault("500", rate=0.0))

    statuses = {
        client.post(GENERATE, json=request_body()).status_code for _ in range(5)
    }

    assert statuses == {200}


def test_random_faults_follow_the_rate_and_repeat_with_the_seed() -> None:
    def run(http: httpx.Client) -> list[int]:
        return [
            http.post(GENERATE, json=request_body()).status_code for _ in range(200)
        ]

    with (
        SimServer(image_scale=SCALE, fault_rate=0.25, fault_mix=["500"], seed=7) as srv,
        httpx.Client(base_url=srv.url) as http,
    ):
        first = run(http)
        srv.reset()
        second = run(http)

    assert set(first) == {200, 500}
    assert 30 <= first.count(500) <= 70
    assert first == second


# -- statistics ------------------------------------------------------------------------


def test_stats_count_each_body_and_its_successes(
    sim: SimServer, client: httpx.Client
) -> None:
    raw = json.dumps(request_body("a lighthouse", image_size="2K")).encode()
    text_only = json.dumps(request_body("a fox")).encode()
    sim.add_fault(Fault("text-only", match="fox"))
    headers = {"content-type": "application/json", "authorization": "Bearer k"}

    for _ in range(2):
        client.post(GENERATE, content=raw, headers=headers).raise_for_status()
    client.post(GENERATE, content=text_only).raise_for_status()

    stats = sim.stats()
    lighthouse = stats["bodies"][hashlib.sha256(raw).hexdigest()]
    assert lighthouse == {
        "received": 2,
        "succeeded": 2,
        "text": "a lighthouse",
        "aspect_ratio": "1:1",
        "image_size": "2K",
        "auth": "bearer",
        "contents": (
            {
                "role": "user",
                "parts": (
                    {
                        "kind": "text",
                        "sha256": None,
                        "mime_type": None,
                        "signed": False,
                        "thought": False,
                    },
                ),
            },
        ),
    }
    fox = stats["bodies"][hashlib.sha256(text_only).hexdigest()]
    assert (fox["received"], fox["succeeded"], fox["auth"]) == (1, 0, None)
    assert stats["requests"] == 3
    assert stats["images_sent"] == 2
    assert stats["by_status"] == {200: 3}
    assert stats["by_kind"] == {"ok": 2, "text-only": 1}


def test_stats_usage_sums_every_answer_that_carried_usage(
    sim: SimServer, client: httpx.Client
) -> None:
    sim.add_fault(Fault("blocked-prompt", times=1))
    sim.add_fault(Fault("500", times=1))
    usages = []
    for _ in range(4):
        answer = client.post(GENERATE, json=request_body()).json()
        usages.append(answer.get("usageMetadata", {}))

    usage = sim.stats()["usage"]

    for name in ("promptTokenCount", "candidatesTokenCount", "totalTokenCount"):
        assert usage[name] == sum(u.get(name, 0) for u in usages)
    assert usage["candidatesTokenCount"] == 2 * 1120


@pytest.mark.parametrize("kind", ["drop-mid-body", "truncated", "bad-base64"])
def test_answers_without_a_usable_image_do_not_count_as_succeeded(
    sim: SimServer, client: httpx.Client, kind: str
) -> None:
    sim.add_fault(Fault(kind))
    raw = json.dumps(request_body()).encode()

    try:
        client.post(GENERATE, content=raw)
    except httpx.RemoteProtocolError:
        pass

    body = sim.stats()["bodies"][hashlib.sha256(raw).hexdigest()]
    assert (body["received"], body["succeeded"]) == (1, 0)
    assert sim.stats()["images_sent"] == 0


def test_many_concurrent_connections_are_served_in_parallel(sim: SimServer) -> None:
    body = json.dumps(request_body("[sim:slow delay=0.5]")).encode()
    head = (
        f"POST {GENERATE} HTTP/1.1\r\nHost: sim\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    sockets = [
        socket.create_connection(address_of(sim), timeout=10) for _ in range(130)
    ]
    try:
        started = time.monotonic()
        for sock in sockets:
            sock.sendall(head + body)
        statuses = [read_response(sock)[0] for sock in sockets]
        elapsed = time.monotonic() - started
    finally:
        for sock in sockets:
            sock.close()

    assert statuses == [200] * 130
    assert elapsed < 5
    assert sim.stats()["max_in_flight"] >= 128


# -- HTTP details ----------------------------------------------------------------------


def test_keep_alive_serves_many_requests_on_one_connection(
    sim: SimServer, client: httpx.Client
) -> None:
    for _ in range(20):
        client.post(GENERATE, json=request_body()).raise_for_status()

    assert sim.stats()["connections"] == 1


def test_connection_close_is_honoured(sim: SimServer, client: httpx.Client) -> None:
    headers = {"connection": "close"}

    responses = [
        client.post(GENERATE, json=request_body(), headers=headers) for _ in range(2)
    ]

    assert [r.headers["connection"] for r in responses] == ["close", "close"]
    assert sim.stats()["connections"] == 2


def test_post_without_content_length_gets_411(sim: SimServer) -> None:
    request = f"POST {GENERATE} HTTP/1.1\r\nHost: sim\r\n\r\n".encode()

    status, headers, _ = raw_exchange(address_of(sim), request)

    assert status == 411
    assert headers["connection"] == "close"


def test_chunked_upload_gets_411(sim: SimServer) -> None:
    request = (
        f"POST {GENERATE} HTTP/1.1\r\nHost: sim\r\n"
        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ).encode()

    assert raw_exchange(address_of(sim), request)[0] == 411


def test_body_over_64_mib_gets_413_without_being_read(sim: SimServer) -> None:
    request = (
        f"POST {GENERATE} HTTP/1.1\r\nHost: sim\r\n"
        f"Content-Length: {64 * 1024 * 1024 + 1}\r\n\r\n"
    ).encode()

    assert raw_exchange(address_of(sim), request)[0] == 413


def test_garbage_gets_400_and_the_server_keeps_serving(
    sim: SimServer, client: httpx.Client
) -> None:
    status, _, _ = raw_exchange(address_of(sim), b"\x00\xffHELLO THERE\r\n\r\n")

    assert status == 400
    assert client.post(GENERATE, json=request_body()).status_code == 200


def test_client_leaving_mid_request_does_not_disturb_the_server(
    sim: SimServer, client: httpx.Client
) -> None:
    with socket.create_connection(address_of(sim)) as sock:
        head = f"POST {GENERATE} HTTP/1.1\r\nHost: sim\r\nContent-Length: 1000\r\n\r\n"
        sock.sendall(head.encode() + b"{")
    with socket.create_connection(address_of(sim)) as sock:
        sock.sendall(b"POST /v1beta/models/m:generateCon")

    assert client.post(GENERATE, json=request_body()).status_code == 200
    assert sim.stats()["requests"] == 1


# -- auth ------------------------------------------------------------------------------


def test_with_an_api_key_only_the_right_key_in_either_header_is_accepted() -> None:
    secret = "sk-sim-secret-value"
    attempts = {
        "none": {},
        "wrong": {"authorization": "Bearer nope"},
        "wrong-goog": {"x-goog-api-key": "nope"},
        "bearer": {"authorization": f"Bearer {secret}"},
        "goog": {"x-goog-api-key": secret},
    }
    with (
        SimServer(image_scale=SCALE, api_key=secret) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        responses = {
            name: http.post(GENERATE, json=request_body(name), headers=headers)
            for name, headers in attempts.items()
        }
        stats = server.stats()

    assert {n: r.status_code for n, r in responses.items()} == {
        "none": 401,
        "wrong": 401,
        "wrong-goog": 400,
        "bearer": 200,
        "goog": 200,
    }
    assert responses["none"].json() == sample("401-relay.json")
    assert responses["wrong"].json() == sample("401-relay.json")
    # Google's own header gets Google's answer to a bad key: a 400, not a 401
    assert responses["wrong-goog"].json() == sample("400-google-api-key-invalid.json")
    assert {b["text"]: b["auth"] for b in stats["bodies"].values()} == {
        "none": None,
        "wrong": "bearer",
        "wrong-goog": "goog",
        "bearer": "bearer",
        "goog": "goog",
    }
    assert secret not in repr(stats) and "nope" not in repr(stats)


def test_without_an_api_key_any_or_no_key_is_accepted(client: httpx.Client) -> None:
    response = client.post(
        GENERATE, json=request_body(), headers={"x-goog-api-key": "k"}
    )

    assert response.status_code == 200


# -- remote control --------------------------------------------------------------------


def test_control_endpoints_add_faults_report_stats_and_reset(
    client: httpx.Client,
) -> None:
    rules = [{"kind": "503", "times": 1}, {"kind": "500", "match": "zebra"}]

    added = client.post("/_sim/faults", json=rules)
    statuses = [
        client.post(GENERATE, json=request_body(text)).status_code
        for text in ("a cat", "a cat", "a zebra")
    ]
    stats = client.get("/_sim/stats").json()
    client.post("/_sim/reset").raise_for_status()
    after_reset = client.post(GENERATE, json=request_body("a zebra")).status_code

    assert added.json() == {"ok": True, "rules": 2}
    assert statuses == [503, 200, 500]
    assert stats["requests"] == 3
    assert stats["by_status"] == {"200": 1, "500": 1, "503": 1}
    assert after_reset == 200
    assert client.get("/_sim/stats").json()["requests"] == 1


def test_control_endpoint_accepts_a_single_rule_with_parameters(
    client: httpx.Client,
) -> None:
    client.post("/_sim/faults", json={"kind": "429", "retry_after": 2})

    error = client.post(GENERATE, json=request_body()).json()["error"]

    assert error["details"][1]["retryDelay"] == "2s"


@pytest.mark.parametrize(
    "rule", [{"kind": "teapot"}, {"kind": "500", "bogus": 1}, {"times": 1}, [1]]
)
def test_control_endpoint_rejects_invalid_rules(
    client: httpx.Client, rule: object
) -> None:
    response = client.post("/_sim/faults", json=rule)

    assert response.status_code == 400


# -- python -m runner.simulate ---------------------------------------------------------


def test_module_main_serves_until_terminated() -> None:
    flags = [
        "--image-scale",
        "0.0625",
        "--seed",
        "1",
        "--extra-models",
        "relay-banana,other",
        "--thought-images",
        "1",
        "--reference-image-tokens",
        "7",
    ]
    body = thinking_body()
    reference = base64.b64encode(png_bytes(8, 8)).decode()
    body["contents"][0]["parts"].append(
        {"inlineData": {"mimeType": "image/png", "data": reference}}
    )
    with module_main(*flags) as url, httpx.Client(base_url=url) as http:
        response = http.post(GENERATE, json=request_body())
        extra = http.post("/v1beta/models/relay-banana:generateContent", json=body)

    assert response.status_code == 200
    assert answer_image(response.json()).size == (64, 64)
    assert extra.status_code == 200, extra.text
    answer = extra.json()
    assert len(image_parts(answer)) == 2  # one thought image, one final
    assert answer["usageMetadata"]["promptTokensDetails"][1]["tokenCount"] == 7


# -- rate limit and realistic sizes ------------------------------------------------


def test_past_the_rpm_limit_the_server_answers_429_with_a_retry_hint() -> None:
    with (
        SimServer(rpm_limit=3, image_scale=0.0625) as sim,
        httpx.Client(base_url=sim.url, timeout=10) as http,
    ):
        codes = [
            http.post(GENERATE, json=request_body(f"n{i}")).status_code
            for i in range(5)
        ]
        refused = http.post(GENERATE, json=request_body("again"))
        stats = sim.stats()
    assert codes == [200, 200, 200, 429, 429]
    delay = refused.json()["error"]["details"][-1]["retryDelay"]
    assert 55 < float(delay.rstrip("s")) <= 60
    assert stats["by_kind"]["rate-limited"] == 3


def test_padded_images_are_as_large_as_asked_and_still_decode() -> None:
    with (
        SimServer(image_pad_bytes=2_000_000, image_scale=0.0625) as sim,
        httpx.Client(base_url=sim.url, timeout=10) as http,
    ):
        answer = http.post(GENERATE, json=request_body()).json()
    (inline,) = image_parts(answer)
    data = base64.b64decode(inline["data"])
    assert 2_000_000 < len(data) < 2_100_000
    image = decode_image(data)
    image.load()
    assert image.size == (64, 64)
