"""runner: batch creative-exploration job runner for Nano Banana image models."""

from __future__ import annotations

__version__ = "0.1.0"
