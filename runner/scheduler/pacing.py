"""The run's shared brakes: how many requests may be in flight, and when the next
may leave.

Owns the adaptive concurrency limit (halved on a 429, grown back by successes), the
run-wide pause until a server's retry hint, and the optional requests-per-minute
spacing. Must not decide what an answer means: the judgement says how long to pause.
"""

from __future__ import annotations

import time

import anyio


class Pacer:
    """Shared brakes: a concurrency limit that halves on 429 and grows back by one
    per window of successes, a run-wide pause until a server's retry hint, and an
    optional requests-per-minute spacing that widens by 10% on each 429 and narrows
    back as requests succeed (the job's `rpm:` may be a little above what the
    server really allows)."""

    def __init__(self, concurrency: int, rpm: float | None) -> None:
        self.max = concurrency
        self.limiter = anyio.CapacityLimiter(concurrency)
        self.resume_at = 0.0
        self.base_interval = 60.0 / rpm if rpm else 0.0
        self.interval = self.base_interval
        self.next_slot = 0.0
        self._wins = 0
        self._last_cut = 0.0

    async def wait_turn(self, stop: anyio.Event) -> None:
        """Wait out a run-wide pause and the rpm spacing; return at once on stop."""
        # A loop, not one sleep: another 429 may push resume_at later meanwhile.
        while (wait := self.resume_at - time.monotonic()) > 0 and not stop.is_set():
            with anyio.move_on_after(wait):
                await stop.wait()
        if self.interval and not stop.is_set():
            now = time.monotonic()
            slot = max(now, self.next_slot)
            self.next_slot = slot + self.interval
            if slot > now:
                with anyio.move_on_after(slot - now):
                    await stop.wait()

    def throttled(self, delay: float) -> None:
        now = time.monotonic()
        self.resume_at = max(self.resume_at, now + delay)
        if self.base_interval:
            self.interval = min(self.interval * 1.1, self.base_interval * 4)
        # One cut per wave: the in-flight requests of one burst all see the 429.
        if now - self._last_cut > max(delay, 1.0):
            self._last_cut = now
            self.limiter.total_tokens = max(1, int(self.limiter.total_tokens) // 2)
            self._wins = 0

    def succeeded(self) -> None:
        if self.interval > self.base_interval:
            self.interval = max(self.base_interval, self.interval * 0.99)
        current = int(self.limiter.total_tokens)
        if current >= self.max:
            return
        self._wins += 1
        if self._wins >= current:
            self._wins = 0
            self.limiter.total_tokens = current + 1
