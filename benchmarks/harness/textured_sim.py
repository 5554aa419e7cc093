"""`python -m benchmarks.harness.textured_sim [simulator options]`: the simulated API
answering with images of real size and content, for the review scenario.

The simulator's own PNGs are flat colour with a line of text (47 KB at 1K, stored
without PNG row filters): a thumbnail of one costs a few milliseconds. A real 1K
answer is a photograph-like PNG of about 1.5 MB. This serves, for each request,
one of TEXTURES such images per size (soft shapes under a grain of noise, saved as
Pillow saves a PNG, with row filters), chosen by the prompt's text, so decoding
one costs what decoding a real answer does. Everything else is `runner.simulate`.
Must not be imported by the runner or its tests' fixtures (only run).
"""

from __future__ import annotations

import functools
import hashlib
import io
import random
import sys

from PIL import Image, ImageChops, ImageDraw, ImageFilter

from runner.simulate import __main__ as simulate_main
from runner.simulate.canvas import Canvases

TEXTURES = 16
GRAIN = 8.0  # sigma of the noise; 1024 x 1024 -> a PNG of about 1.4 MB


@functools.lru_cache(maxsize=64)
def textured_png(width: int, height: int, seed: int) -> bytes:
    """A photograph-like PNG: a gradient, soft shapes, a grain of noise."""
    rng = random.Random(seed)
    top = Image.new("RGB", (width, height), _colour(rng, 40, 220))
    bottom = Image.new("RGB", (width, height), _colour(rng, 20, 200))
    gradient = Image.linear_gradient("L").resize((width, height))
    image = Image.composite(top, bottom, gradient)
    draw = ImageDraw.Draw(image)
    for _ in range(24):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(max(2, width // 40), max(3, width // 5))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=_colour(rng, 0, 256))
    image = image.filter(ImageFilter.GaussianBlur(3))
    grain = Image.effect_noise((width, height), GRAIN).convert("RGB")
    image = ImageChops.add(image, grain, scale=1.0, offset=-128)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _colour(rng: random.Random, low: int, high: int) -> tuple[int, int, int]:
    return (
        rng.randrange(low, high),
        rng.randrange(low, high),
        rng.randrange(low, high),
    )


def _render(self: Canvases, text: str, width: int, height: int, label: str) -> bytes:
    seed = hashlib.sha256(text.encode()).digest()[0] % TEXTURES
    return textured_png(width, height, seed)


def main() -> None:
    Canvases._render = _render  # type: ignore[method-assign]
    simulate_main.main(sys.argv[1:])


if __name__ == "__main__":
    main()
