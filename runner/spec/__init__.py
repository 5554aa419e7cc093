"""Job file (YAML) -> frozen, validated `JobSpec`: `load_job` and the values it makes.

Owns nothing itself: it re-exports the package's public names. Reading starts in
`job.py`; the package must not open the store, use the network or write anything.
"""

from __future__ import annotations

from runner.spec.derived import MODES, PARENT_RATIO, Derivation
from runner.spec.document import MAX_JOB_FILE_BYTES, MAX_NESTING
from runner.spec.job import load_job
from runner.spec.keys import TOP_LEVEL_KEYS
from runner.spec.prompts import PROMPT_KEYS
from runner.spec.references import MAX_REFERENCE_BYTES, MAX_REFERENCE_PIXELS
from runner.spec.settings import BUDGET_KEYS
from runner.spec.types import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_UNKNOWN_RETRIES,
    DEFAULT_MODEL,
    MATRIX_AXIS_KEYS,
    MAX_ATTEMPTS_LIMIT,
    MAX_CONCURRENCY,
    MAX_ITEMS,
    MAX_REFERENCES_PER_SET,
    MAX_SAMPLES,
    MAX_UNKNOWN_RETRIES_LIMIT,
    SUPPORTED_ASPECT_RATIOS,
    SUPPORTED_IMAGE_SIZES,
    TRANSPORTS,
    Budget,
    JobSpec,
    MatrixEntry,
    Prompt,
    Reference,
)

__all__ = [
    "BUDGET_KEYS",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MAX_UNKNOWN_RETRIES",
    "DEFAULT_MODEL",
    "MATRIX_AXIS_KEYS",
    "MAX_ATTEMPTS_LIMIT",
    "MAX_CONCURRENCY",
    "MAX_ITEMS",
    "MAX_JOB_FILE_BYTES",
    "MAX_NESTING",
    "MAX_REFERENCES_PER_SET",
    "MAX_REFERENCE_BYTES",
    "MAX_REFERENCE_PIXELS",
    "MAX_SAMPLES",
    "MAX_UNKNOWN_RETRIES_LIMIT",
    "MODES",
    "PARENT_RATIO",
    "PROMPT_KEYS",
    "SUPPORTED_ASPECT_RATIOS",
    "SUPPORTED_IMAGE_SIZES",
    "TOP_LEVEL_KEYS",
    "TRANSPORTS",
    "Budget",
    "Derivation",
    "JobSpec",
    "MatrixEntry",
    "Prompt",
    "Reference",
    "load_job",
]
