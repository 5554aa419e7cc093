"""What the simulated API counts: requests, connections, statuses, fault kinds,
usage and images sent, per request body; for the Batch and Files APIs, creates per
displayName, each batch's state and counts, the lines answered and their usage.

Owns the counters, their snapshot (`Stats`) and how a sent answer is counted.
Must not lock: the server holds its lock around every read and write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from collections.abc import Callable

    from runner.simulate.gemini import Answer


class PartShape(TypedDict):
    """One part of a request's turn, as the server saw it (never its bytes)."""

    kind: str  # "text", "image" (inline data) or "other"
    sha256: str | None  # an image's, of its decoded bytes
    mime_type: str | None  # an image's, as declared
    signed: bool  # carries a thoughtSignature
    thought: bool  # marked `thought: true`


class TurnShape(TypedDict):
    role: str | None
    parts: tuple[PartShape, ...]


class BodyStats(TypedDict):
    """Per request body (keyed by the sha256 of its raw bytes); never holds a key."""

    received: int
    succeeded: int
    text: str
    aspect_ratio: str | None
    image_size: str | None
    auth: str | None
    # its turns' shapes: what a test checks of a conversation sent back
    contents: tuple[TurnShape, ...]


class BatchSummary(TypedDict):
    """One batch as the server sees it (keyed by its name, "batches/...")."""

    display_name: str
    model: str
    source: str  # "inline" or "file"
    state: str  # BATCH_STATE_*
    requests: int
    succeeded: int  # lines answered with a response
    failed: int  # lines answered with an error


class BatchTotals(TypedDict):
    """The Batch and Files APIs' counters.

    `creates` counts batches created per displayName, including a create whose
    answer was lost: a client that resends a create makes a second batch here as it
    would at Google. `lines`, `by_kind`, `usage` and `images` count the lines
    answered (billed at the batch price), apart from generateContent's counters;
    their request bodies count in `Stats.bodies` like any request's. `uploads`,
    `downloads` and `deletes` count files finalized, downloads sent completely and
    files deleted.
    """

    creates: dict[str, int]
    batches: dict[str, BatchSummary]
    lines: int
    by_kind: dict[str, int]
    usage: dict[str, int]
    images: int
    uploads: int
    downloads: int
    deletes: int


class Stats(TypedDict):
    """`SimServer.stats()`; over `/_sim/stats` the `by_status` keys become strings.

    `by_kind` keys are fault kinds, "ok", "unauthorized" (wrong or missing key),
    "invalid-request" (a 400 the request earned) and "model-not-found" (a model the
    server does not serve, or the fault of that name). `usage` and `images_sent` count
    answers whose body was written completely and could be parsed.
    """

    requests: int
    connections: int
    in_flight: int
    max_in_flight: int
    by_status: dict[int, int]
    by_kind: dict[str, int]
    usage: dict[str, int]
    images_sent: int
    bodies: dict[str, BodyStats]
    batch: BatchTotals


def _usage() -> dict[str, int]:
    return {
        "promptTokenCount": 0,
        "candidatesTokenCount": 0,
        "thoughtsTokenCount": 0,
        "totalTokenCount": 0,
    }


@dataclass(slots=True)
class BatchCounters:
    """The live counters behind `BatchTotals`."""

    creates: dict[str, int] = field(default_factory=dict)
    batches: dict[str, BatchSummary] = field(default_factory=dict)
    lines: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=_usage)
    images: int = 0
    uploads: int = 0
    downloads: int = 0
    deletes: int = 0

    def snapshot(self) -> BatchTotals:
        """A deep copy, safe to hand out."""
        return BatchTotals(
            creates=dict(self.creates),
            batches={k: BatchSummary(**v) for k, v in self.batches.items()},
            lines=self.lines,
            by_kind=dict(self.by_kind),
            usage=dict(self.usage),
            images=self.images,
            uploads=self.uploads,
            downloads=self.downloads,
            deletes=self.deletes,
        )


@dataclass(slots=True)
class Counters:
    """The live counters behind `Stats`."""

    requests: int = 0
    connections: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    by_kind: dict[str, int] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=_usage)
    images_sent: int = 0
    bodies: dict[str, BodyStats] = field(default_factory=dict)
    batch: BatchCounters = field(default_factory=BatchCounters)

    def snapshot(self) -> Stats:
        """A deep copy, safe to hand out."""
        return Stats(
            requests=self.requests,
            connections=self.connections,
            in_flight=self.in_flight,
            max_in_flight=self.max_in_flight,
            by_status=dict(self.by_status),
            by_kind=dict(self.by_kind),
            usage=dict(self.usage),
            images_sent=self.images_sent,
            bodies={k: BodyStats(**v) for k, v in self.bodies.items()},
            batch=self.batch.snapshot(),
        )


def recorder(reply: Answer, body_hash: str) -> Callable[[Counters, int], None]:
    """Counts `reply` (sign 1) once sent, or takes it back (sign -1) if the write
    failed: its usage, its images, and a success for its request body."""

    def record(stats: Counters, sign: int) -> None:
        if reply.usage is not None:
            for name in stats.usage:
                stats.usage[name] += sign * int(reply.usage.get(name, 0))
        if reply.images:
            stats.images_sent += sign * reply.images
            body = stats.bodies.get(body_hash)  # absent after a reset mid-request
            if body is not None:
                body["succeeded"] += sign

    return record
