"""The simulated Gemini generateContent API (`runner submit --simulate`, tests,
benchmarks); `python -m runner.simulate` serves it on its own."""

from __future__ import annotations

from runner.simulate.server import (
    ASPECT_RATIOS,
    FAULT_KINDS,
    Fault,
    SimServer,
    Stats,
    image_dimensions,
)

__all__ = [
    "ASPECT_RATIOS",
    "FAULT_KINDS",
    "Fault",
    "SimServer",
    "Stats",
    "image_dimensions",
]
