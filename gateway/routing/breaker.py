"""A circuit breaker for one replica: closed, open, half-open. Pure state over a clock passed in.

Closed counts consecutive failures; at `failures` it opens and refuses requests for
`cooldown_s`; then it is half-open: a few trial requests go through, one success closes it,
one failure opens it again for another cool-down.
"""

from __future__ import annotations

import enum

from gateway.config.routing import CircuitBreaker


class CircuitState(enum.IntEnum):
    # The values are what `sluice_upstream_circuit_state` reports.
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


class Breaker:
    __slots__ = ("_failures", "_opened_at", "_trials", "config", "state")

    def __init__(self, config: CircuitBreaker) -> None:
        self.config = config
        self.state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trials = 0  # trial requests in flight while half-open

    def current(self, now: float) -> CircuitState:
        """The state at `now`: an open circuit whose cool-down is over reads as half-open."""
        if self.state is CircuitState.OPEN and now >= self._opened_at + self.config.cooldown_s:
            self.state = CircuitState.HALF_OPEN
            self._trials = 0
        return self.state

    def available(self, now: float) -> bool:
        """Would `allow` say yes? (Asking takes no trial slot.)"""
        state = self.current(now)
        return state is CircuitState.CLOSED or (
            state is CircuitState.HALF_OPEN and self._trials < self.config.half_open_requests
        )

    def allow(self, now: float) -> bool:
        """May a request go now? A True while half-open takes a trial slot: report its end
        with `success`, `failure` or `release`."""
        state = self.current(now)
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.HALF_OPEN and self._trials < self.config.half_open_requests:
            self._trials += 1
            return True
        return False

    def success(self, now: float) -> None:
        if self.state is CircuitState.HALF_OPEN:
            self.state = CircuitState.CLOSED
            self._trials = 0
        self._failures = 0

    def failure(self, now: float) -> None:
        if self.state is CircuitState.HALF_OPEN:
            self._open(now)
            return
        if self.state is CircuitState.CLOSED:
            self._failures += 1
            if self._failures >= self.config.failures:
                self._open(now)

    def release(self) -> None:
        """A trial request ended with no verdict (the client went away, its own mistake)."""
        if self.state is CircuitState.HALF_OPEN and self._trials > 0:
            self._trials -= 1

    def retry_in_s(self, now: float) -> float:
        """Seconds until an open circuit lets trial requests through (0 if it does now)."""
        if self.current(now) is not CircuitState.OPEN:
            return 0.0
        return self._opened_at + self.config.cooldown_s - now

    def _open(self, now: float) -> None:
        self.state = CircuitState.OPEN
        self._opened_at = now
        self._failures = 0
        self._trials = 0
