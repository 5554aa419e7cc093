"""Images that API relays put in text: data URIs, Markdown image links, image URLs.

Owns: finding data-URI images and image links in a text part (cheaply, since a relay
may send megabytes of text) and fetching an image URL, without the key, from the CDN
it points at. Must not decide what an answer means: `answer` does, with what this
module finds.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx

from runner.client.blobs import decode_image_data
from runner.client.outcome import Image, size_text
from runner.client.request import USER_AGENT
from runner.client.transport import read_limited

# Relay image URLs point at a CDN: a short read timeout, and a pool timeout so a
# stuck fetch cannot hold an already-paid answer forever.
DEFAULT_URL_FETCH_TIMEOUT = httpx.Timeout(
    connect=15.0, write=15.0, read=60.0, pool=60.0
)


def images_in_text(text: str) -> tuple[list[Image], list[str], int, str]:
    """Data-URI images (decoded), image URLs (to fetch), how many data URIs were
    empty, and `text` with the image data elided. `ImageDataError` on bad base64."""
    images: list[Image] = []
    empty = 0
    # Cheap substring checks first: a relay may answer with megabytes
    # of text, and each regex pass over it costs time and a copy.
    if "ase64," in text or "ASE64," in text:
        for match in _DATA_URI.finditer(text):
            data = decode_image_data(match.group(2), "data URI")
            if data:
                mime = match.group(1).lower()
                images.append(Image(mime, data, "data-uri"))
            else:
                empty += 1
        text = _DATA_URI.sub(r"data:\1;base64,…", text)
    urls = _image_urls(_DATA_URI.sub("", text)) if "http" in text else []
    return images, urls, empty, text


async def fetch_image(http: httpx.AsyncClient, url: str, max_bytes: int) -> Image | str:
    """The image at a relay URL, or why it could not be had. No auth header: the
    URL usually points at a CDN that must not see the key."""
    try:
        async with http.stream(
            "GET",
            url,
            headers={"User-Agent": USER_AGENT},
            follow_redirects=True,
            timeout=DEFAULT_URL_FETCH_TIMEOUT,
        ) as response:
            if not response.is_success:
                return f"HTTP {response.status_code}"
            body, too_large = await read_limited(response, max_bytes)
            mime = response.headers.get("content-type", "").split(";")[0].strip()
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
        return str(exc) or type(exc).__name__
    if too_large:
        return f"larger than {size_text(max_bytes)}"
    if not body:
        return "empty body"
    if mime.startswith("text/") or mime in ("application/json", "application/xml"):
        return f"not an image ({mime})"
    return Image(mime.lower(), body, "url")


_DATA_URI = re.compile(r"data:(image/[\w.+-]+);base64,([^)\s\"'<>\]]*)", re.IGNORECASE)
_MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?(https?://[^)\s>]+)>?[^)]*\)")
_BARE_URL = re.compile(r"https?://[^\s)\]\"'<>]+")
_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".avif", ".heic")


def _image_urls(text: str) -> list[str]:
    """Markdown image links always; other links only if the path names an image."""
    found = [m.group(1) for m in _MARKDOWN_IMAGE.finditer(text)]
    for match in _BARE_URL.finditer(_MARKDOWN_IMAGE.sub("", text)):
        url = match.group(0).rstrip(".,;:!?")
        if urlsplit(url).path.lower().endswith(_IMAGE_EXTENSIONS):
            found.append(url)
    return found
