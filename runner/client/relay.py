"""Images that API relays put in text: data URIs, Markdown image links, image URLs.

Owns: finding data-URI images and image links in a text part (cheaply, since a relay
may send megabytes of text), which URLs may be fetched at all (`refusal`), and
fetching an image URL, without the key, from the CDN it points at. Must not decide
what an answer means: `answer` does, with what this module finds.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

import anyio
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
# Redirects of an image URL followed, each target checked like the URL itself.
MAX_URL_REDIRECTS = 5

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def images_in_text(text: str) -> tuple[list[Image], list[str], int, str]:
    """Data-URI images (decoded), image URLs (to fetch), how many data URIs were
    empty, and `text` with the image data elided. `ImageDataError` on bad base64."""
    images: list[Image] = []
    empty = 0
    if _has_data_uri(text):
        for match in _DATA_URI.finditer(text):
            data = decode_image_data(match.group(2), "data URI")
            if data:
                mime = match.group(1).lower()
                images.append(Image(mime, data, "data-uri"))
            else:
                empty += 1
        text = without_image_data(text)
    urls = _image_urls(_DATA_URI.sub("", text)) if "http" in text else []
    return images, urls, empty, text


def without_image_data(text: str) -> str:
    """`text` with the base64 of its data-URI images elided."""
    if not _has_data_uri(text):
        return text
    return _DATA_URI.sub(r"data:\1;base64,…", text)


async def fetch_image(
    http: httpx.AsyncClient, url: str, max_bytes: int, base_url: str
) -> Image | str:
    """The image at a relay URL named in an answer from `base_url`, or why it could
    not be had. No auth header: the URL usually points at a CDN that must not see
    the key. Each URL, and each redirect's target, must pass `refusal` first."""
    try:
        for _ in range(MAX_URL_REDIRECTS + 1):
            refused = await refusal(url, base_url)
            if refused is not None:
                return f"not fetched: {refused}"
            async with http.stream(
                "GET",
                url,
                headers={"User-Agent": USER_AGENT},
                follow_redirects=False,  # followed here, each target checked
                timeout=DEFAULT_URL_FETCH_TIMEOUT,
            ) as response:
                location = response.headers.get("location")
                if response.is_redirect and location:
                    url = str(response.url.join(location))
                    continue
                if not response.is_success:
                    return f"HTTP {response.status_code}"
                body, too_large = await read_limited(response, max_bytes)
                mime = response.headers.get("content-type", "").split(";")[0].strip()
                break
        else:
            return f"more than {MAX_URL_REDIRECTS} redirects"
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
        return str(exc) or type(exc).__name__
    if too_large:
        return f"larger than {size_text(max_bytes)}"
    if not body:
        return "empty body"
    if mime.startswith("text/") or mime in ("application/json", "application/xml"):
        return f"not an image ({mime})"
    return Image(mime.lower(), body, "url")


async def refusal(url: str, base_url: str) -> str | None:
    """Why an image URL named in an answer from `base_url` is not fetched, or None.

    Fetched: any URL on the base URL's own origin (scheme, host and port: a relay
    serving its files, the simulator on loopback), and https URLs whose host is a
    public address, as written and as it resolves. Anything else would let an
    answer make this machine request its own or its network's services (SSRF). The
    host is resolved again to connect; a name that changes its answer in between
    could still slip through (pinning the address would break TLS names)."""
    try:
        target = httpx.URL(url)
        base = httpx.URL(base_url)
    except httpx.InvalidURL as exc:
        return f"not a valid URL ({exc})"
    if _origin(target) == _origin(base):
        return None
    if target.scheme != "https":
        return (
            f"{target.scheme}:// to a host other than the base URL's (other hosts "
            "are fetched only over https)"
        )
    host = target.host
    if not host:
        return "a link without a host"
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        return _not_public(literal, host)
    try:
        with anyio.fail_after(DEFAULT_URL_FETCH_TIMEOUT.connect):
            addresses = await resolve(target.raw_host.decode("ascii"), _port(target))
    except (OSError, TimeoutError, UnicodeError) as exc:
        return f"{host} could not be resolved ({str(exc) or type(exc).__name__})"
    for address in addresses:
        refused = _not_public(ipaddress.ip_address(address.split("%")[0]), host)
        if refused is not None:
            return refused
    return None if addresses else f"{host} could not be resolved"


async def resolve(host: str, port: int) -> list[str]:
    """The IP addresses `host` resolves to (a seam: tests put a table here)."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _not_public(address: IPAddress, host: str) -> str | None:
    """Why `address` (of `host`) is not fetched from: loopback, private, link-local
    and every other non-global range (ipaddress' registry, which counts
    IPv4-mapped IPv6 addresses as not global), or None."""
    if address.is_global and not address.is_multicast:
        return None
    named = host if host == str(address) else f"{host} ({address})"
    return (
        f"{named} is a loopback, private or link-local address (fetched only "
        "from the base URL's own host)"
    )


def _origin(url: httpx.URL) -> tuple[str, bytes, int]:
    return url.scheme, url.raw_host.lower(), _port(url)


def _port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


_DATA_URI = re.compile(r"data:(image/[\w.+-]+);base64,([^)\s\"'<>\]]*)", re.IGNORECASE)
_MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?(https?://[^)\s>]+)>?[^)]*\)")
_BARE_URL = re.compile(r"https?://[^\s)\]\"'<>]+")
_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".avif", ".heic")


def _has_data_uri(text: str) -> bool:
    # Cheap substring checks first: a relay may answer with megabytes
    # of text, and each regex pass over it costs time and a copy.
    return "ase64," in text or "ASE64," in text


def _image_urls(text: str) -> list[str]:
    """Markdown image links always; other links only if the path names an image."""
    found = [m.group(1) for m in _MARKDOWN_IMAGE.finditer(text)]
    for match in _BARE_URL.finditer(_MARKDOWN_IMAGE.sub("", text)):
        url = match.group(0).rstrip(".,;:!?")
        if urlsplit(url).path.lower().endswith(_IMAGE_EXTENSIONS):
            found.append(url)
    return found
