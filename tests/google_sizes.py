"""Google's pixel sizes for its image models, typed in from Google's page rather than
taken from the simulator, so tests check the simulator against Google's own table.

Source: ai.google.dev/gemini-api/docs/image-generation ("Aspect ratios and image
size"). The Gemini 3 tables are the 1K cells halved for 512, doubled for 2K and
quadrupled for 4K, except that the page's 512 cell for 21:9 reads 792x168, a slip for
792x336 (neither 21:9 nor the 0.25 MP of that tier); the simulator uses 792x336.
"""

from __future__ import annotations

GEMINI_3_AT_1K = {
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
# Gemini 2.5 Flash Image: one size per ratio, no image size setting.
GEMINI_2_5 = {
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
SIZE_FACTORS = {"512": 0.5, "1K": 1, "2K": 2, "4K": 4}
# Gemini 3.1 Flash Image only; Gemini 3 Pro Image has the other ten, at 1K/2K/4K.
EXTREME_RATIOS = frozenset({"1:4", "4:1", "1:8", "8:1"})
FLASH_SIZES = ("512", "1K", "2K", "4K")
PRO_SIZES = ("1K", "2K", "4K")


def google_size(model: str, ratio: str, size: str | None) -> tuple[int, int]:
    """Google's pixel size for a model family ("2.5" or a Gemini 3 model)."""
    if "2.5" in model:
        return GEMINI_2_5[ratio]
    width, height = GEMINI_3_AT_1K[ratio]
    factor = SIZE_FACTORS[size or "1K"]
    return int(width * factor), int(height * factor)
