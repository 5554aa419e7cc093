"""What a grounded answer shows beside its image: its sources and search suggestions.

Owns reading a stored `groundingMetadata` (google-genai types.py `GroundingMetadata`:
`groundingChunks[].web|image`, `searchEntryPoint.renderedContent`,
`webSearchQueries`) into a `Grounding`, keeping only the links a page may offer
(http and https). Pure: must not render HTML, and never fetches a source: Google's
grounding docs ask that those URIs be opened by people, not queried by programs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from collections.abc import Mapping


@dataclass(frozen=True, slots=True)
class Source:
    title: str
    uri: str  # http or https


@dataclass(frozen=True, slots=True)
class Grounding:
    sources: tuple[Source, ...]  # in the answer's order, each URI once
    suggestions: str | None  # searchEntryPoint.renderedContent, exactly as given
    queries: tuple[str, ...]  # the searches the model ran (webSearchQueries, ...)


def read_grounding(metadata: Mapping[str, Any] | None) -> Grounding | None:
    """The sources and search suggestions of a `groundingMetadata`, or None when
    it has neither (nothing to show)."""
    if not isinstance(metadata, dict):
        return None
    sources: dict[str, Source] = {}
    for chunk in _list(metadata.get("groundingChunks")):
        if not isinstance(chunk, dict):
            continue
        web, image = chunk.get("web"), chunk.get("image")
        if isinstance(web, dict):
            uri, title = web.get("uri"), web.get("title") or web.get("domain")
        elif isinstance(image, dict):
            # The page the image was found on, never the image itself: a link,
            # not something the gallery would load.
            uri = image.get("sourceUri")
            title = image.get("title") or image.get("domain")
        else:
            continue
        if isinstance(uri, str) and _is_web_link(uri) and uri not in sources:
            label = title if isinstance(title, str) and title else urlsplit(uri).netloc
            sources[uri] = Source(label, uri)
    entry = metadata.get("searchEntryPoint")
    rendered = entry.get("renderedContent") if isinstance(entry, dict) else None
    suggestions = rendered if isinstance(rendered, str) and rendered.strip() else None
    queries = tuple(
        q
        for key in ("webSearchQueries", "imageSearchQueries")
        for q in _list(metadata.get(key))
        if isinstance(q, str) and q
    )
    if not sources and suggestions is None and not queries:
        return None
    return Grounding(tuple(sources.values()), suggestions, queries)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _is_web_link(uri: str) -> bool:
    # Anything else (javascript:, data:, file:) would run or load something on a
    # click in the gallery.
    parts = urlsplit(uri)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
