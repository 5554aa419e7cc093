"""Disk space during a run: a request goes out only if its answer's images, and
those of every answer in flight, still fit in the job folder's free space.

Owns the room reserved per answer and when free space is measured (at most every
DISK_CHECK_EVERY seconds, or sooner when the reckoning says it is short). Must not
write files or decide anything but whether one more answer fits.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from runner import outputs

if TYPE_CHECKING:
    from pathlib import Path

DISK_CHECK_EVERY = 1.0  # seconds between free-space measurements during a run
# Images one answer may hold: reserved per request in flight (an answer can carry
# more than one image; unconfirmed how many at most, so a parameter).
IMAGES_PER_ANSWER = 2


class DiskGuard:
    """Free space reckoned as: last measured, less what answers reserved since
    (each as if it wrote its whole reservation), less what is in flight."""

    def __init__(
        self,
        folder: Path,
        *,
        margin: int = outputs.KEEP_FREE,
        every: float = DISK_CHECK_EVERY,
    ) -> None:
        self._folder = folder
        self._margin = margin
        self._every = every
        self._free = 0
        self._since = 0  # bytes reserved by answers that landed since the measure
        self._in_flight = 0
        self._measured = -float("inf")

    @staticmethod
    def answer_bytes(image_size: str | None) -> int:
        """The room one answer to a request of this image size may take."""
        return IMAGES_PER_ANSWER * outputs.image_bytes(image_size)

    def reserve(self, need: int) -> str | None:
        """Reserve `need` bytes for one more answer; None if it fits, else why not."""
        if time.monotonic() - self._measured >= self._every or not self._fits(need):
            self._measure()
            if not self._fits(need):
                wanted = self._in_flight + need + self._margin
                free = outputs.describe_bytes(self._free)
                return (
                    f"{self._folder} has {free} free, less than the "
                    f"{outputs.describe_bytes(wanted)} the answers in flight and "
                    "one more could take (with room for the store); free space, "
                    "then submit again (nothing finished is sent again)"
                )
        self._in_flight += need
        return None

    def settle(self, need: int) -> None:
        """The answer reserved with `need` landed (or never went out)."""
        self._in_flight -= need
        self._since += need

    def _fits(self, need: int) -> bool:
        left = self._free - self._since - self._in_flight - need
        return left >= self._margin

    def _measure(self) -> None:
        self._free = outputs.free_bytes(self._folder)
        self._since = 0
        self._measured = time.monotonic()
