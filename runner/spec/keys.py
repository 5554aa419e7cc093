"""The job file's top-level keys: their order, what each means, an example of each.

Owns: `KEYS`, the one list of top-level keys: the reader refuses any other, and the
JSON Schema (`schema`) and the starter file (`starter`) take their keys,
descriptions and examples from it; and the ranges and defaults of the whole-number
settings, which the reader checks and the schema states. Must not read YAML.
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.spec.types import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_UNKNOWN_RETRIES,
    DEFAULT_MODEL,
    MAX_ATTEMPTS_LIMIT,
    MAX_CONCURRENCY,
    MAX_SAMPLES,
    MAX_UNKNOWN_RETRIES_LIMIT,
)


@dataclass(frozen=True, slots=True)
class Key:
    """One top-level key: a one-line description and an example value (YAML text
    after `key:`; a block when it starts with a line break)."""

    name: str
    description: str
    example: str


KEYS = (
    Key(
        "name",
        "The job's name and results folder, output/<name>/; default: the job "
        "file's name without .yaml.",
        "my-job",
    ),
    Key(
        "model",
        "The model id; one runner does not know is allowed, with a warning.",
        DEFAULT_MODEL,
    ),
    Key(
        "prompts",
        "The prompts: text, or {id, text}, with {placeholders} naming vars; ids "
        "default to p1, p2, ... Or {file: prompts.txt}: one prompt per line, blank "
        "lines and lines starting with # skipped.",
        '\n  - "A cat astronaut, {style}"'
        '\n  - {id: banner, text: "A {style} banner about AI model routing"}',
    ),
    Key(
        "vars",
        "Axes substituted into {placeholders}: var name to a list of values, or to "
        "{file: values.txt} with one value per line.",
        "\n  style: [flat vector, isometric 3D]",
    ),
    Key(
        "aspect_ratios",
        'Axis of aspect ratios; default ["1:1"]. "auto" sends none (the model '
        "follows the reference image).",
        '["1:1", "16:9"]',
    ),
    Key(
        "image_sizes",
        "Axis of image sizes; default: the model's own.",
        '["1K"]',
    ),
    Key(
        "references",
        "Axis of reference-image sets, each a list of image paths relative to the "
        "job file; [] is a text-only set.",
        "\n  - []\n  - [refs/logo.png]",
    ),
    Key(
        "samples",
        "Independent repeats of every cell.",
        "1",
    ),
    Key(
        "generation",
        "Merged into the request's generationConfig (field names in camelCase or "
        "snake_case).",
        "{temperature: 0.7}",
    ),
    Key(
        "system_instruction",
        "The request's system instruction.",
        '"Keep the brand colours."',
    ),
    Key(
        "safety_settings",
        "The request's safetySettings, passed through.",
        "[{category: HARM_CATEGORY_HARASSMENT, threshold: BLOCK_ONLY_HIGH}]",
    ),
    Key(
        "exclude",
        "Drop every cell an entry matches on all the keys it gives (prompt, "
        "aspect_ratio, image_size, references, sample, or a var name).",
        '[{prompt: p1, aspect_ratio: "16:9"}]',
    ),
    Key(
        "include",
        "Add cells: an entry naming values not on the axes adds cells, taking "
        "every value of each axis it leaves out.",
        '[{prompt: p1, aspect_ratio: "21:9"}]',
    ),
    Key(
        "concurrency",
        "Requests in flight at once; --concurrency wins.",
        str(DEFAULT_CONCURRENCY),
    ),
    Key(
        "max_attempts",
        "Attempts per item, all causes together.",
        str(DEFAULT_MAX_ATTEMPTS),
    ),
    Key(
        "max_unknown_retries",
        "Resends of a request whose outcome is unknown (it may have been billed).",
        str(DEFAULT_MAX_UNKNOWN_RETRIES),
    ),
    Key(
        "budget",
        "Hard caps over the job's life: max_requests, max_images, max_cost_usd.",
        "{max_requests: 500, max_cost_usd: 25}",
    ),
    Key(
        "rpm",
        "Requests per minute at most (pacing); default: no cap.",
        "120",
    ),
    Key(
        "pricing",
        "USD per million tokens, overriding the model's prices in runner/models.py.",
        "{output_image_per_million: 60}",
    ),
    Key(
        "tools",
        "The request's tools, passed through; part of the item key when set.",
        "[{google_search: {}}]",
    ),
    Key(
        "from",
        "A derived job: another job's images as one more axis. A job name, or "
        "{job, marked}: marked is star (default), succeeded, or a list of image "
        "file names or item-key prefixes.",
        "{job: my-first-job, marked: star}",
    ),
    Key(
        "mode",
        "How a derived job uses its parents: edit (default; each parent image sent "
        "as a reference), continue (the parent's conversation, then the prompt) or "
        "rerender (the parent's own request at new sizes, ratios or model).",
        "edit",
    ),
    Key(
        "transport",
        "How requests are sent: interactive (one generateContent call each) or "
        "batch (the Batch API at half price, results within 24 hours); "
        "--batch/--no-batch win.",
        "batch",
    ),
)
TOP_LEVEL_KEYS = tuple(key.name for key in KEYS)


@dataclass(frozen=True, slots=True)
class WholeNumber:
    """A whole-number setting: its range and the value when the key is not given."""

    lo: int
    hi: int
    default: int


WHOLE_NUMBERS = {
    "samples": WholeNumber(1, MAX_SAMPLES, 1),
    "concurrency": WholeNumber(1, MAX_CONCURRENCY, DEFAULT_CONCURRENCY),
    "max_attempts": WholeNumber(1, MAX_ATTEMPTS_LIMIT, DEFAULT_MAX_ATTEMPTS),
    "max_unknown_retries": WholeNumber(
        0, MAX_UNKNOWN_RETRIES_LIMIT, DEFAULT_MAX_UNKNOWN_RETRIES
    ),
}
