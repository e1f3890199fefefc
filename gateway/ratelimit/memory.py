"""Counters in this process's memory: the default store, exact for a single gateway process."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial

from gateway.ratelimit.buckets import (
    Bucket,
    Kind,
    Unit,
    Verdict,
    budget,
    budget_window,
    rolling,
    rolling_adjust,
    slots,
)

SWEEP_EVERY = 4096


class MemoryStore:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._tat: dict[str, float] = {}
        self._used: dict[str, tuple[float, float]] = {}  # key:window -> (used, window end)
        self._held: dict[str, int] = {}
        self._until_sweep = SWEEP_EVERY

    async def admit(
        self, buckets: Sequence[Bucket], costs: Sequence[float], holder: str
    ) -> list[Verdict]:
        return self.admit_at(buckets, costs, self._clock())

    async def settle(
        self, buckets: Sequence[Bucket], token_delta: float, holder: str, release: bool
    ) -> None:
        self.settle_at(buckets, token_delta, release, self._clock())

    async def aclose(self) -> None:
        return None

    def admit_at(
        self, buckets: Sequence[Bucket], costs: Sequence[float], now: float
    ) -> list[Verdict]:
        """All or nothing: the request is charged to every bucket only if every bucket has room."""
        verdicts: list[Verdict] = []
        commits: list[Callable[[], None]] = []
        for bucket, cost in zip(buckets, costs, strict=True):
            if bucket.kind is Kind.ROLLING:
                tat = self._tat.get(bucket.key, 0.0)
                verdict, new_tat = rolling(tat, cost, bucket.limit, bucket.period_s, now)
                commits.append(partial(self._tat.__setitem__, bucket.key, new_tat))
            elif bucket.kind is Kind.BUDGET:
                window, end = budget_window(bucket.period_s, now)
                key = f"{bucket.key}:{window}"
                used = self._used.get(key, (0.0, end))[0]
                verdict = budget(used, cost, bucket.limit, end, now)
                commits.append(partial(self._used.__setitem__, key, (used + cost, end)))
            else:
                verdict = slots(self._held.get(bucket.key, 0), bucket.limit)
                commits.append(partial(self._take_slot, bucket.key))
            verdicts.append(verdict)
        if all(v.allowed for v in verdicts):
            for commit in commits:
                commit()
        self._until_sweep -= 1
        if self._until_sweep <= 0:
            self._sweep(now)
        return verdicts

    def _take_slot(self, key: str) -> None:
        self._held[key] = self._held.get(key, 0) + 1

    def settle_at(
        self, buckets: Sequence[Bucket], token_delta: float, release: bool, now: float
    ) -> None:
        """Charge the tokens the estimate missed (or refund), and free this request's slots."""
        for bucket in buckets:
            if bucket.kind is Kind.SLOTS:
                if release and self._held.get(bucket.key, 0) > 0:
                    self._held[bucket.key] -= 1
                    if not self._held[bucket.key]:
                        del self._held[bucket.key]
            elif bucket.unit is Unit.TOKENS and token_delta:
                if bucket.kind is Kind.ROLLING:
                    tat = self._tat.get(bucket.key, 0.0)
                    self._tat[bucket.key] = rolling_adjust(
                        tat, token_delta, bucket.limit, bucket.period_s, now
                    )
                else:
                    window, end = budget_window(bucket.period_s, now)
                    key = f"{bucket.key}:{window}"
                    used = self._used.get(key, (0.0, end))[0]
                    self._used[key] = (max(0.0, used + token_delta), end)

    def _sweep(self, now: float) -> None:
        """Forget buckets that are full again and budgets of ended windows: bounded memory."""
        self._until_sweep = SWEEP_EVERY
        self._tat = {k: tat for k, tat in self._tat.items() if tat > now}
        self._used = {k: v for k, v in self._used.items() if v[1] > now}

    def size(self) -> int:
        return len(self._tat) + len(self._used) + len(self._held)
