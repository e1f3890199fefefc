"""A canary's weight over time and its automatic rollback. Pure state over a clock passed in.

The weight follows the schedule (the last step whose `after_s` has passed), unless an operator
set one by hand; a rollback sets it to 0 and holds it there until someone resumes the canary.
Rollback happens when, over the last `window_s`, the canary arm's error rate or p99 latency
breaks its bound on at least `min_requests` requests.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from gateway.config.routing import Canary

# The p99 over the window is recomputed at most this often (sorting a busy window per
# request would cost more than the request).
CHECK_INTERVAL_S = 1.0


@dataclass(frozen=True, slots=True)
class WindowStats:
    requests: int
    errors: int
    p99_ms: float | None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


class CanaryState:
    __slots__ = (
        "_errors",
        "_last_check",
        "_window",
        "config",
        "manual_weight",
        "rollbacks",
        "rolled_back",
        "started_at",
    )

    def __init__(self, config: Canary, started_at: float) -> None:
        self.config = config
        self.started_at = started_at
        self.manual_weight: float | None = None
        # Why the canary was rolled back, until it is resumed.
        self.rolled_back: str | None = None
        self.rollbacks = 0
        self._window: deque[tuple[float, bool, float]] = deque()
        self._errors = 0
        self._last_check = -math.inf

    # -- the weight --------------------------------------------------------------------------
    def scheduled_weight(self, now: float) -> float:
        elapsed = now - self.started_at
        weight = 0.0
        for step in self.config.schedule:
            if step.after_s > elapsed:
                break
            weight = step.weight
        return weight

    def weight(self, now: float) -> float:
        if self.rolled_back is not None:
            return 0.0
        if self.manual_weight is not None:
            return self.manual_weight
        return self.scheduled_weight(now)

    def set_weight(self, weight: float) -> None:
        """By hand: holds until `resume`; also clears a rollback (the operator decided)."""
        self.manual_weight = weight
        self.rolled_back = None

    def resume(self) -> None:
        """Back to the schedule, rollback cleared, with a fresh window."""
        self.manual_weight = None
        self.rolled_back = None
        self._window.clear()
        self._errors = 0

    def roll_back(self, reason: str) -> None:
        if self.rolled_back is None:
            self.rollbacks += 1
        self.rolled_back = reason

    # -- the watch ---------------------------------------------------------------------------
    def observe(self, now: float, ok: bool, latency_ms: float) -> str | None:
        """Count one canary request; returns the reason if this observation rolled it back."""
        self._window.append((now, ok, latency_ms))
        if not ok:
            self._errors += 1
        self._trim(now)
        rollback = self.config.rollback
        if rollback is None or self.rolled_back is not None:
            return None
        if len(self._window) < rollback.min_requests:
            return None
        stats_error_rate = self._errors / len(self._window)
        reason = None
        if rollback.max_error_rate is not None and stats_error_rate > rollback.max_error_rate:
            reason = (
                f"error rate {stats_error_rate:.1%} over the last {rollback.window_s:g} s "
                f"is above max_error_rate {rollback.max_error_rate:.1%}"
            )
        elif rollback.max_p99_ms is not None and now - self._last_check >= CHECK_INTERVAL_S:
            self._last_check = now
            p99 = _p99(self._window)
            if p99 is not None and p99 > rollback.max_p99_ms:
                reason = (
                    f"p99 latency {p99:.0f} ms over the last {rollback.window_s:g} s "
                    f"is above max_p99_ms {rollback.max_p99_ms:g}"
                )
        if reason is not None:
            self.roll_back(reason)
        return reason

    def stats(self, now: float) -> WindowStats:
        self._trim(now)
        return WindowStats(len(self._window), self._errors, _p99(self._window))

    def _trim(self, now: float) -> None:
        horizon = now - (self.config.rollback.window_s if self.config.rollback else 60.0)
        window = self._window
        while window and window[0][0] < horizon:
            _, ok, _ = window.popleft()
            if not ok:
                self._errors -= 1


def _p99(window: deque[tuple[float, bool, float]]) -> float | None:
    """Nearest-rank p99 of the latencies in the window."""
    if not window:
        return None
    latencies = sorted(latency for _, _, latency in window)
    return latencies[max(0, math.ceil(0.99 * len(latencies)) - 1)]
