"""The frozen values a job file becomes: `JobSpec` and its parts.

Owns: `JobSpec`, `Prompt`, `Reference`, `Budget`, `MatrixEntry`, the defaults and
limits of the job's settings, the aspect ratios and image sizes any model takes
(from runner.models), and the rule for names that become file names. Must not read
files or YAML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner import models
from runner.spec.templates import render_template

if TYPE_CHECKING:
    from collections.abc import Mapping

    from runner.spec.derived import Derivation

DEFAULT_MODEL = "gemini-3.1-flash-image-preview"
DEFAULT_CONCURRENCY = 8
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_MAX_UNKNOWN_RETRIES = 1
# How a job's requests are sent (SPEC 7): one generateContent call each, or
# through the Batch API.
TRANSPORTS = ("interactive", "batch")
DEFAULT_TRANSPORT = "interactive"
# What any model takes; the job's own model may take less (runner.models).
SUPPORTED_ASPECT_RATIOS = (*models.ASPECT_RATIOS, "auto")
SUPPORTED_IMAGE_SIZES = models.IMAGE_SIZES

MAX_REFERENCES_PER_SET = models.MAX_REFERENCES
MAX_SAMPLES = 1000
MAX_ITEMS = 1_000_000  # items one job may make (SPEC section 2), even with --yes
MAX_CONCURRENCY = 1024
MAX_ATTEMPTS_LIMIT = 100
MAX_UNKNOWN_RETRIES_LIMIT = 10

# A job name or prompt id: also the JSON Schema's pattern (runner.spec.schema).
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
NAME_RULE = (
    "letters, digits, '.', '_' and '-' only, starting with a letter or digit, "
    "at most 100 characters, no '..'"
)


@dataclass(frozen=True, slots=True)
class Prompt:
    id: str
    text: str  # the template, with {placeholders}
    placeholders: tuple[str, ...]  # names used, in first-use order, no duplicates
    line: int | None = None  # in the job file, or in the list file it came from

    def render(self, values: Mapping[str, str]) -> str:
        """Substitute {name} placeholders; '{{' and '}}' are literal braces."""
        return render_template(self.text, values, self.id)


@dataclass(frozen=True, slots=True)
class Reference:
    path: str  # as written in the job file
    abs_path: Path
    sha256: str  # hex digest of the file's bytes
    mime_type: str  # from the bytes (Pillow format), e.g. image/png
    width: int
    height: int
    size: int  # bytes

    def to_dict(self) -> dict[str, Any]:
        """As a planned request's JSON keeps it (the store's request_json)."""
        return {
            "path": self.path,
            "abs_path": str(self.abs_path),
            "sha256": self.sha256,
            "mime_type": self.mime_type,
            "width": self.width,
            "height": self.height,
            "size": self.size,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reference:
        return cls(
            path=data["path"],
            abs_path=Path(data["abs_path"]),
            sha256=data["sha256"],
            mime_type=data["mime_type"],
            width=data["width"],
            height=data["height"],
            size=data["size"],
        )


@dataclass(frozen=True, slots=True)
class Budget:
    max_requests: int | None = None
    max_images: int | None = None
    max_cost_usd: float | None = None


MATRIX_AXIS_KEYS = ("prompt", "aspect_ratio", "image_size", "references", "sample")


@dataclass(frozen=True, slots=True)
class MatrixEntry:
    """One normalised `exclude` or `include` entry; None means 'key not given'."""

    prompt: str | None = None
    aspect_ratio: str | None = None
    image_size: str | None = None
    references: int | None = None  # 0-based index into JobSpec.all_reference_sets
    vars: Mapping[str, str] = field(default_factory=dict)
    sample: int | None = None  # 1-based
    line: int | None = None


@dataclass(frozen=True, slots=True)
class JobSpec:
    path: Path
    name: str
    model: str
    prompts: tuple[Prompt, ...]
    vars: Mapping[str, tuple[str, ...]]
    aspect_ratios: tuple[str, ...]
    image_sizes: tuple[str | None, ...]  # (None,) when the file names none
    references: tuple[tuple[Reference, ...], ...]  # the axis; ((),) = text only
    extra_reference_sets: tuple[tuple[Reference, ...], ...]  # only named by include
    samples: int
    generation: Mapping[str, Any]
    system_instruction: str | None
    safety_settings: tuple[Mapping[str, Any], ...] | None
    exclude: tuple[MatrixEntry, ...]
    include: tuple[MatrixEntry, ...]
    concurrency: int
    max_attempts: int
    max_unknown_retries: int
    budget: Budget
    rpm: float | None = None  # requests-per-minute cap; None = no cap
    pricing: Mapping[str, float] | None = None  # overrides of runner.pricing.PRICES
    tools: tuple[Mapping[str, Any], ...] | None = None  # the request's `tools`
    transport: str = DEFAULT_TRANSPORT  # one of TRANSPORTS; not part of item keys
    source_sha256: str = ""  # of the job file's text: unchanged file, unchanged plan
    warnings: tuple[str, ...] = ()  # non-fatal remarks, e.g. a var no prompt uses
    derived: Derivation | None = None  # `from:` and `mode:` (SPEC 6)

    @property
    def all_reference_sets(self) -> tuple[tuple[Reference, ...], ...]:
        return self.references + self.extra_reference_sets


def valid_name(name: str) -> bool:
    """Whether a job name or prompt id can name an output folder or file."""
    return _NAME_RE.fullmatch(name) is not None and ".." not in name


_NAME_RE = re.compile(NAME_PATTERN)
