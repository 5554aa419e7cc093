"""What one generateContent call ends as: a frozen `Outcome` of a `Kind`, with images.

Owns: the outcome kinds of SPEC section 1, the `Image` and `Outcome` values, and how
every classifier writes a reason (clipped to one short line, sizes in MiB). Must not
send, classify or redact: the modules that do build these values.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

MAX_REASON_CHARS = 300


class Kind(enum.StrEnum):
    SUCCESS = "success"
    BLOCKED = "blocked"  # terminal; not retried by default
    NO_IMAGE = "no_image"  # answered without an image; retried a bounded number
    TRANSIENT = "transient"  # not billed; retry with backoff
    UNKNOWN = "unknown"  # sent, maybe billed, no usable answer
    FATAL_ITEM = "fatal_item"  # other 4xx: this item can never succeed as is
    FATAL_RUN = "fatal_run"  # every other request would fail alike: stop the run


@dataclass(frozen=True, slots=True)
class Image:
    mime_type: str  # as declared by the answer ('' if none); outputs sniffs bytes
    data: bytes  # b"" when the bytes were spilled to `path`
    source: str = "inline"  # inline | data-uri | url
    path: Path | None = None  # a temp file in the spool folder holding the bytes

    def __repr__(self) -> str:
        # Megabytes of image bytes in a repr make every failing assert unreadable.
        where = f"path={self.path}" if self.path else f"data=<{len(self.data)} bytes>"
        return f"Image(mime_type={self.mime_type!r}, {where}, source={self.source!r})"


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: Kind
    reason: str  # short, human-readable, key-free; "" for success
    http_status: int | None = None
    retry_after: float | None = None  # seconds, from Retry-After or retryDelay
    usage: Mapping[str, Any] | None = None  # the whole usageMetadata object
    model_version: str | None = None
    response_id: str | None = None
    finish_reason: str | None = None  # finishReason or promptFeedback.blockReason
    images: tuple[Image, ...] = ()
    text: str = ""  # non-thought text parts joined, for the record
    latency: float = 0.0  # seconds from send to full reply
    extra_urls: tuple[str, ...] = field(default=())  # image URLs fetched (relay)
    # An error answer's identity, for the systematic-failure stop: HTTP status,
    # Google's `error.status` and `ErrorInfo.reason`, or a relay's error code.
    # Compared in memory only, never stored or shown (reasons are).
    error_code: str | None = None
    # No connection could be opened (refused, DNS, TLS, connect timeout): nothing
    # reached the base URL. The run loop decides whether that stops the run.
    connect_failed: bool = False


def clip(text: str, limit: int) -> str:
    """`text` on one line, at most `limit` characters (an ellipsis marks a cut)."""
    text = " ".join(text[: limit * 8].split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def size_text(n: int) -> str:
    """`n` bytes for a reason: "2 MiB" from a mebibyte up, else "4000 bytes"."""
    mib = n / (1024 * 1024)
    return f"{mib:g} MiB" if mib >= 1 else f"{n} bytes"
