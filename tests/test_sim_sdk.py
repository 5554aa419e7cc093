"""The simulated API driven by Google's own SDK (google-genai), a client nobody here
wrote: what it sends must be accepted, what it gets back must parse, and every error
class must raise the SDK's exception with the code and status the real API gives."""

from __future__ import annotations

import base64
import io
import random
from typing import TYPE_CHECKING, Any

import pytest
from google import genai
from google.genai import errors, types
from PIL import Image

from runner.simulate import SimServer
from tests.google_sizes import (
    EXTREME_RATIOS,
    FLASH_SIZES,
    GEMINI_2_5,
    GEMINI_3_AT_1K,
    PRO_SIZES,
    google_size,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

KEY = "sim-sdk-key"
FLASH = "gemini-3.1-flash-image-preview"
PRO = "gemini-3-pro-image-preview"
OLD = "gemini-2.5-flash-image"
SCALE = 1 / 16
CELLS = (
    [(FLASH, ratio, size) for ratio in GEMINI_3_AT_1K for size in FLASH_SIZES]
    + [
        (PRO, ratio, size)
        for ratio in GEMINI_3_AT_1K
        if ratio not in EXTREME_RATIOS
        for size in PRO_SIZES
    ]
    + [(OLD, ratio, None) for ratio in GEMINI_2_5]
)


@pytest.fixture(scope="module")
def keyed_sim() -> Iterator[SimServer]:
    """A simulator that requires KEY, with images at 1/16 of Google's size."""
    with SimServer(image_scale=SCALE, api_key=KEY) as server:
        yield server


@pytest.fixture
def sim(keyed_sim: SimServer) -> SimServer:
    keyed_sim.reset()
    return keyed_sim


@pytest.fixture
def connect(sim: SimServer) -> Iterator[Callable[..., genai.Client]]:
    """Makes SDK clients for the simulator (closed after the test)."""
    made: list[genai.Client] = []

    def make(key: str = KEY, api_version: str | None = None) -> genai.Client:
        options = types.HttpOptions(
            base_url=sim.url, api_version=api_version, timeout=10_000
        )
        made.append(genai.Client(api_key=key, http_options=options))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(connect: Callable[..., genai.Client]) -> genai.Client:
    return connect()


def image_config(ratio: str, size: str | None = None) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(
        response_modalities=["IMAGE"],
        image_config=types.ImageConfig(aspect_ratio=ratio, image_size=size),
    )


def final_images(response: types.GenerateContentResponse) -> list[Image.Image]:
    """The answer's non-thought images, decoded from the bytes the SDK parsed."""
    found: list[Image.Image] = []
    for part in response.parts or []:
        if part.inline_data is not None and not part.thought:
            assert part.inline_data.data is not None
            found.append(Image.open(io.BytesIO(part.inline_data.data)))
    return found


def googles_size(model: str, ratio: str, size: str | None) -> tuple[int, int]:
    """Google's size for the cell, at the simulator's SCALE."""
    width, height = google_size(model, ratio, size)
    return max(8, round(width * SCALE)), max(8, round(height * SCALE))


def raised(call: Any) -> errors.APIError:
    with pytest.raises(errors.APIError) as caught:
        call()
    return caught.value


# -- images -----------------------------------------------------------------------


def test_every_ratio_and_size_of_every_model_has_googles_pixel_size(
    client: genai.Client,
) -> None:
    sizes = {}
    for model, ratio, size in CELLS:
        response = client.models.generate_content(
            model=model, contents=f"{ratio} {size}", config=image_config(ratio, size)
        )
        (image,) = final_images(response)
        sizes[model, ratio, size] = image.size

    assert sizes == {cell: googles_size(*cell) for cell in CELLS}


def test_reference_images_in_the_sdks_url_safe_base64_are_accepted(
    client: genai.Client, sim: SimServer
) -> None:
    noise = random.Random(3).randbytes(48 * 27 * 3)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (48, 27), noise).save(buffer, "PNG")
    data = buffer.getvalue()
    # the point of the test: standard base64 of this image holds + or /
    assert set(base64.b64encode(data).decode()) & {"+", "/"}

    contents = types.Content(
        role="user",
        parts=[
            types.Part.from_bytes(data=data, mime_type="image/png"),
            types.Part(text="this logo on a mug"),
        ],
    )

    response = client.models.generate_content(
        model=FLASH,
        contents=contents,
        config=types.GenerateContentConfig(response_modalities=["IMAGE"]),
    )

    (image,) = final_images(response)
    # no ratio asked: the reference's 16:9 decides
    assert image.size == googles_size(FLASH, "16:9", "1K")
    usage = response.usage_metadata
    assert usage is not None and usage.prompt_tokens_details is not None
    by_modality = {d.modality: d.token_count for d in usage.prompt_tokens_details}
    assert by_modality[types.MediaModality.IMAGE] == 1120


def test_thought_images_and_signatures_come_with_include_thoughts(
    client: genai.Client,
) -> None:
    config = types.GenerateContentConfig(
        response_modalities=["TEXT", "IMAGE"],
        image_config=types.ImageConfig(aspect_ratio="21:9"),
        thinking_config=types.ThinkingConfig(include_thoughts=True),
    )

    response = client.models.generate_content(
        model=FLASH, contents="a routing banner", config=config
    )

    parts = response.parts or []
    thoughts = [p for p in parts if p.thought]
    assert [p.inline_data is not None for p in thoughts] == [False, True, True]
    final = [p for p in parts if not p.thought]
    assert [p.text is not None for p in final] == [True, False]
    assert all(p.thought_signature for p in final)
    assert not any(p.thought_signature for p in thoughts)
    assert len(final_images(response)) == 1


def test_without_include_thoughts_there_are_no_thought_images(
    client: genai.Client,
) -> None:
    response = client.models.generate_content(
        model=FLASH, contents="a cat", config=image_config("1:1")
    )

    assert not [p for p in response.parts or [] if p.thought and p.inline_data]


def test_a_second_turn_sends_the_signatures_back_and_is_answered(
    client: genai.Client, sim: SimServer
) -> None:
    config = types.GenerateContentConfig(
        response_modalities=["TEXT", "IMAGE"],
        thinking_config=types.ThinkingConfig(include_thoughts=True),
    )
    first = client.models.generate_content(
        model=PRO, contents="a lighthouse", config=config
    )
    assert first.candidates and first.candidates[0].content
    history = [
        types.Content(role="user", parts=[types.Part(text="a lighthouse")]),
        first.candidates[0].content,
        types.Content(role="user", parts=[types.Part(text="now at night")]),
    ]

    second = client.models.generate_content(model=PRO, contents=history, config=config)

    assert len(final_images(second)) == 1
    assert sim.stats()["by_status"] == {200: 2}


def test_a_grounded_request_gets_grounding_metadata(client: genai.Client) -> None:
    config = types.GenerateContentConfig(
        response_modalities=["TEXT", "IMAGE"],
        tools=[types.Tool(google_search=types.GoogleSearch())],
    )

    response = client.models.generate_content(
        model=FLASH, contents="today's weather in Paris as a poster", config=config
    )

    assert response.candidates
    grounding = response.candidates[0].grounding_metadata
    assert grounding is not None
    assert grounding.web_search_queries
    assert grounding.grounding_chunks
    for chunk in grounding.grounding_chunks:
        assert chunk.web is not None and chunk.web.uri and chunk.web.title
    assert grounding.grounding_supports
    entry = grounding.search_entry_point
    assert entry is not None and entry.rendered_content


# -- errors: the SDK's exception with the real API's code and status ---------------


def test_a_bad_key_is_googles_400_api_key_invalid(
    connect: Callable[..., genai.Client],
) -> None:
    bad = connect(key="not-the-key")

    error = raised(lambda: bad.models.generate_content(model=FLASH, contents="a cat"))

    assert isinstance(error, errors.ClientError)
    assert (error.code, error.status) == (400, "INVALID_ARGUMENT")
    assert error.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"


def test_an_unknown_model_is_googles_404(client: genai.Client) -> None:
    error = raised(
        lambda: client.models.generate_content(
            model="gemini-3.1-flash-image-previw", contents="a cat"
        )
    )

    assert isinstance(error, errors.ClientError)
    assert (error.code, error.status) == (404, "NOT_FOUND")
    assert error.message is not None
    assert error.message.startswith("models/gemini-3.1-flash-image-previw is not found")


def test_more_than_one_candidate_is_refused(client: genai.Client) -> None:
    config = types.GenerateContentConfig(candidate_count=2)

    error = raised(
        lambda: client.models.generate_content(
            model=FLASH, contents="a cat", config=config
        )
    )

    assert isinstance(error, errors.ClientError)
    assert (error.code, error.status) == (400, "INVALID_ARGUMENT")
    assert error.message == "Multiple candidates is not enabled for this model"


@pytest.mark.parametrize(
    ("kind", "code", "status"),
    [
        ("permission-denied", 403, "PERMISSION_DENIED"),
        ("location", 400, "FAILED_PRECONDITION"),
        ("429-limit-0", 429, "RESOURCE_EXHAUSTED"),
        ("key-invalid", 400, "INVALID_ARGUMENT"),
    ],
)
def test_run_fatal_answers_raise_the_sdks_client_error(
    client: genai.Client, kind: str, code: int, status: str
) -> None:
    error = raised(
        lambda: client.models.generate_content(
            model=FLASH, contents=f"a cat [sim:{kind}]"
        )
    )

    assert isinstance(error, errors.ClientError)
    assert (error.code, error.status) == (code, status)


def test_429_limit_0_names_a_quota_of_zero(client: genai.Client) -> None:
    error = raised(
        lambda: client.models.generate_content(
            model=FLASH, contents="a cat [sim:429-limit-0]"
        )
    )

    details = error.details["error"]["details"]
    (quota,) = [d for d in details if d["@type"].endswith("QuotaFailure")]
    assert {v["quotaValue"] for v in quota["violations"]} == {"0"}
    assert any(d["@type"].endswith("RetryInfo") for d in details)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"imageSizes": "1K"},
            'Invalid JSON payload received. Unknown name "imageSizes" at '
            "'generation_config': Cannot find field.",
        ),
        (
            {"temperature": "hot"},
            "Invalid value at 'generation_config.temperature' (TYPE_FLOAT), \"hot\"",
        ),
    ],
)
def test_a_bad_generation_setting_is_a_400_naming_the_field(
    client: genai.Client, extra: dict[str, Any], message: str
) -> None:
    config = types.GenerateContentConfig(
        http_options=types.HttpOptions(extra_body={"generationConfig": extra})
    )

    error = raised(
        lambda: client.models.generate_content(
            model=FLASH, contents="a cat", config=config
        )
    )

    assert isinstance(error, errors.ClientError)
    assert (error.code, error.status, error.message) == (
        400,
        "INVALID_ARGUMENT",
        message,
    )


def test_a_path_no_api_serves_is_a_404_client_error(
    connect: Callable[..., genai.Client],
) -> None:
    lost = connect(api_version="v2")

    error = raised(lambda: lost.models.generate_content(model=FLASH, contents="a"))

    assert isinstance(error, errors.ClientError)
    assert error.code == 404
