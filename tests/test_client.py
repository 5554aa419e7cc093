"""client: the generateContent body, headers, and SPEC section 1 classification.

Every scenario is one small `httpx.MockTransport` handler, plugged in as the network
of the production client (`make_http_client(transport=...)`), so each call takes the
path a run takes: the sharded pool's direct send. The end-to-end path over real
sockets belongs to the simulator tests.
"""

from __future__ import annotations

import base64
import email.utils
import json
import secrets
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from runner import __version__, client
from runner.client import Endpoint, Kind, Outcome, relay
from runner.client import answer as answer_module
from runner.client import blobs as blobs_module
from runner.client import request as request_module
from runner.client import transport as transport_module
from runner.client.blobs import BlobExtractor
from runner.lineage import FILE, Turn
from runner.plan import Request
from runner.simulate import Fault, SimServer
from runner.spec import Reference

SAMPLES = Path(__file__).parent / "data" / "api-samples"
KEY = "sk-test-Secret0123456789abcdef"
BASE = "https://relay.example"
MODEL = "gemini-3.1-flash-image-preview"
PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLv"
    "AAAAAElFTkSuQmCC"
)
PNG = base64.b64decode(PNG_B64)
GENERATE_URL = f"{BASE}/v1beta/models/{MODEL}:generateContent"

Handler = (
    Callable[[httpx.Request], httpx.Response]
    | Callable[[httpx.Request], Coroutine[Any, Any, httpx.Response]]
)


Resolves = dict[str, list[str]]


@pytest.fixture
def resolves(monkeypatch: pytest.MonkeyPatch) -> Resolves:
    """A table of what host names resolve to, standing in for DNS (names not in
    it do not resolve): link checks resolve every host they do not know."""
    table: Resolves = {}

    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(f"[Errno -2] Name or service not known: {host!r}")
        return table[host]

    monkeypatch.setattr(relay, "resolve", resolve)
    return table


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


def make_request(**changes: Any) -> Request:
    fields: dict[str, Any] = {
        "model": MODEL,
        "text": "A cat astronaut",
        "aspect_ratio": "1:1",
        "image_size": "1K",
        "references": (),
        "generation": {},
        "system_instruction": None,
        "safety_settings": None,
    }
    fields.update(changes)
    return Request(**fields)


def make_reference(path: str = "refs/logo.png", mime: str = "image/png") -> Reference:
    return Reference(
        path=path,
        abs_path=Path("/jobs") / path,
        sha256="0" * 64,
        mime_type=mime,
        width=1,
        height=1,
        size=len(PNG),
    )


def answer(parts: list[dict[str, Any]], finish: str = "STOP", **extra: Any) -> Any:
    return {
        "candidates": [
            {"content": {"role": "model", "parts": parts}, "finishReason": finish}
        ],
        "usageMetadata": {"promptTokenCount": 10, "totalTokenCount": 10},
        **extra,
    }


def reply(status: int, body: Any = None, **kwargs: Any) -> Handler:
    """A handler that answers every request with `status` and a JSON `body`."""

    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str | bytes):
            return httpx.Response(status, content=body, **kwargs)
        return httpx.Response(status, json=body, **kwargs)

    return handler


async def call(
    handler: Handler,
    *,
    request: Request | None = None,
    references: tuple[bytes, ...] = (),
    endpoint: Endpoint | None = None,
    **kwargs: Any,
) -> Outcome:
    """`client.generate` on the client a run uses, with `handler` as the network."""
    mock = httpx.MockTransport(handler)
    async with client.make_http_client(concurrency=1, transport=mock) as http:
        outcome = await client.generate(
            http,
            endpoint or Endpoint(BASE, KEY),
            request or make_request(),
            references,
            **kwargs,
        )
        # Every path gives its pool shard back: answers, errors and dropped bodies.
        transport: Any = http._transport
        assert transport._busy == [0]
    return outcome


# --- request body --------------------------------------------------------------


def test_text_only_body_matches_the_sample():
    expected = sample("request-text-to-image.json")
    request = make_request(
        text=expected["contents"][0]["parts"][0]["text"],
        aspect_ratio="21:9",
        image_size="1K",
    )

    assert client.build_body(request, []) == expected


def test_reference_images_follow_the_text_as_snake_case_inline_data():
    expected = sample("request-with-reference.json")
    request = make_request(
        text="Put this logo on a mug, studio lighting",
        aspect_ratio="4:5",
        image_size=None,
        references=(make_reference(),),
    )

    body = client.build_body(request, [PNG])

    assert body["contents"] == expected["contents"]
    assert body["generationConfig"] == {
        **expected["generationConfig"],
        "candidateCount": 1,
    }


def test_references_are_sent_in_order_with_their_own_mime_types():
    refs = (make_reference("a.png"), make_reference("b.jpg", "image/jpeg"))
    body = client.build_body(make_request(references=refs), [b"one", b"two"])

    parts = body["contents"][0]["parts"]
    assert [p["inline_data"]["mime_type"] for p in parts[1:]] == [
        "image/png",
        "image/jpeg",
    ]
    assert [base64.b64decode(p["inline_data"]["data"]) for p in parts[1:]] == [
        b"one",
        b"two",
    ]


def test_reference_bytes_must_match_the_references():
    with pytest.raises(ValueError, match="1 images but 0 given"):
        client.build_body(make_request(references=(make_reference(),)), [])


def test_auto_aspect_ratio_sends_no_aspect_ratio():
    body = client.build_body(make_request(aspect_ratio=None, image_size="2K"), [])

    assert body["generationConfig"]["imageConfig"] == {"imageSize": "2K"}


def test_no_axes_sends_no_image_config():
    body = client.build_body(make_request(aspect_ratio=None, image_size=None), [])

    assert "imageConfig" not in body["generationConfig"]


def test_generation_settings_are_merged_over_the_defaults_and_axes_win():
    generation = {
        "responseModalities": ["TEXT", "IMAGE"],
        "temperature": 0.7,
        "imageConfig": {"aspectRatio": "9:16", "personGeneration": "ALLOW_ALL"},
    }
    body = client.build_body(make_request(generation=generation), [])

    assert body["generationConfig"] == {
        "responseModalities": ["TEXT", "IMAGE"],
        "imageConfig": {
            "aspectRatio": "1:1",
            "imageSize": "1K",
            "personGeneration": "ALLOW_ALL",
        },
        "candidateCount": 1,
        "temperature": 0.7,
    }


def test_an_unset_axis_keeps_the_jobs_own_image_config_value():
    generation = {"imageConfig": {"aspectRatio": "9:16"}}
    body = client.build_body(
        make_request(aspect_ratio=None, image_size=None, generation=generation), []
    )

    assert body["generationConfig"]["imageConfig"] == {"aspectRatio": "9:16"}


def test_snake_case_generation_keys_are_sent_in_camel_case():
    generation = {
        "response_modalities": ["TEXT", "IMAGE"],
        "top_p": 0.9,
        "image_config": {"person_generation": "ALLOW_ADULT"},
    }
    config = client.build_body(make_request(generation=generation), [])[
        "generationConfig"
    ]

    assert config["responseModalities"] == ["TEXT", "IMAGE"]
    assert config["topP"] == 0.9
    assert config["imageConfig"] == {
        "personGeneration": "ALLOW_ADULT",
        "aspectRatio": "1:1",
        "imageSize": "1K",
    }
    assert not any("_" in key for key in config)


def test_system_instruction_and_safety_settings_are_sent_when_set():
    safety = ({"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"},)
    body = client.build_body(
        make_request(system_instruction="Flat colours only.", safety_settings=safety),
        [],
    )

    assert body["systemInstruction"] == {"parts": [{"text": "Flat colours only."}]}
    assert body["safetySettings"] == [dict(safety[0])]


def test_system_instruction_and_safety_settings_are_omitted_when_unset():
    body = client.build_body(make_request(), [])

    assert set(body) == {"contents", "generationConfig"}


def test_tools_are_sent_as_the_requests_tools_when_set():
    tools: tuple[dict[str, Any], ...] = ({"google_search": {}}, {"url_context": {}})
    body = client.build_body(make_request(tools=tools), [])

    assert body["tools"] == [{"google_search": {}}, {"url_context": {}}]
    assert "tools" not in body["generationConfig"]
    assert "tools" not in client.build_body(make_request(tools=None), [])


# --- what is sent --------------------------------------------------------------


async def test_posts_the_body_to_generate_content_with_a_bearer_key():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=sample("200-image.json"))

    request = make_request(references=(make_reference(),))
    await call(handler, request=request, references=(PNG,))

    [sent] = seen
    assert sent.method == "POST"
    assert str(sent.url) == GENERATE_URL
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert "x-goog-api-key" not in sent.headers
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["user-agent"] == f"runner/{__version__}"
    assert KEY not in str(sent.url)
    assert json.loads(sent.content) == client.build_body(request, [PNG])


async def test_google_style_auth_sends_the_key_as_x_goog_api_key():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=sample("200-image.json"))

    endpoint = Endpoint("https://generativelanguage.googleapis.com/", KEY, auth="goog")
    await call(handler, endpoint=endpoint)

    [sent] = seen
    assert sent.headers["x-goog-api-key"] == KEY
    assert "authorization" not in sent.headers
    assert KEY not in str(sent.url)
    assert str(sent.url) == (
        f"https://generativelanguage.googleapis.com/v1beta/models/{MODEL}"
        ":generateContent"
    )


async def test_no_key_sends_no_auth_header():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=sample("200-image.json"))

    await call(handler, endpoint=Endpoint(BASE + "/"))

    [sent] = seen
    assert "authorization" not in sent.headers
    assert "x-goog-api-key" not in sent.headers
    assert str(sent.url) == GENERATE_URL


def test_endpoint_url_tolerates_trailing_slashes_and_a_v1beta_base():
    assert client.endpoint_url(Endpoint(BASE + "/v1beta/"), MODEL) == GENERATE_URL
    assert client.endpoint_url(Endpoint(BASE), f"models/{MODEL}") == GENERATE_URL


def test_endpoint_rejects_an_unknown_auth_style():
    with pytest.raises(ValueError, match="auth must be"):
        Endpoint(BASE, KEY, auth="basic")


def test_endpoint_repr_hides_the_key():
    assert KEY not in repr(Endpoint(BASE, KEY))


async def test_a_key_that_cannot_go_in_a_header_stops_the_run_without_sending():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=sample("200-image.json"))

    bad_key = "sk-abc def"
    outcome = await call(handler, endpoint=Endpoint(BASE, bad_key))

    assert outcome.kind is Kind.FATAL_RUN
    assert "API key" in outcome.reason
    assert bad_key not in repr(outcome)
    assert seen == []


async def test_a_base_url_without_a_scheme_stops_the_run():
    outcome = await call(reply(200, {}), endpoint=Endpoint("relay.example", KEY))

    assert outcome.kind is Kind.FATAL_RUN
    assert "base URL" in outcome.reason


# --- success -------------------------------------------------------------------


async def test_an_inline_image_is_a_success_with_everything_recorded():
    body = sample("200-image.json")
    outcome = await call(reply(200, body))

    assert outcome.kind is Kind.SUCCESS
    assert outcome.reason == ""
    assert outcome.images == (client.Image("image/png", PNG, "inline"),)
    assert outcome.usage == body["usageMetadata"]
    assert outcome.model_version == "gemini-3.1-flash-image-preview"
    assert outcome.response_id == "abc123"
    assert outcome.finish_reason == "STOP"
    assert outcome.http_status == 200
    assert outcome.text == ""  # the thought text is not an output
    assert outcome.latency >= 0
    assert outcome.retry_after is None


async def test_text_next_to_the_image_is_kept_for_the_record():
    outcome = await call(reply(200, sample("200-text-and-image.json")))

    assert outcome.kind is Kind.SUCCESS
    assert len(outcome.images) == 1
    assert outcome.text == "Here is your banner."


async def test_two_images_in_one_answer_are_both_returned_in_order():
    jpeg = b"\xff\xd8\xff\xe0fake-jpeg"
    parts = [
        {"inlineData": {"mimeType": "image/png", "data": PNG_B64}},
        {
            "inlineData": {
                "mimeType": "image/jpeg",
                "data": base64.b64encode(jpeg).decode(),
            }
        },
    ]

    outcome = await call(reply(200, answer(parts)))

    assert outcome.kind is Kind.SUCCESS
    assert [(i.mime_type, i.data) for i in outcome.images] == [
        ("image/png", PNG),
        ("image/jpeg", jpeg),
    ]


async def test_thought_parts_are_not_outputs():
    parts = [
        {"inlineData": {"mimeType": "image/png", "data": PNG_B64}, "thought": True},
        {"text": "Sketching a draft.", "thought": True},
    ]
    outcome = await call(reply(200, answer(parts)))

    assert outcome.kind is Kind.NO_IMAGE
    assert outcome.images == ()
    assert outcome.text == ""


async def test_snake_case_inline_data_without_a_mime_type_is_kept_undeclared():
    parts = [{"inline_data": {"data": PNG_B64}}]
    outcome = await call(reply(200, answer(parts)))

    assert outcome.kind is Kind.SUCCESS
    assert outcome.images == (client.Image("", PNG, "inline"),)


async def test_an_image_makes_a_success_even_with_an_odd_finish_reason():
    parts = [{"inlineData": {"mimeType": "image/png", "data": PNG_B64}}]
    outcome = await call(reply(200, answer(parts, finish="MAX_TOKENS")))

    assert outcome.kind is Kind.SUCCESS
    assert outcome.finish_reason == "MAX_TOKENS"


async def test_a_relay_markdown_data_uri_is_an_image():
    outcome = await call(reply(200, sample("200-relay-markdown-data-uri.json")))

    assert outcome.kind is Kind.SUCCESS
    assert outcome.images == (client.Image("image/png", PNG, "data-uri"),)
    # The record keeps the text but not a second copy of the image.
    assert PNG_B64 not in outcome.text
    assert outcome.text.startswith("![image](data:image/png;base64,")


async def test_a_plain_data_uri_in_text_is_an_image():
    parts = [{"text": f"Done: data:image/webp;base64,{PNG_B64} enjoy"}]
    outcome = await call(reply(200, answer(parts)))

    assert outcome.images == (client.Image("image/webp", PNG, "data-uri"),)


async def test_megabytes_of_text_keep_their_data_uri_image_and_a_short_reason():
    filler = "the relay rambles on " * 150_000  # about 3 MB of text
    parts = [{"text": f"{filler} DATA:IMAGE/PNG;BASE64,{PNG_B64} {filler}"}]
    outcome = await call(reply(200, answer(parts)))

    assert outcome.images == (client.Image("image/png", PNG, "data-uri"),)
    assert PNG_B64 not in outcome.text
    assert len(outcome.text) <= 4096  # text is kept for reasons only


async def test_megabytes_of_text_only_are_a_no_image_answer_with_a_clipped_reason():
    parts = [{"text": "no picture today, sorry " * 150_000}]
    outcome = await call(reply(200, answer(parts)))

    assert outcome.kind is Kind.NO_IMAGE
    assert outcome.reason.startswith("answered with text only: no picture today")
    assert len(outcome.reason) < 200


async def test_a_relay_image_url_is_fetched_without_the_key_and_recorded(
    resolves: Resolves,
):
    resolves["cdn.relay.example"] = ["93.184.215.14"]
    image_url = "https://cdn.relay.example/out/abc.png?sig=1"
    fetches: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            fetches.append(request)
            return httpx.Response(
                200, content=PNG, headers={"content-type": "image/png"}
            )
        return httpx.Response(200, json=answer([{"text": f"![out]({image_url})"}]))

    outcome = await call(handler)

    assert outcome.kind is Kind.SUCCESS
    assert outcome.images == (client.Image("image/png", PNG, "url"),)
    assert outcome.extra_urls == (image_url,)
    [fetch] = fetches
    assert str(fetch.url) == image_url
    assert "authorization" not in fetch.headers
    assert "x-goog-api-key" not in fetch.headers


async def test_a_relay_image_url_follows_redirects():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/a.jpg":
            return httpx.Response(302, headers={"location": f"{BASE}/b.jpg"})
        if request.url.path == "/b.jpg":
            return httpx.Response(200, content=b"jpeg-bytes")
        return httpx.Response(200, json=answer([{"text": f"Here: {BASE}/a.jpg."}]))

    outcome = await call(handler)

    assert outcome.kind is Kind.SUCCESS
    assert outcome.images == (client.Image("", b"jpeg-bytes", "url"),)
    assert outcome.extra_urls == (f"{BASE}/a.jpg",)


async def test_a_relay_image_url_that_cannot_be_fetched_is_unknown():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(404, text="gone")
        return httpx.Response(200, json=answer([{"text": f"![x]({BASE}/x.png)"}]))

    outcome = await call(handler)

    assert outcome.kind is Kind.UNKNOWN
    assert outcome.reason == f"could not fetch the image URL {BASE}/x.png: HTTP 404"
    assert outcome.usage is not None


async def test_a_relay_image_url_larger_than_the_limit_is_unknown():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, content=b"x" * 5000)
        return httpx.Response(200, json=answer([{"text": f"![x]({BASE}/x.png)"}]))

    outcome = await call(handler, max_response_bytes=4000)

    assert outcome.kind is Kind.UNKNOWN
    assert "larger than 4000 bytes" in outcome.reason


async def test_a_link_that_does_not_name_an_image_is_not_fetched():
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "POST", "nothing else should be fetched"
        text = "See https://example.com/docs for the style guide."
        return httpx.Response(200, json=answer([{"text": text}]))

    outcome = await call(handler)

    assert outcome.kind is Kind.NO_IMAGE
    assert outcome.extra_urls == ()


async def test_an_inline_image_is_kept_when_a_link_beside_it_is_dead():
    """The answer is paid for: an image that arrived is never dropped because
    another could not be fetched (recording it `unknown` would pay for it again)."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(404, text="gone")
        parts: list[dict[str, Any]] = [
            {"text": f"Also here: ![x]({BASE}/files/dead.png)"},
            {"inlineData": {"mimeType": "image/png", "data": PNG_B64}},
        ]
        return httpx.Response(200, json=answer(parts))

    outcome = await call(handler)

    assert outcome.kind is Kind.SUCCESS
    assert outcome.images == (client.Image("image/png", PNG, "inline"),)
    assert outcome.reason == (
        f"could not fetch the image URL {BASE}/files/dead.png: HTTP 404"
    )
    assert outcome.extra_urls == (f"{BASE}/files/dead.png",)


async def test_every_link_is_tried_and_each_image_fetched_is_kept():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/dead.png":
            return httpx.Response(410)
        if request.method == "GET":
            return httpx.Response(200, content=PNG)
        text = f"![a]({BASE}/dead.png) ![b]({BASE}/live.png)"
        return httpx.Response(200, json=answer([{"text": text}]))

    outcome = await call(handler)

    assert outcome.kind is Kind.SUCCESS
    assert outcome.images == (client.Image("", PNG, "url"),)
    assert "could not fetch the image URL" in outcome.reason
    assert "/dead.png: HTTP 410" in outcome.reason


@pytest.mark.parametrize(
    ("base", "link"),
    [
        # a relay's own files, over plain http, even on this machine
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765/files/a.png"),
        ("http://10.1.2.3:3000/v1beta", "http://10.1.2.3:3000/files/a.png"),
        ("https://relay.example", "https://RELAY.example:443/files/a.png"),
        # https on a public address
        ("https://relay.example", "https://93.184.215.14/a.png"),
        ("https://relay.example", "https://[2606:4700::1111]/a.png"),
    ],
)
async def test_links_on_the_base_urls_origin_or_public_https_are_fetched(
    base: str, link: str
):
    fetched: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            fetched.append(str(request.url))
            return httpx.Response(200, content=PNG)
        return httpx.Response(200, json=answer([{"text": f"![x]({link})"}]))

    outcome = await call(handler, endpoint=Endpoint(base, KEY))

    assert outcome.kind is Kind.SUCCESS, outcome.reason
    assert len(fetched) == 1


@pytest.mark.parametrize(
    ("link", "why"),
    [
        # plain http anywhere but the base URL's origin
        ("http://cdn.relay.example/a.png", "fetched only over https"),
        ("http://relay.example:8080/a.png", "fetched only over https"),
        # this machine and private networks, written as addresses
        ("https://127.0.0.1/a.png", "loopback, private or link-local"),
        ("https://[::1]/a.png", "loopback, private or link-local"),
        ("https://10.0.0.7/a.png", "loopback, private or link-local"),
        ("https://192.168.1.1/a.png", "loopback, private or link-local"),
        ("https://169.254.169.254/latest/meta-data", "loopback, private or link"),
        ("https://[fe80::1]/a.png", "loopback, private or link-local"),
        ("https://[::ffff:127.0.0.1]/a.png", "loopback, private or link-local"),
        ("https://0.0.0.0/a.png", "loopback, private or link-local"),
        # ... or as names that resolve there
        ("https://localhost/a.png", "localhost (127.0.0.1) is a loopback"),
        ("https://metadata.relay.example/a.png", "(169.254.169.254) is a loopback"),
        ("https://nowhere.relay.example/a.png", "could not be resolved"),
    ],
)
async def test_links_elsewhere_are_not_fetched_at_all(
    resolves: Resolves, link: str, why: str
):
    resolves["metadata.relay.example"] = ["93.184.215.14", "169.254.169.254"]
    resolves["localhost"] = ["127.0.0.1"]

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "POST", f"fetched {request.url}"
        return httpx.Response(200, json=answer([{"text": f"![x]({link})"}]))

    outcome = await call(handler)

    assert outcome.kind is Kind.UNKNOWN  # the answer was paid for; one resend
    assert outcome.reason.startswith(f"could not fetch the image URL {link}")
    assert "not fetched:" in outcome.reason and why in outcome.reason


async def test_another_port_of_the_base_urls_host_is_another_host():
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "POST", f"fetched {request.url}"
        text = "![x](http://127.0.0.1:2375/images/json)"
        return httpx.Response(200, json=answer([{"text": text}]))

    outcome = await call(handler, endpoint=Endpoint("http://127.0.0.1:8765", KEY))

    assert outcome.kind is Kind.UNKNOWN
    assert "not fetched: http:// to a host other than the base URL's" in outcome.reason


async def test_localhost_is_checked_by_what_it_really_resolves_to():
    """The real resolver (no table): `localhost` is in every hosts file."""

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "POST", f"fetched {request.url}"
        text = "![x](https://localhost:9/a.png)"
        return httpx.Response(200, json=answer([{"text": text}]))

    outcome = await call(handler)

    assert outcome.kind is Kind.UNKNOWN
    assert "is a loopback, private or link-local address" in outcome.reason


async def test_a_redirect_is_followed_only_where_a_link_could_go(resolves: Resolves):
    resolves["cdn.relay.example"] = ["93.184.215.14"]
    fetched: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            text = f"![a]({BASE}/a.png) ![b]({BASE}/b.png)"
            return httpx.Response(200, json=answer([{"text": text}]))
        fetched.append(str(request.url))
        if request.url.path == "/a.png":  # to a public CDN: followed
            return httpx.Response(
                302, headers={"location": "https://cdn.relay.example/out/a.png"}
            )
        if request.url.path == "/b.png":  # to this machine's services: not
            return httpx.Response(
                307, headers={"location": "http://127.0.0.1:2375/images/json"}
            )
        return httpx.Response(200, content=PNG)

    outcome = await call(handler)

    assert fetched == [
        f"{BASE}/a.png",
        "https://cdn.relay.example/out/a.png",
        f"{BASE}/b.png",
    ]
    assert outcome.kind is Kind.SUCCESS
    assert len(outcome.images) == 1
    assert "http://127.0.0.1:2375/images/json" not in fetched
    assert "not fetched: http:// to a host other than the base URL's" in outcome.reason


async def test_redirects_are_followed_a_bounded_number_of_times():
    hops: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json=answer([{"text": f"![a]({BASE}/0.png)"}]))
        hops.append(request.url.path)
        n = int(request.url.path[1:].split(".")[0])
        return httpx.Response(302, headers={"location": f"/{n + 1}.png"})

    outcome = await call(handler)

    assert outcome.kind is Kind.UNKNOWN
    assert outcome.reason.endswith("more than 5 redirects")
    assert len(hops) == 6


# --- the answer kept for a later turn ---------------------------------------------


async def test_interim_thought_images_are_not_outputs_and_parts_keep_signatures():
    body = sample("200-thought-images-and-signatures.json")
    outcome = await call(reply(200, body))

    assert outcome.kind is Kind.SUCCESS
    # only the final image: the two interim ones are thoughts
    assert outcome.images == (client.Image("image/png", PNG, "inline"),)
    assert outcome.images[0].part == 4
    assert outcome.text == "Here is the 21:9 banner."
    # every part, in order, as the model sent it, minus image bytes
    parts = [dict(p) for p in outcome.parts]
    assert parts == [
        body["candidates"][0]["content"]["parts"][0],
        {"inlineData": {"mimeType": "image/png"}, "thought": True},
        {"inlineData": {"mimeType": "image/png"}, "thought": True},
        {
            "text": "Here is the 21:9 banner.",
            "thoughtSignature": "CpoBAb4+9vv8example0signature0bytes0base64AAAA",
        },
        {
            "inlineData": {"mimeType": "image/png"},
            "thoughtSignature": "EqUBAb4+9vtexample1signature1bytes1base64BBBB",
        },
    ]
    assert PNG_B64[:40] not in json.dumps(parts)


async def test_the_parts_of_answers_without_an_image_are_kept_too():
    body = sample("200-no-image.json")
    outcome = await call(reply(200, body))

    assert outcome.kind is Kind.NO_IMAGE
    assert [dict(p) for p in outcome.parts] == body["candidates"][0]["content"]["parts"]


async def test_parts_are_kept_even_when_the_image_data_is_bad():
    parts: list[dict[str, Any]] = [
        {"text": "Here it is.", "thoughtSignature": "c2ln"},
        {"inlineData": {"mimeType": "image/png", "data": "not base64!"}},
    ]
    outcome = await call(reply(200, answer(parts)))

    assert outcome.kind is Kind.UNKNOWN
    assert [dict(p) for p in outcome.parts] == [
        {"text": "Here it is.", "thoughtSignature": "c2ln"},
        {"inlineData": {"mimeType": "image/png"}},
    ]


async def test_parts_keep_snake_case_keys_and_unknown_fields_as_sent():
    parts: list[dict[str, Any]] = [
        {"inline_data": {"mime_type": "image/png", "data": PNG_B64}, "x_new": [1]},
        {"fileData": {"fileUri": "gs://bucket/a.png", "mimeType": "image/png"}},
    ]
    outcome = await call(reply(200, answer(parts)))

    assert [dict(p) for p in outcome.parts] == [
        {"inline_data": {"mime_type": "image/png"}, "x_new": [1]},
        {"fileData": {"fileUri": "gs://bucket/a.png", "mimeType": "image/png"}},
    ]


async def test_a_data_uri_in_text_is_kept_without_its_base64():
    outcome = await call(reply(200, sample("200-relay-markdown-data-uri.json")))

    assert [dict(p) for p in outcome.parts] == [
        {"text": "![image](data:image/png;base64,…)"}
    ]


async def test_a_relay_padding_its_text_is_kept_cut_with_its_length():
    filler = "the relay rambles on " * 150_000
    parts: list[dict[str, Any]] = [
        {"text": filler},
        {"inlineData": {"mimeType": "image/png", "data": PNG_B64}},
    ]
    outcome = await call(reply(200, answer(parts)))

    kept = dict(outcome.parts[0])
    assert kept["textChars"] == len(filler)
    assert kept["text"] == filler[: 64 * 1024]


async def test_only_the_first_candidates_parts_are_kept():
    body = answer([{"text": "one"}])
    body["candidates"].append({"content": {"parts": [{"text": "two"}]}})
    outcome = await call(reply(200, body))

    assert [dict(p) for p in outcome.parts] == [{"text": "one"}]


async def test_grounding_metadata_is_kept_whole():
    grounding = {
        "webSearchQueries": ["tallest tower in Lisbon"],
        "searchEntryPoint": {"renderedContent": "<div>chips</div>"},
        "groundingChunks": [{"web": {"uri": "https://a.example/", "title": "a"}}],
    }
    body = sample("200-image.json")
    body["candidates"][0]["groundingMetadata"] = grounding
    outcome = await call(reply(200, body))

    assert outcome.kind is Kind.SUCCESS
    assert outcome.grounding == grounding


async def test_no_grounding_is_none():
    outcome = await call(reply(200, sample("200-image.json")))

    assert outcome.grounding is None


async def test_a_short_key_echoed_in_the_answer_is_masked_in_the_kept_parts():
    # Keys under 8 characters are not masked in the raw bytes (they would match
    # inside image data); every outcome field, the parts included, still is.
    key = "k3Y5z"
    body = answer([{"text": f"echo {key}"}])
    body["candidates"][0]["groundingMetadata"] = {"webSearchQueries": [key]}
    outcome = await call(reply(200, body), endpoint=Endpoint(BASE, key))

    assert key not in json.dumps([dict(p) for p in outcome.parts])
    assert key not in json.dumps(outcome.grounding)


# --- blocked and no image ------------------------------------------------------


async def test_a_blocked_prompt_is_blocked_and_keeps_its_usage():
    body = sample("200-prompt-blocked.json")
    outcome = await call(reply(200, body))

    assert outcome.kind is Kind.BLOCKED
    assert outcome.finish_reason == "PROHIBITED_CONTENT"
    assert outcome.reason == "prompt blocked: PROHIBITED_CONTENT"
    assert outcome.usage == body["usageMetadata"]


async def test_an_image_safety_finish_is_blocked_and_keeps_its_usage():
    body = sample("200-image-safety.json")
    outcome = await call(reply(200, body))

    assert outcome.kind is Kind.BLOCKED
    assert outcome.finish_reason == "IMAGE_SAFETY"
    assert outcome.reason == "finishReason IMAGE_SAFETY"
    assert outcome.usage == body["usageMetadata"]
    assert outcome.model_version == "gemini-3.1-flash-image-preview"


@pytest.mark.parametrize("finish", sorted(client.BLOCKED_FINISH_REASONS))
async def test_every_safety_finish_reason_without_an_image_is_blocked(finish: str):
    outcome = await call(reply(200, answer([], finish=finish)))

    assert outcome.kind is Kind.BLOCKED
    assert outcome.finish_reason == finish


async def test_a_text_only_answer_is_no_image_and_keeps_its_usage():
    body = sample("200-no-image.json")
    outcome = await call(reply(200, body))

    assert outcome.kind is Kind.NO_IMAGE
    assert outcome.reason == (
        "answered with text only: I can describe that scene instead: ..."
    )
    assert outcome.text == "I can describe that scene instead: ..."
    assert outcome.usage == body["usageMetadata"]
    assert outcome.finish_reason == "STOP"


@pytest.mark.parametrize("finish", ["NO_IMAGE", "OTHER", "IMAGE_OTHER", "MAX_TOKENS"])
async def test_a_non_image_finish_reason_is_no_image(finish: str):
    outcome = await call(reply(200, answer([], finish=finish)))

    assert outcome.kind is Kind.NO_IMAGE
    assert outcome.reason == f"finishReason {finish}"
    assert outcome.finish_reason == finish


@pytest.mark.parametrize(
    "body", [{"candidates": []}, {"usageMetadata": {"totalTokenCount": 3}}]
)
async def test_an_answer_without_candidates_is_no_image(body: Any):
    outcome = await call(reply(200, body))

    assert outcome.kind is Kind.NO_IMAGE
    assert outcome.reason == "no candidates"


async def test_empty_image_data_is_no_image():
    parts = [{"inlineData": {"mimeType": "image/png", "data": ""}}]
    outcome = await call(reply(200, answer(parts)))

    assert outcome.kind is Kind.NO_IMAGE
    assert outcome.reason == "answered with empty image data"


# --- unknown outcomes ----------------------------------------------------------


async def test_a_200_that_is_not_json_is_unknown():
    outcome = await call(reply(200, b"<html>gateway says hi</html>"))

    assert outcome.kind is Kind.UNKNOWN
    assert "not valid JSON" in outcome.reason
    assert outcome.http_status == 200


async def test_truncated_json_is_unknown():
    text = json.dumps(sample("200-image.json"))
    outcome = await call(reply(200, text[: len(text) // 2]))

    assert outcome.kind is Kind.UNKNOWN
    assert "not valid JSON" in outcome.reason


async def test_invalid_base64_image_data_is_unknown_but_keeps_its_usage():
    parts = [{"inlineData": {"mimeType": "image/png", "data": PNG_B64[:-3] + "*=="}}]
    outcome = await call(reply(200, answer(parts)))

    assert outcome.kind is Kind.UNKNOWN
    assert outcome.reason.startswith("invalid base64 image data in inlineData")
    assert outcome.usage == {"promptTokenCount": 10, "totalTokenCount": 10}
    assert outcome.images == ()


async def test_a_response_larger_than_the_limit_is_unknown_and_not_read_to_the_end():
    sent_chunks = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent_chunks
        for _ in range(100):
            sent_chunks += 1
            yield b"x" * 1024

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body())

    outcome = await call(handler, max_response_bytes=10 * 1024)

    assert outcome.kind is Kind.UNKNOWN
    assert outcome.reason == "response larger than 10240 bytes"
    assert sent_chunks < 100


async def test_a_declared_content_length_over_the_limit_is_refused_unread():
    big = b" " * (3 * 1024 * 1024)
    outcome = await call(reply(200, big), max_response_bytes=2 * 1024 * 1024)

    assert outcome.kind is Kind.UNKNOWN
    assert outcome.reason == "response larger than 2 MiB"


# --- error statuses ------------------------------------------------------------


async def test_google_429_is_transient_and_honours_retry_delay():
    outcome = await call(reply(429, sample("429-google.json")))

    assert outcome.kind is Kind.TRANSIENT
    assert outcome.http_status == 429
    assert outcome.retry_after == 21.0
    assert outcome.reason.startswith("429 RESOURCE_EXHAUSTED: You exceeded")


async def test_retry_after_in_seconds_is_honoured():
    outcome = await call(
        reply(503, sample("503-google-overloaded.json"), headers={"Retry-After": "7"})
    )

    assert outcome.kind is Kind.TRANSIENT
    assert outcome.retry_after == 7.0
    assert outcome.reason == (
        "503 UNAVAILABLE: The model is overloaded. Please try again later."
    )


async def test_retry_after_as_an_http_date_is_honoured():
    when = email.utils.format_datetime(
        datetime.now(UTC) + timedelta(seconds=120), usegmt=True
    )
    outcome = await call(reply(503, b"", headers={"Retry-After": when}))

    assert outcome.retry_after is not None
    assert 100 < outcome.retry_after <= 120


async def test_retry_after_in_the_past_means_now():
    outcome = await call(
        reply(503, b"", headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    )

    assert outcome.retry_after == 0.0


async def test_an_unparseable_retry_after_is_ignored():
    outcome = await call(reply(503, b"", headers={"Retry-After": "soon"}))

    assert outcome.kind is Kind.TRANSIENT
    assert outcome.retry_after is None


@pytest.mark.parametrize(("header", "expected"), [("30", 30.0), ("5", 21.0)])
async def test_the_larger_of_retry_after_and_retry_delay_wins(
    header: str, expected: float
):
    outcome = await call(
        reply(429, sample("429-google.json"), headers={"Retry-After": header})
    )

    assert outcome.retry_after == expected


async def test_a_fractional_retry_delay_is_parsed():
    body = sample("429-google.json")
    body["error"]["details"][1]["retryDelay"] = "0.5s"
    outcome = await call(reply(429, body))

    assert outcome.retry_after == 0.5


async def test_a_per_day_quota_429_stops_the_run_and_names_the_quota():
    body = sample("429-google.json")
    quota = "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
    body["error"]["details"][0]["violations"][0]["quotaId"] = quota
    outcome = await call(reply(429, body))

    assert outcome.kind is Kind.FATAL_RUN
    assert quota in outcome.reason
    assert "runner submit" in outcome.reason
    assert "once it resets" in outcome.reason


@pytest.mark.parametrize("status", [408, 500, 502, 504, 507, 599])
async def test_timeouts_and_server_errors_are_transient(status: int):
    outcome = await call(reply(status, {"error": {"message": "busy"}}))

    assert outcome.kind is Kind.TRANSIENT
    assert outcome.http_status == status
    assert outcome.reason == f"{status}: busy"


async def test_a_relay_502_gives_a_readable_reason():
    outcome = await call(reply(502, sample("502-relay-upstream.json")))

    assert outcome.kind is Kind.TRANSIENT
    assert outcome.reason == (
        "502 bad_response_status_code: bad response status code 502"
    )


async def test_a_non_json_error_page_gives_its_first_characters():
    page = (
        "<html><head><title>502 Bad Gateway</title></head>"
        "<body><h1>502 Bad Gateway</h1><hr>nginx</body></html>"
    )
    outcome = await call(reply(502, page))

    assert outcome.kind is Kind.TRANSIENT
    assert outcome.reason == "HTTP 502: 502 Bad Gateway 502 Bad Gateway nginx"


async def test_a_long_non_json_error_body_is_cut_to_200_characters():
    outcome = await call(reply(500, "e" * 5000))

    assert outcome.reason == "HTTP 500: " + "e" * 199 + "…"


async def test_a_relay_401_stops_the_run_and_says_to_check_the_key():
    outcome = await call(reply(401, sample("401-relay.json")))

    assert outcome.kind is Kind.FATAL_RUN
    assert outcome.reason == (
        f"the API rejected the key at {GENERATE_URL}; check the API key and "
        "--base-url (401 invalid_api_key: invalid token)"
    )


async def test_googles_answer_to_a_bad_key_stops_the_run_like_a_401():
    outcome = await call(reply(400, sample("400-google-api-key-invalid.json")))

    assert outcome.kind is Kind.FATAL_RUN
    assert outcome.reason.startswith(
        f"the API rejected the key at {GENERATE_URL}; check the API key"
    )
    assert "400 INVALID_ARGUMENT: API key not valid" in outcome.reason
    assert KEY not in outcome.reason


async def test_a_bad_key_message_without_its_details_still_stops_the_run():
    body = sample("400-google-api-key-invalid.json")
    del body["error"]["details"]
    outcome = await call(reply(400, body))

    assert outcome.kind is Kind.FATAL_RUN
    assert "rejected the key" in outcome.reason


async def test_an_unknown_model_stops_the_run_and_names_the_model():
    request = make_request(model="gemini-3.1-flash-image-previw")
    outcome = await call(
        reply(404, sample("404-google-model-not-found.json")), request=request
    )

    assert outcome.kind is Kind.FATAL_RUN
    assert outcome.reason.startswith(
        "model 'gemini-3.1-flash-image-previw' is not found at "
        f"{BASE}/v1beta/models/gemini-3.1-flash-image-previw:generateContent; "
        "check `model:` in the job file (404 NOT_FOUND: models/"
    )


@pytest.mark.parametrize(
    "body",
    [
        "<html><title>404 Not Found</title><body>nginx</body></html>",
        "404 page not found",
        {"error": {"message": "Invalid URL (POST /v1beta/x)", "type": "invalid"}},
        {"error": {"code": 404, "message": "No route.", "status": "NOT_FOUND"}},
    ],
)
async def test_a_404_that_names_no_model_means_no_such_route(body: Any):
    outcome = await call(reply(404, body))

    assert outcome.kind is Kind.FATAL_RUN
    assert outcome.reason.startswith(
        f"{GENERATE_URL}: no such route (404); check --base-url ("
    )


async def test_a_relays_model_not_found_code_names_the_model():
    body = {"error": {"message": "The model does not exist", "code": "model_not_found"}}
    outcome = await call(reply(404, body))

    assert outcome.kind is Kind.FATAL_RUN
    assert outcome.reason.startswith(f"model '{MODEL}' is not found at {BASE}/")


async def test_an_unsupported_location_stops_the_run_and_says_what_to_change():
    outcome = await call(reply(400, sample("400-google-location-not-supported.json")))

    assert outcome.kind is Kind.FATAL_RUN
    assert outcome.reason.startswith(
        f"the API does not serve this key from here at {GENERATE_URL}; call it "
        "from a supported region, enable billing for the key's project, or go "
        "through a relay with --base-url (400 FAILED_PRECONDITION: User location"
    )


async def test_a_429_with_a_quota_limit_of_0_says_the_key_has_no_quota_at_all():
    # The sample's first violation is a per-day quota: the limit is read first.
    outcome = await call(reply(429, sample("429-google-free-tier-limit-0.json")))

    assert outcome.kind is Kind.FATAL_RUN
    assert outcome.reason.startswith(
        "this key has no quota for model 'gemini-3.1-flash-image' "
        "(GenerateRequestsPerDayPerProjectPerModel-FreeTier has a limit of 0); "
        "enable billing for the key's project or use another key"
    )
    assert "resets" not in outcome.reason


async def test_a_quota_limit_of_0_named_only_in_the_message_stops_the_run_too():
    body = sample("429-google-free-tier-limit-0.json")
    del body["error"]["details"]
    outcome = await call(reply(429, body))

    assert outcome.kind is Kind.FATAL_RUN
    assert outcome.reason.startswith(
        "this key has no quota for model 'gemini-3.1-flash-image' (a quota has a "
        "limit of 0)"
    )


@pytest.mark.parametrize("value", ["10", "250000", None])
async def test_a_per_minute_429_with_a_limit_above_0_is_transient(value: str | None):
    body = sample("429-google-free-tier-limit-0.json")
    body["error"]["message"] = "You exceeded your current quota."
    violations = body["error"]["details"][1]["violations"]
    body["error"]["details"][1]["violations"] = [violations[1]]
    if value is None:
        del violations[1]["quotaValue"]
    else:
        violations[1]["quotaValue"] = value
    outcome = await call(reply(429, body))

    assert outcome.kind is Kind.TRANSIENT
    assert outcome.retry_after == 38.0


async def test_a_403_stops_the_run_and_says_to_check_permissions():
    body = {
        "error": {
            "code": 403,
            "message": "Method doesn't allow unregistered callers.",
            "status": "PERMISSION_DENIED",
        }
    }
    outcome = await call(reply(403, body))

    assert outcome.kind is Kind.FATAL_RUN
    assert "403 PERMISSION_DENIED" in outcome.reason
    assert "permissions" in outcome.reason


async def test_a_relay_403_out_of_balance_stops_the_run_saying_so():
    outcome = await call(reply(403, sample("403-relay-out-of-balance.json")))

    assert outcome.kind is Kind.FATAL_RUN
    assert outcome.reason.startswith("the account is out of balance or quota")
    assert "insufficient_user_quota: user quota is not enough" in outcome.reason


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (402, {"error": {"message": "Payment required"}}),
        (429, {"error": {"message": "quota exceeded", "code": "insufficient_quota"}}),
        (400, {"error": {"message": "Insufficient balance, please recharge"}}),
        (403, {"error": {"message": "该令牌额度已用尽 余额不足", "type": "one_api"}}),
        (429, "You are out of balance."),
    ],
)
async def test_an_out_of_balance_answer_in_any_4xx_stops_the_run(
    status: int, body: Any
):
    outcome = await call(reply(status, body))

    assert outcome.kind is Kind.FATAL_RUN
    assert "out of balance" in outcome.reason


async def test_google_invalid_argument_fails_only_the_item():
    outcome = await call(reply(400, sample("400-google-invalid-argument.json")))

    assert outcome.kind is Kind.FATAL_ITEM
    assert outcome.reason.startswith(
        "400 INVALID_ARGUMENT: Invalid JSON payload received."
    )


async def test_multiple_candidates_fail_only_the_item():
    outcome = await call(reply(400, sample("400-google-multiple-candidates.json")))

    assert outcome.kind is Kind.FATAL_ITEM


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (400, sample("400-google-invalid-argument.json"), "400 INVALID_ARGUMENT"),
        (
            400,
            sample("400-google-api-key-invalid.json"),
            "400 INVALID_ARGUMENT API_KEY_INVALID",
        ),
        (403, sample("403-relay-out-of-balance.json"), "403 insufficient_user_quota"),
        (
            422,
            {"error": {"message": "no", "type": "invalid_request"}},
            "422 invalid_request",
        ),
        (413, "<html>Request Entity Too Large</html>", "413"),
    ],
)
async def test_an_error_answer_carries_its_identity(status: int, body: Any, code: str):
    # HTTP status, error.status (or a relay's code) and ErrorInfo.reason: what the
    # systematic-failure stop compares.
    outcome = await call(reply(status, body))

    assert outcome.error_code == code


@pytest.mark.parametrize("status", [413, 422])
async def test_other_client_errors_fail_only_the_item(status: int):
    outcome = await call(reply(status, {"error": {"message": "nope", "type": "x"}}))

    assert outcome.kind is Kind.FATAL_ITEM
    assert outcome.reason == f"{status} x: nope"


async def test_a_redirect_is_not_followed_and_stops_the_run():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(301, headers={"location": "https://www.relay.example/"})

    outcome = await call(handler)

    assert outcome.kind is Kind.FATAL_RUN
    assert "https://www.relay.example/" in outcome.reason
    assert len(seen) == 1


async def test_an_error_sent_with_status_200_is_classified_by_its_code():
    outcome = await call(reply(200, sample("503-google-overloaded.json")))

    assert outcome.kind is Kind.TRANSIENT
    assert outcome.http_status == 200


async def test_an_out_of_balance_error_sent_with_status_200_stops_the_run():
    outcome = await call(reply(200, sample("403-relay-out-of-balance.json")))

    assert outcome.kind is Kind.FATAL_RUN


# --- transport failures --------------------------------------------------------


def raising(exc_type: type[httpx.TransportError], message: str) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_type(message, request=request)

    return handler


@pytest.mark.parametrize(
    "exc_type",
    [
        httpx.ConnectError,
        httpx.ConnectTimeout,
        httpx.PoolTimeout,
        httpx.WriteError,
        httpx.WriteTimeout,
    ],
)
async def test_a_request_that_never_left_is_transient(
    exc_type: type[httpx.TransportError],
):
    outcome = await call(raising(exc_type, "boom"))

    assert outcome.kind is Kind.TRANSIENT
    assert outcome.http_status is None


@pytest.mark.parametrize(
    ("exc_type", "message", "connect_failed", "detail"),
    [
        (httpx.ConnectError, "[Errno 111] Connection refused", True, "[Errno 111]"),
        (httpx.ConnectError, "[Errno -2] Name or service not known", True, "Name"),
        (httpx.ConnectError, "[SSL: WRONG_VERSION_NUMBER] wrong version", True, "SSL"),
        (httpx.ConnectTimeout, "", True, "connect timeout"),
        (httpx.WriteError, "broken pipe", False, None),
        (httpx.PoolTimeout, "", False, None),
    ],
)
async def test_a_connection_that_could_not_be_opened_is_told_apart(
    exc_type: type[httpx.TransportError],
    message: str,
    connect_failed: bool,
    detail: str | None,
):
    # The run loop stops a run on it while the base URL has answered nothing.
    outcome = await call(raising(exc_type, message))

    assert outcome.kind is Kind.TRANSIENT
    assert outcome.connect_failed is connect_failed
    if detail is not None:
        assert outcome.reason.startswith(f"could not connect to {GENERATE_URL} (")
        assert detail in outcome.reason


@pytest.mark.parametrize(
    ("exc_type", "message", "reason"),
    [
        (httpx.ReadTimeout, "timed out", "read timeout"),
        (httpx.ReadError, "reset by peer", "connection dropped while waiting"),
        (
            httpx.RemoteProtocolError,
            "Server disconnected without sending a response.",
            "server disconnected without sending a response",
        ),
    ],
)
async def test_a_request_sent_but_unanswered_is_unknown(
    exc_type: type[httpx.TransportError], message: str, reason: str
):
    outcome = await call(raising(exc_type, message))

    assert outcome.kind is Kind.UNKNOWN
    assert outcome.reason.startswith(reason)


class _BrokenStream(httpx.AsyncByteStream):
    """A body that stops half way, as when the connection drops mid-answer."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"candidates": ['
        raise httpx.RemoteProtocolError(
            "peer closed connection without sending complete message body"
        )


async def test_a_connection_dropped_mid_body_is_unknown():
    outcome = await call(lambda request: httpx.Response(200, stream=_BrokenStream()))

    assert outcome.kind is Kind.UNKNOWN
    assert outcome.reason.startswith("connection dropped mid-answer")


async def test_an_error_status_whose_body_drops_is_still_classified_by_status():
    outcome = await call(lambda request: httpx.Response(503, stream=_BrokenStream()))

    assert outcome.kind is Kind.TRANSIENT
    assert outcome.reason == "HTTP 503"


async def test_cancellation_propagates():
    async def handler(request: httpx.Request) -> httpx.Response:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    with anyio.move_on_after(0.05) as scope:
        await call(handler)

    assert scope.cancelled_caught


# --- redaction -----------------------------------------------------------------


def test_redact_masks_the_key_plain_and_url_encoded():
    secret = "sk-a/b+c"
    text = f"bad key {secret} in ?key=sk-a%2Fb%2Bc"

    assert client.redact(text, secret) == "bad key [REDACTED] in ?key=[REDACTED]"
    assert client.redact(text, None) == text


async def test_a_401_that_echoes_the_key_does_not_leak_it():
    body = {"error": {"message": f"invalid token {KEY}", "code": "invalid_api_key"}}
    outcome = await call(reply(401, body))

    assert outcome.kind is Kind.FATAL_RUN
    assert KEY not in outcome.reason
    assert KEY not in repr(outcome)
    assert "[REDACTED]" in outcome.reason


async def test_a_key_echoed_at_the_clipping_boundary_does_not_leak_a_prefix():
    message = "x" * 190 + f" {KEY} " + "y" * 50
    outcome = await call(reply(400, {"error": {"message": message}}))

    assert KEY[:8] not in outcome.reason


async def test_an_exception_message_with_the_key_does_not_leak_it():
    outcome = await call(raising(httpx.ConnectError, f"proxy refused Bearer {KEY}"))

    assert outcome.kind is Kind.TRANSIENT
    assert KEY not in repr(outcome)


async def test_a_key_echoed_in_a_200_answer_does_not_leak_it():
    body = answer([{"text": f"your key is {KEY}"}])
    outcome = await call(reply(200, body))

    assert outcome.kind is Kind.NO_IMAGE
    assert KEY not in repr(outcome)


async def test_reasons_are_kept_short():
    outcome = await call(reply(400, {"error": {"message": "m" * 5000}}))

    assert len(outcome.reason) <= client.MAX_REASON_CHARS


# --- http client ---------------------------------------------------------------


async def test_make_http_client_uses_the_default_timeouts_and_no_redirects():
    async with client.make_http_client(concurrency=8) as http:
        assert http.timeout == client.DEFAULT_TIMEOUT
        assert http.timeout.read == 300
        assert http.timeout.connect == 15
        assert http.timeout.pool is None
        assert http.follow_redirects is False
        transport: Any = http._transport
        sizes = [p._pool._max_connections for p in transport._pools]
        assert sum(sizes) >= 8 + client.URL_FETCH_CONNECTIONS
        assert max(sizes) <= client.POOL_SHARD_SIZE


async def test_a_thousand_connections_are_small_pools_sharing_one_tls_context():
    async with client.make_http_client(concurrency=1024) as http:
        transport: Any = http._transport
        pools = [p._pool for p in transport._pools]
        sizes = [p._max_connections for p in pools]
        assert sum(sizes) >= 1024 + client.URL_FETCH_CONNECTIONS
        assert max(sizes) <= client.POOL_SHARD_SIZE
        assert len({id(p._ssl_context) for p in pools}) == 1


async def test_generate_content_goes_straight_to_the_pool_not_through_client_send(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def layered_send(*args: Any, **kwargs: Any) -> httpx.Response:
        raise AssertionError("generateContent went through AsyncClient.send")

    monkeypatch.setattr(httpx.AsyncClient, "send", layered_send)
    outcome = await call(reply(200, sample("200-image.json")))

    assert outcome.kind is Kind.SUCCESS


async def test_a_given_transport_is_the_network_even_with_a_proxy_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    outcome = await call(reply(200, sample("200-image.json")))

    assert outcome.kind is Kind.SUCCESS


async def test_make_http_client_accepts_a_timeout():
    timeout = httpx.Timeout(5.0)
    async with client.make_http_client(concurrency=1, timeout=timeout) as http:
        assert http.timeout == timeout


async def test_a_proxy_named_in_the_environment_is_used_and_no_proxy_respected(
    sim: SimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    # A proxy that refuses connections: a call routed through it never arrives.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    async with client.make_http_client(concurrency=1) as http:
        outcome = await client.generate(http, Endpoint(sim.url), make_request(), [])
    assert outcome.kind is Kind.TRANSIENT
    assert sim.stats()["requests"] == 0

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    async with client.make_http_client(concurrency=1) as http:
        outcome = await client.generate(http, Endpoint(sim.url), make_request(), [])
    assert outcome.kind is Kind.SUCCESS
    assert sim.stats()["requests"] == 1

    # The simulated API on this machine is never reached through a proxy.
    monkeypatch.delenv("NO_PROXY")
    async with client.make_http_client(concurrency=1, base_url=sim.url) as http:
        outcome = await client.generate(http, Endpoint(sim.url), make_request(), [])
    assert outcome.kind is Kind.SUCCESS
    assert sim.stats()["requests"] == 2


async def test_a_one_letter_key_does_not_corrupt_image_data_in_a_relay_answer() -> None:
    body = sample("200-relay-markdown-data-uri.json")
    outcome = await call(
        reply(200, body), endpoint=Endpoint("https://relay.test", api_key="A")
    )
    assert outcome.kind is Kind.SUCCESS
    assert outcome.images == (client.Image("image/png", PNG, "data-uri"),)


async def test_the_pool_shards_share_the_load_and_get_every_slot_back(
    sim: SimServer,
) -> None:
    sim.add_fault(Fault("slow", delay=0.05))
    async with client.make_http_client(concurrency=24) as http:
        transport: Any = http._transport
        peak: list[int] = []

        async def one(i: int) -> None:
            outcome = await client.generate(
                http, Endpoint(sim.url), make_request(text=f"load {i}"), []
            )
            assert outcome.kind is Kind.SUCCESS
            peak.append(max(transport._busy))

        for wave in range(2):
            async with anyio.create_task_group() as tg:
                for i in range(24):
                    tg.start_soon(one, wave * 100 + i)
        assert transport._busy == [0] * len(transport._pools)
        assert max(peak) <= client.POOL_SHARD_SIZE


# -- at a thousand requests in flight ------------------------------------------------


def test_a_request_body_carries_each_encoded_reference_as_given_not_a_copy() -> None:
    refs = (make_reference("a.png"), make_reference("b.jpg", "image/jpeg"))
    request = make_request(references=refs)
    images = [client.InlineImage.of(b"one" * 1000), client.InlineImage.of(b"two")]

    pieces = request_module.encode_body(request, images)

    assert json.loads(b"".join(pieces)) == client.build_body(
        request, [b"one" * 1000, b"two"]
    )
    assert [p for p in pieces if any(p is i.b64 for i in images)] == [
        images[0].b64,
        images[1].b64,
    ]


def test_a_continued_conversation_carries_each_image_where_its_part_names_it() -> None:
    first, second = make_reference("a.png"), make_reference("b.png")
    # a model turn whose parts name its files out of order
    model_turn = Turn(
        "model",
        (
            {"inlineData": {"mimeType": "image/png", FILE: 1}},
            {
                "inlineData": {"mimeType": "image/png", FILE: 0},
                "thoughtSignature": "c2ln",
            },
        ),
        (first, second),
    )
    request = replace(
        make_request(references=(make_reference("c.png"),)),
        history=(Turn.user("earlier", ()), model_turn),
    )
    images = [b"first", b"second", b"third"]

    pieces = request_module.encode_body(
        request, [client.InlineImage.of(i) for i in images]
    )
    body = json.loads(b"".join(pieces))

    assert body == client.build_body(request, images)
    sent = [
        base64.b64decode(part.get("inlineData", part.get("inline_data"))["data"])
        for turn in body["contents"]
        for part in turn["parts"]
        if "inlineData" in part or "inline_data" in part
    ]
    assert sent == [b"second", b"first", b"third"]
    assert body["contents"][1]["parts"][1]["thoughtSignature"] == "c2ln"


def test_a_prompt_that_is_the_body_marker_still_gets_its_own_body(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(secrets, "token_hex", lambda n: "0" * 2 * n)
    text = "runner-image-0000000000000000-0"
    request = make_request(text=text, references=(make_reference(),))
    pieces = request_module.encode_body(request, [PNG])
    assert json.loads(b"".join(pieces)) == client.build_body(request, [PNG])


async def test_a_large_answer_document_is_parsed_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[str] = []
    read = answer_module._read

    def spy(*args: Any) -> Any:
        threads.append(threading.current_thread().name)
        return read(*args)

    monkeypatch.setattr(answer_module, "_read", spy)
    filler = "x" * answer_module.PARSE_OFF_LOOP_BYTES
    relayed = [{"text": f"{filler} data:image/png;base64,{PNG_B64}"}]
    big = await call(reply(200, answer(relayed)))
    small = await call(reply(200, sample("200-relay-markdown-data-uri.json")))

    assert big.images == small.images == (client.Image("image/png", PNG, "data-uri"),)
    loop = threading.current_thread().name
    assert threads[0] != loop and threads[1] == loop


async def test_only_so_many_answers_are_read_at_once_the_rest_wait_unread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(transport_module, "ANSWERS_READ_AT_ONCE", 3)
    reading = 0
    most = 0
    body = json.dumps(sample("200-image.json")).encode()

    class Slow(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            nonlocal reading, most
            reading += 1
            most = max(most, reading)
            for start in range(0, len(body), 256):
                await anyio.sleep(0.001)
                yield body[start : start + 256]
            reading -= 1

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Slow())

    mock = httpx.MockTransport(handler)
    outcomes: list[Outcome] = []
    async with client.make_http_client(concurrency=10, transport=mock) as http:

        async def one() -> None:
            outcomes.append(
                await client.generate(http, Endpoint(BASE, KEY), make_request(), [])
            )

        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(one)

    assert [o.kind for o in outcomes] == [Kind.SUCCESS] * 10
    assert most == 3


async def test_spilled_image_data_is_written_from_worker_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    flush = blobs_module._SpoolFile.flush

    def spy(self: Any) -> None:
        threads.append(threading.current_thread().name)
        flush(self)

    monkeypatch.setattr(blobs_module._SpoolFile, "flush", spy)
    with SimServer(image_scale=0.0625, image_pad_bytes=2_000_000) as sim:
        async with client.make_http_client(concurrency=1) as http:
            outcome = await client.generate(
                http, Endpoint(sim.url), make_request(), [], spool_dir=tmp_path
            )

    (image,) = outcome.images
    assert image.path is not None and image.path.stat().st_size > 2_000_000
    assert len(threads) > 1  # written as it arrives, not at the end
    assert threading.current_thread().name not in threads


async def test_answers_are_read_in_pieces_larger_than_httpcores_64_kb(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sizes: list[int] = []
    feed = BlobExtractor.feed

    def spy(self: BlobExtractor, chunk: bytes) -> None:
        sizes.append(len(chunk))
        feed(self, chunk)

    monkeypatch.setattr(BlobExtractor, "feed", spy)
    with SimServer(image_scale=0.0625, image_pad_bytes=2_000_000) as sim:
        async with client.make_http_client(concurrency=1) as http:
            outcome = await client.generate(http, Endpoint(sim.url), make_request(), [])

    assert outcome.kind is Kind.SUCCESS
    assert sum(sizes) > 2_000_000
    assert max(sizes) > 64 * 1024
