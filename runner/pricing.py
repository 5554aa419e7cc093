"""What a request or a recorded answer costs in USD.

Owns: cost of a `usageMetadata`, the estimate for a request not sent yet, and the
job's `pricing:` overrides applied to a model's price. The prices themselves live in
`runner.models` (one table with each model's limits, and their sources); `PRICES`
here is a view of it. Pure: no I/O. Prices change: override them with `pricing:`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from runner.models import BATCH_PRICE_SHARE, MODELS, model_for

# Re-exported: the price type, and the source and date cited beside an estimate.
from runner.models import PRICES_AS_OF as PRICES_AS_OF
from runner.models import PRICES_SOURCE as PRICES_SOURCE
from runner.models import Price as Price

# Output tokens billed per generated image, by image size (Google's figures for
# gemini-3.1-flash-image, used for every model's estimate: see runner.models).
IMAGE_TOKENS = {"512": 747, "1K": 1120, "2K": 1680, "4K": 2520}
DEFAULT_IMAGE_SIZE = "1K"
# Input tokens an inline reference image costs (Gemini's per-image figure).
REFERENCE_IMAGE_TOKENS = 258
# Thinking tokens a request typically spends; billed as text output.
ESTIMATED_THOUGHT_TOKENS = 200

# Each known model's price, read from the one table in runner.models.
PRICES: Mapping[str, Price] = {name: m.price for name, m in MODELS.items()}
PRICE_KEYS = (
    "input_per_million",
    "output_image_per_million",
    "output_text_per_million",
)


def price_for(model: str, override: Mapping[str, float] | None = None) -> Price | None:
    """The model's price with the job's overrides applied; None if unknown."""
    model_entry = model_for(model)
    return _overridden(None if model_entry is None else model_entry.price, override)


def batch_price_for(
    model: str, override: Mapping[str, float] | None = None
) -> Price | None:
    """The model's Batch API price (SPEC 7); a `pricing:` override (standard
    prices) counts at the batch share. None if unknown."""
    model_entry = model_for(model)
    base = None if model_entry is None else model_entry.batch_price
    return _overridden(base, override, BATCH_PRICE_SHARE)


def _overridden(
    base: Price | None, override: Mapping[str, float] | None, share: float = 1.0
) -> Price | None:
    """`base` with the job's `pricing:` (times `share`); a model without a price
    needs every key overridden."""
    if override:
        if base is None:
            if not all(k in override for k in PRICE_KEYS):
                return None
            base = Price(0.0, 0.0, 0.0)
        base = replace(base, **{k: float(v) * share for k, v in override.items()})
    return base


def billed_tokens(usage: Mapping[str, Any] | None) -> dict[str, int]:
    """The counts of a usageMetadata that billing needs, with the image part of
    the output split out (the rest of the output, and thinking, is billed as text).
    Keys are the store's attempt columns."""
    usage = usage or {}
    candidates = _int(usage.get("candidatesTokenCount"))
    image = candidates
    details = usage.get("candidatesTokensDetails")
    if isinstance(details, list) and details:
        image = sum(
            _int(d.get("tokenCount"))
            for d in details
            if isinstance(d, Mapping) and d.get("modality") == "IMAGE"
        )
    return {
        "prompt_tokens": _int(usage.get("promptTokenCount")),
        "candidates_tokens": candidates,
        "thoughts_tokens": _int(usage.get("thoughtsTokenCount")),
        "image_tokens": image,
        "total_tokens": _int(usage.get("totalTokenCount")),
    }


def tokens_cost(tokens: Mapping[str, int], price: Price) -> float:
    """USD for (summed) `billed_tokens` counts."""
    image = tokens.get("image_tokens", 0)
    text = tokens.get("candidates_tokens", 0) - image + tokens.get("thoughts_tokens", 0)
    return (
        tokens.get("prompt_tokens", 0) * price.input_per_million
        + image * price.output_image_per_million
        + text * price.output_text_per_million
    ) / 1_000_000


def usage_cost(usage: Mapping[str, Any] | None, price: Price) -> float:
    """USD billed for one answer's usageMetadata."""
    return tokens_cost(billed_tokens(usage), price)


def spend_cost(
    tokens: Mapping[str, int],
    unpriced: Mapping[str | None, int],
    price: Price,
    batch: tuple[Mapping[str, int], Mapping[str | None, int], Price] | None = None,
) -> tuple[float, float]:
    """USD billed per the recorded usage, and USD estimated for requests whose
    outcome is unknown (no usage came back; `unpriced` counts them by image size).
    `batch`: the part of `tokens` and `unpriced` sent through the Batch API, and
    the price it is billed at (SPEC 7)."""
    if batch is not None:
        batch_tokens, batch_unpriced, batch_price = batch
        tokens = {k: n - batch_tokens.get(k, 0) for k, n in tokens.items()}
        unpriced = {k: n - batch_unpriced.get(k, 0) for k, n in unpriced.items()}
        billed, possibly = spend_cost(batch_tokens, batch_unpriced, batch_price)
    else:
        billed = possibly = 0.0
    possibly += sum(
        n * estimate_cost("", 0, size, price) for size, n in unpriced.items()
    )
    return billed + tokens_cost(tokens, price), possibly


def mean_tokens(summed: Mapping[str, int], answers: int) -> dict[str, float]:
    """What one of `answers` recorded answers used on average (summed
    `billed_tokens` counts in), in usageMetadata's names."""
    return {
        "promptTokenCount": summed.get("prompt_tokens", 0) / answers,
        "candidatesTokenCount": summed.get("candidates_tokens", 0) / answers,
        "thoughtsTokenCount": summed.get("thoughts_tokens", 0) / answers,
        "totalTokenCount": summed.get("total_tokens", 0) / answers,
    }


def mean_cost(summed: Mapping[str, int], answers: int, price: Price) -> float:
    """USD one of `answers` recorded answers cost on average."""
    return tokens_cost(summed, price) / answers


def heaviest_cost(heaviest: Mapping[str, int], price: Price) -> float:
    """USD of the most of each part billed at its own rate that one answer used
    (prompt_tokens, image_tokens, text_tokens: other output and thinking): at
    least what the dearest of those answers cost."""
    image = heaviest.get("image_tokens", 0)
    return tokens_cost(
        {
            "prompt_tokens": heaviest.get("prompt_tokens", 0),
            "image_tokens": image,
            "candidates_tokens": image + heaviest.get("text_tokens", 0),
        },
        price,
    )


def estimate_tokens(
    text: str, references: int, image_size: str | None
) -> dict[str, int]:
    """Expected usage of one successful request, in usageMetadata's names."""
    prompt = len(text.encode("utf-8")) // 4 + 1 + references * REFERENCE_IMAGE_TOKENS
    output = IMAGE_TOKENS.get(image_size or DEFAULT_IMAGE_SIZE, IMAGE_TOKENS["1K"])
    return {
        "promptTokenCount": prompt,
        "candidatesTokenCount": output,
        "thoughtsTokenCount": ESTIMATED_THOUGHT_TOKENS,
        "totalTokenCount": prompt + output + ESTIMATED_THOUGHT_TOKENS,
    }


def estimate_cost(
    text: str, references: int, image_size: str | None, price: Price
) -> float:
    """USD one successful request is expected to cost."""
    usage = estimate_tokens(text, references, image_size)
    return usage_cost(
        {**usage, "candidatesTokensDetails": [
            {"modality": "IMAGE", "tokenCount": usage["candidatesTokenCount"]}
        ]},
        price,
    )  # fmt: skip


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
