"""What each known image model accepts and costs: one table, its sources beside it.

Owns: `Model` (aspect ratios, image sizes, the most reference images a request may
carry, `Price`), `MODELS` keyed by model id, `model_for`, and the union of ratios
and sizes any model takes. Pure data: imports nothing from runner; must not read
job files (runner.spec checks them against this) or compute costs (runner.pricing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

# Sources (each checked on 2026-12-02 against a stored copy of the page):
# - ai.google.dev/gemini-api/docs/image-generation: Gemini 3.1 Flash Image takes the
#   ten ratios plus 1:4, 4:1, 1:8 and 8:1, and the 512 size besides 1K/2K/4K; the
#   Gemini 3 image models "mix up to 14 reference images" (3.1 Flash: up to 10
#   objects and 4 characters; 3 Pro: up to 6 objects and 5 characters);
#   "gemini-2.5-flash-image works best with up to 3 images as input".
# - cloud.google.com/vertex-ai/generative-ai/docs/multimodal/image-understanding:
#   Gemini 2.5 Flash Image "Maximum images per prompt: 3", Gemini 3 Pro Image 14;
#   both take exactly 1:1, 3:2, 2:3, 3:4, 4:3, 4:5, 5:4, 9:16, 16:9 and 21:9.
# - ai.google.dev/gemini-api/docs/pricing (USD per 1M tokens, standard tier):
#   3.1 Flash Image $0.50 in, $3 text and thinking out, $60 image out ("$0.045 per
#   0.5K image, $0.067 per 1K, $0.101 per 2K, $0.151 per 4K"); 3 Pro Image $2 in,
#   $12 text out, $120 image out ("1K and 2K consume 1120 tokens ... $0.134 per
#   image", "4K consume 2000 tokens ... $0.24"); 2.5 Flash Image $0.30 in, $30
#   image out ("1290 tokens ... $0.039 per image").
# - ai.google.dev/gemini-api/docs/batch-mode: the Batch API runs requests "at 50% of
#   the standard cost"; the pricing page's "Batch" rows halve every rate of each
#   image model above (3.1 Flash Image $0.25 in, $1.50 text out, $30 image out:
#   "$0.034" a 1K image; 3 Pro Image $1, $6, $60: "$0.067" a 1K or 2K image; 2.5
#   Flash Image $0.15 in, $15 image out), so `batch_price` is half of `price`.
# Unconfirmed, so kept as parameters here: whether the Gemini API refuses a fourth
# reference image on gemini-2.5-flash-image (Google's page says "works best", only
# Vertex's says "maximum"); 2.5 Flash Image's text output rate (its page prices only
# images; $2.50 is Gemini 2.5 Flash's text rate); and that the ids without
# "-preview" take what their preview takes (the docs describe the previews).
# Estimates use 3.1 Flash's output tokens per size for every model
# (runner.pricing.IMAGE_TOKENS), so 3 Pro at 4K and 2.5 Flash are estimated
# slightly high and low; recorded usage is always priced exactly.
PRICES_AS_OF = "2026-11-25"
PRICES_SOURCE = "ai.google.dev/gemini-api/docs/pricing"

# Every aspect ratio and image size some model here takes, in Google's order.
ASPECT_RATIOS = (
    "1:1", "1:4", "1:8", "2:3", "3:2", "3:4", "4:1", "4:3",
    "4:5", "5:4", "8:1", "9:16", "16:9", "21:9",
)  # fmt: skip
IMAGE_SIZES = ("512", "1K", "2K", "4K")


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens."""

    input_per_million: float
    output_image_per_million: float
    output_text_per_million: float


@dataclass(frozen=True, slots=True)
class Model:
    """What one model takes in a request, and what it costs."""

    aspect_ratios: tuple[str, ...]
    image_sizes: tuple[str, ...] | None  # None: the model takes no imageSize
    max_references: int  # reference images in one request
    price: Price
    batch_price: Price  # through the Batch API (SPEC 7)


# The Batch API's price as a share of the standard one, for every model and every
# rate (see the sources above); also what a job's `pricing:` override is scaled by.
BATCH_PRICE_SHARE = 0.5


def _halved(price: Price) -> Price:
    return Price(
        price.input_per_million * BATCH_PRICE_SHARE,
        price.output_image_per_million * BATCH_PRICE_SHARE,
        price.output_text_per_million * BATCH_PRICE_SHARE,
    )


_TEN_RATIOS = tuple(r for r in ASPECT_RATIOS if r not in ("1:4", "4:1", "1:8", "8:1"))

_FLASH_3_1_PRICE = Price(0.50, 60.0, 3.0)
_PRO_3_PRICE = Price(2.0, 120.0, 12.0)
_FLASH_2_5_PRICE = Price(0.30, 30.0, 2.5)
_FLASH_3_1 = Model(
    ASPECT_RATIOS, IMAGE_SIZES, 14, _FLASH_3_1_PRICE, _halved(_FLASH_3_1_PRICE)
)
_PRO_3 = Model(_TEN_RATIOS, ("1K", "2K", "4K"), 14, _PRO_3_PRICE, _halved(_PRO_3_PRICE))
_FLASH_2_5 = Model(_TEN_RATIOS, None, 3, _FLASH_2_5_PRICE, _halved(_FLASH_2_5_PRICE))

# In the order a message suggests another model: the first that takes the value.
MODELS: Mapping[str, Model] = {
    "gemini-3.1-flash-image-preview": _FLASH_3_1,
    "gemini-3.1-flash-image": _FLASH_3_1,
    "gemini-3-pro-image-preview": _PRO_3,
    "gemini-3-pro-image": _PRO_3,
    "gemini-2.5-flash-image": _FLASH_2_5,
}
# The most reference images any model here takes: the limit for unknown models.
MAX_REFERENCES = max(m.max_references for m in MODELS.values())


def model_for(model_id: str) -> Model | None:
    """The table's entry for a model id ('models/' prefix allowed); None if unknown."""
    return MODELS.get(model_id.removeprefix("models/"))
