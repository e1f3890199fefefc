"""A retry budget: retries may add at most `ratio` of the requests sent, plus `min_per_s`,
over a sliding window, so a failing upstream gets a bounded trickle of retries instead of a
multiple of its traffic. Pure counting over a clock passed in.

Counting a request is the hot path, so it reads no clock: requests counted since the budget
last looked are spread evenly over the seconds since then when a retry asks (during an outage
that is every few milliseconds, so the spread is exact; after a quiet spell it assumes an even
rate).
"""

from __future__ import annotations

from gateway.config.routing import RetryBudget


class Budget:
    """Requests and retries in one-second slots over the last `window_s` seconds."""

    __slots__ = ("_requests", "_retries", "_second", "config", "exhausted", "pending")

    def __init__(self, config: RetryBudget) -> None:
        self.config = config
        self._requests = [0.0] * config.window_s
        self._retries = [0] * config.window_s
        self._second: int | None = None
        # First attempts sent since the slots were last brought up to date.
        self.pending = 0
        # Retries refused because the budget was spent (a metric).
        self.exhausted = 0

    def sent(self) -> None:
        """A first attempt went out."""
        self.pending += 1

    def try_retry(self, now: float) -> bool:
        """Spend one retry if the budget allows it."""
        slot = self._advance(now)
        config = self.config
        allowed = config.min_per_s * config.window_s + config.ratio * sum(self._requests)
        if sum(self._retries) + 1 > allowed:
            self.exhausted += 1
            return False
        self._retries[slot] += 1
        return True

    def _advance(self, now: float) -> int:
        window = self.config.window_s
        second = int(now)
        pending, self.pending = self.pending, 0
        last = self._second
        if last is None or second < last:
            last = second - 1  # first look (or a clock that went back): pending is recent
        if second != last:
            elapsed = second - last
            span = min(elapsed, window)
            # Slots of seconds that passed are reused: clear them, then spread what was sent
            # since `last` evenly over the seconds it could have been sent in.
            share = pending / elapsed
            for offset in range(span):
                index = (second - offset) % window
                self._requests[index] = share
                self._retries[index] = 0
            self._second = second
        else:
            self._requests[second % window] += pending
        return second % window
