"""What one generateContent call ends as: a frozen `Outcome` of a `Kind`, with images.

Owns: the outcome kinds of SPEC section 1, the `Image` and `Outcome` values, the
answer's parts as kept for a later turn (the note at `FILE_KEY`), and how every
classifier writes a reason (clipped to one short line, sizes in MiB). Must not send,
classify or redact: the modules that do build these values.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
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
    # its index in Outcome.parts (an inlineData part); where it came from, not
    # what it is, so not compared
    part: int | None = field(default=None, compare=False)

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
    # The answer itself, for a later turn (SPEC section 1): see FILE_KEY.
    parts: tuple[Mapping[str, Any], ...] = ()
    grounding: Mapping[str, Any] | None = None  # the candidate's groundingMetadata

    def with_files(self, files: Sequence[str]) -> Outcome:
        """This outcome with `files[i]` (where `images[i]` was written) named in
        the inlineData part that image came from (see FILE_KEY)."""
        parts = list(self.parts)
        for image, file in zip(self.images, files, strict=True):
            if image.part is None:
                continue
            part = dict(parts[image.part])
            key = "inlineData" if "inlineData" in part else "inline_data"
            part[key] = {**part[key], FILE_KEY: file}
            parts[image.part] = part
        return replace(self, parts=tuple(parts))


# What the store keeps of an answer: the first candidate's `content.parts` (the one
# turn a chat sends back: google-genai's chats.py records
# `response.candidates[0].content` as the model's turn), in order and verbatim
# (`text`, `thought`, `thoughtSignature`, `fileData`, any other field), except:
# - an `inlineData` part loses its `data`: a final image gets FILE_KEY, the path of
#   its file under the job folder, from which a later turn reads the bytes back into
#   `data`; an interim image (`thought: true`) keeps only its mime type and thought
#   flag. Google's image-generation docs ("Thought Signatures",
#   ai.google.dev/gemini-api/docs/image-generation): every final image part and the
#   first text part after the thoughts carry a `thoughtSignature` to pass back
#   exactly as received; "if inline_data parts with image mimetype are part of
#   thoughts, they won't have signatures". So a later turn sends the kept parts
#   back with the final images' bytes and leaves out the thought images, whose
#   bytes are not kept (the SDK's chat would send them too; Google does not say it
#   needs them: unconfirmed).
# - data URIs in a relay's text lose their base64 (`data:image/png;base64,…`): the
#   images are in the images folder, and relays carry no signatures to keep.
# - a text longer than MAX_KEPT_TEXT_CHARS is cut there, its full length under
#   CUT_KEY: only a relay pads an answer like that, and the store is no place for it.
FILE_KEY = "file"
CUT_KEY = "textChars"
MAX_KEPT_TEXT_CHARS = 64 * 1024


def clip(text: str, limit: int) -> str:
    """`text` on one line, at most `limit` characters (an ellipsis marks a cut)."""
    text = " ".join(text[: limit * 8].split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def size_text(n: int) -> str:
    """`n` bytes for a reason: "2 MiB" from a mebibyte up, else "4000 bytes"."""
    mib = n / (1024 * 1024)
    return f"{mib:g} MiB" if mib >= 1 else f"{n} bytes"
