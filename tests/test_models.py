"""The model table: what each known model takes and costs, and that it is the one home
of those facts (the job-file checks and the prices read it)."""

from __future__ import annotations

import pytest

from runner import models, pricing, spec
from runner.models import MODELS, model_for

TEN = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
EXTREME = ("1:4", "4:1", "1:8", "8:1")


@pytest.mark.parametrize(
    "model", ["gemini-3.1-flash-image-preview", "gemini-3.1-flash-image"]
)
def test_nano_banana_2_takes_fourteen_ratios_four_sizes_and_fourteen_references(
    model: str,
) -> None:
    entry = MODELS[model]
    assert set(entry.aspect_ratios) == set(TEN + EXTREME)
    assert entry.image_sizes == ("512", "1K", "2K", "4K")
    assert entry.max_references == 14


@pytest.mark.parametrize("model", ["gemini-3-pro-image-preview", "gemini-3-pro-image"])
def test_nano_banana_pro_takes_ten_ratios_and_no_512(model: str) -> None:
    entry = MODELS[model]
    assert set(entry.aspect_ratios) == set(TEN)
    assert entry.image_sizes == ("1K", "2K", "4K")
    assert entry.max_references == 14


def test_nano_banana_takes_ten_ratios_no_size_setting_and_three_references() -> None:
    entry = MODELS["gemini-2.5-flash-image"]
    assert set(entry.aspect_ratios) == set(TEN)
    assert entry.image_sizes is None
    assert entry.max_references == 3


def test_a_models_prefix_is_tolerated_and_an_unknown_model_has_no_entry() -> None:
    assert model_for("models/gemini-3-pro-image") is MODELS["gemini-3-pro-image"]
    assert model_for("gpt-image-1") is None


def test_the_job_file_checks_accept_exactly_what_some_model_takes() -> None:
    every_ratio = {r for m in MODELS.values() for r in m.aspect_ratios}
    every_size = {s for m in MODELS.values() for s in m.image_sizes or ()}
    assert set(spec.SUPPORTED_ASPECT_RATIOS) == every_ratio | {"auto"}
    assert set(spec.SUPPORTED_IMAGE_SIZES) == every_size
    assert spec.MAX_REFERENCES_PER_SET == max(m.max_references for m in MODELS.values())


@pytest.mark.parametrize("model", list(MODELS))
def test_prices_are_read_from_the_model_table(model: str) -> None:
    assert pricing.price_for(model) is MODELS[model].price
    assert pricing.PRICES[model] is MODELS[model].price


@pytest.mark.parametrize(
    ("model", "image_tokens", "usd_per_image"),
    [
        # Google's pricing page: "$0.045 per 0.5K image, $0.067 per 1K image,
        # $0.101 per 2K image, $0.151 per 4K image" at $60 per 1M image tokens.
        ("gemini-3.1-flash-image-preview", 747, 0.045),
        ("gemini-3.1-flash-image-preview", 1120, 0.067),
        ("gemini-3.1-flash-image-preview", 1680, 0.101),
        ("gemini-3.1-flash-image-preview", 2520, 0.151),
        # "1K and 2K consume 1120 tokens ... $0.134"; "4K ... 2000 tokens ... $0.24".
        ("gemini-3-pro-image-preview", 1120, 0.134),
        ("gemini-3-pro-image-preview", 2000, 0.24),
        # "1290 tokens and are equivalent to $0.039 per image".
        ("gemini-2.5-flash-image", 1290, 0.039),
    ],
)
def test_image_prices_match_googles_per_image_figures(
    model: str, image_tokens: int, usd_per_image: float
) -> None:
    usage = {
        "candidatesTokenCount": image_tokens,
        "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": image_tokens}],
    }
    cost = pricing.usage_cost(usage, MODELS[model].price)
    assert cost == pytest.approx(usd_per_image, abs=0.0005)


def test_prices_name_their_source_and_date() -> None:
    assert "ai.google.dev/gemini-api/docs/pricing" in models.PRICES_SOURCE
    assert pricing.PRICES_AS_OF == models.PRICES_AS_OF
