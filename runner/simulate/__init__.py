"""A simulated Gemini API on loopback (generateContent, and the Batch and Files APIs
that run the same requests as batches), with scripted fault injection, for `runner
submit --simulate`, tests and benchmarks; `python -m runner.simulate` serves it on
its own.

A hand-written HTTP/1.1 server on anyio (byte-level control is what lets it drop a
connection mid-body) answers with generated PNGs. Must not be imported by the core
modules, import any other runner module, keep an API key, or use the network beyond
its own listening socket.
"""

from __future__ import annotations

from runner.simulate.faults import (
    BAD_BASE64,
    BATCH_FAULT_KINDS,
    DEFAULT_FAULT_MIX,
    DEFAULT_HUGE_SIZE,
    DEFAULT_RETRY_DELAY,
    DEFAULT_SLOW_DELAY,
    FAULT_KINDS,
    NON_JSON_BODY,
    Fault,
    parse_rules,
)
from runner.simulate.models import (
    ASPECT_RATIOS,
    CANDIDATE_TOKENS,
    IMAGE_SIZES,
    MODELS,
    ModelSpec,
    image_dimensions,
    nearest_aspect_ratio,
)
from runner.simulate.server import SimServer
from runner.simulate.stats import BatchSummary, BatchTotals, BodyStats, Stats
from runner.simulate.wire import IDLE_TIMEOUT, MAX_BODY_BYTES, MAX_HEAD_BYTES

__all__ = [
    "ASPECT_RATIOS",
    "BAD_BASE64",
    "BATCH_FAULT_KINDS",
    "CANDIDATE_TOKENS",
    "DEFAULT_FAULT_MIX",
    "DEFAULT_HUGE_SIZE",
    "DEFAULT_RETRY_DELAY",
    "DEFAULT_SLOW_DELAY",
    "FAULT_KINDS",
    "IDLE_TIMEOUT",
    "IMAGE_SIZES",
    "MAX_BODY_BYTES",
    "MAX_HEAD_BYTES",
    "MODELS",
    "NON_JSON_BODY",
    "BatchSummary",
    "BatchTotals",
    "BodyStats",
    "Fault",
    "ModelSpec",
    "SimServer",
    "Stats",
    "image_dimensions",
    "nearest_aspect_ratio",
    "parse_rules",
]
