"""The simulated API's own picture of Google's image models: which model names it
serves, their aspect ratios and pixel sizes per image size, tokens per output and input
image, the most images a request may hold, and whether a model thinks.

Kept apart from runner's own tables on purpose: the simulator is an independent
oracle the runner is tested against. Must not know HTTP, faults or drawing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

# Pixel sizes at 1K, from Google's tables (ai.google.dev/gemini-api/docs/
# image-generation#aspect_ratios_and_image_size). The Gemini 3 tables are these
# numbers halved for 512, doubled for 2K and quadrupled for 4K, cell for cell, with
# one exception: the 512 row for 21:9 reads 792x168, which is neither 21:9 nor the
# 0.25 MP of the 512 tier; this uses 792x336 (half of 1584x672) instead.
GEMINI_3_RATIOS: Mapping[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "1:4": (512, 2048),
    "1:8": (384, 3072),
    "2:3": (848, 1264),
    "3:2": (1264, 848),
    "3:4": (896, 1200),
    "4:1": (2048, 512),
    "4:3": (1200, 896),
    "4:5": (928, 1152),
    "5:4": (1152, 928),
    "8:1": (3072, 384),
    "9:16": (768, 1376),
    "16:9": (1376, 768),
    "21:9": (1584, 672),
}
_EXTREME = ("1:4", "4:1", "1:8", "8:1")  # Gemini 3.1 Flash Image only
GEMINI_3_PRO_RATIOS: Mapping[str, tuple[int, int]] = {
    ratio: size for ratio, size in GEMINI_3_RATIOS.items() if ratio not in _EXTREME
}
# Gemini 2.5 Flash Image: one size per ratio, no image size setting (same page).
GEMINI_2_5_RATIOS: Mapping[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "2:3": (832, 1248),
    "3:2": (1248, 832),
    "3:4": (864, 1184),
    "4:3": (1184, 864),
    "4:5": (896, 1152),
    "5:4": (1152, 896),
    "9:16": (768, 1344),
    "16:9": (1344, 768),
    "21:9": (1536, 672),
}
IMAGE_SIZES: Mapping[str, float] = {"512": 0.5, "1K": 1.0, "2K": 2.0, "4K": 4.0}
DEFAULT_SIZE = "1K"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What one model accepts and how it is billed, as the simulator answers it."""

    ratios: Mapping[str, tuple[int, int]]  # pixel size at DEFAULT_SIZE per ratio
    sizes: tuple[str, ...]  # accepted imageSize values; () = no size setting
    output_tokens: Mapping[str, int]  # per image size (DEFAULT_SIZE without sizes)
    input_image_tokens: int  # per image in the request
    max_images: int  # images a request may hold
    thinks: bool  # interim thought images and thought signatures (Gemini 3)
    grounding: bool  # accepts tools: [{google_search: {}}]

    def dimensions(
        self, ratio: str | None, size: str | None, *, scale: float = 1.0
    ) -> tuple[int, int]:
        """Pixel size of an answer (1:1 and 1K when not given), times `scale`."""
        width, height = self.ratios[ratio or "1:1"]
        factor = IMAGE_SIZES[size or DEFAULT_SIZE] if self.sizes else 1.0
        factor *= scale
        return max(8, round(width * factor)), max(8, round(height * factor))

    def nearest_ratio(self, width: int, height: int) -> str:
        """The ratio closest to width:height (what the model does for an edit)."""
        target = math.log(width / height)
        return min(self.ratios, key=lambda r: abs(math.log(_ratio(r)) - target))

    def candidate_tokens(self, size: str | None) -> int:
        """Output tokens of one image of this size."""
        return self.output_tokens[(size if self.sizes else None) or DEFAULT_SIZE]


# Output tokens per image: Vertex AI's model page for Gemini 3.1 Flash Image (747 /
# 1120 / 1680 / 2520), the image-generation page's tables for Gemini 3 Pro Image
# (1120 / 1120 / 2000) and Gemini 2.5 Flash Image (1290). Tokens per input image are
# not stated on the Gemini API's own pages: 1120 for 3.1 Flash Image is Vertex AI's
# model page; 560 for 3 Pro Image is unconfirmed (560 tokens at $2 per million is the
# $0.0011 per input image quoted for it); 258 for 2.5 Flash Image is the Gemini 2
# figure for a small image. SimServer(reference_image_tokens=...) overrides all three.
# The most images per request: 14 (both Gemini 3 models) and 3 (2.5 Flash Image),
# "Maximum images per prompt" on Vertex AI's model pages.
_FLASH_3_1 = ModelSpec(
    ratios=GEMINI_3_RATIOS,
    sizes=("512", "1K", "2K", "4K"),
    output_tokens={"512": 747, "1K": 1120, "2K": 1680, "4K": 2520},
    input_image_tokens=1120,
    max_images=14,
    thinks=True,
    grounding=True,
)
_PRO_3 = ModelSpec(
    ratios=GEMINI_3_PRO_RATIOS,
    sizes=("1K", "2K", "4K"),
    output_tokens={"1K": 1120, "2K": 1120, "4K": 2000},
    input_image_tokens=560,
    max_images=14,
    thinks=True,
    grounding=True,
)
_FLASH_2_5 = ModelSpec(
    ratios=GEMINI_2_5_RATIOS,
    sizes=(),
    output_tokens={DEFAULT_SIZE: 1290},
    input_image_tokens=258,
    max_images=3,
    thinks=False,
    grounding=False,
)
MODELS: Mapping[str, ModelSpec] = {
    "gemini-3.1-flash-image-preview": _FLASH_3_1,
    "gemini-3.1-flash-image": _FLASH_3_1,
    "gemini-3-pro-image-preview": _PRO_3,
    "gemini-3-pro-image": _PRO_3,
    "gemini-2.5-flash-image": _FLASH_2_5,
}
DEFAULT_MODEL = "gemini-3.1-flash-image-preview"
# What SimServer(extra_models=...) serves under other names (a relay's own models).
EXTRA_MODEL_SPEC = _FLASH_3_1
ASPECT_RATIOS = GEMINI_3_RATIOS
CANDIDATE_TOKENS = _FLASH_3_1.output_tokens


def image_dimensions(
    aspect_ratio: str | None,
    image_size: str | None = None,
    *,
    scale: float = 1.0,
    model: str = DEFAULT_MODEL,
) -> tuple[int, int]:
    """Pixel size `model` answers with (1:1 and 1K when not given), times `scale`."""
    return MODELS[model].dimensions(aspect_ratio, image_size, scale=scale)


def nearest_aspect_ratio(width: int, height: int, model: str = DEFAULT_MODEL) -> str:
    """The ratio of `model` closest to width:height."""
    return MODELS[model].nearest_ratio(width, height)


# -- private helpers --------------------------------------------------------------


def _ratio(ratio: str) -> float:
    width, _, height = ratio.partition(":")
    return int(width) / int(height)
