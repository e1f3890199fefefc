"""Choosing one replica of a backend: round robin, smooth weighted round robin, least
outstanding requests, or peak-EWMA latency. Pure choices over the replicas' counters.

A replica's load is the larger of the requests this gateway has in flight on it and the queue
depth its engine last reported (a health check of a `sluice backend serve` engine can read it:
other clients' requests wait in the same queue).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from gateway.config.routing import Balance

# Peak-EWMA: how fast old latency samples fade (seconds).
EWMA_DECAY_S = 10.0


class Load(Protocol):
    index: int
    weight: int
    outstanding: int
    queue_depth: int | None
    ewma_ms: float


def load_of(replica: Load) -> int:
    queue = replica.queue_depth
    return replica.outstanding if queue is None or queue < replica.outstanding else queue


def ewma(previous_ms: float, previous_at: float, sample_ms: float, now: float) -> float:
    """Peak-sensitive moving average: a slower sample counts at once, faster ones fade in."""
    if sample_ms >= previous_ms:
        return sample_ms
    keep = math.exp(-max(0.0, now - previous_at) / EWMA_DECAY_S)
    return previous_ms * keep + sample_ms * (1.0 - keep)


class Balancer(Protocol):
    def choose(self, candidates: Sequence[Load]) -> Load:
        """One of `candidates` (never empty: the pool filters out unusable replicas)."""
        ...


class RoundRobin:
    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next = 0

    def choose(self, candidates: Sequence[Load]) -> Load:
        self._next += 1
        return candidates[self._next % len(candidates)]


class SmoothWeighted:
    """nginx's smooth weighted round robin: weights 5:1:1 give a a b a c a a, not a a a a a b c."""

    __slots__ = ("_current",)

    def __init__(self) -> None:
        self._current: dict[int, int] = {}

    def choose(self, candidates: Sequence[Load]) -> Load:
        current = self._current
        total = 0
        best: Load | None = None
        best_value = 0
        for replica in candidates:
            value = current.get(replica.index, 0) + replica.weight
            current[replica.index] = value
            total += replica.weight
            if best is None or value > best_value:
                best, best_value = replica, value
        assert best is not None
        current[best.index] = best_value - total
        return best


class _LowestCost:
    """The replica of lowest `cost`; ties go round robin so idle replicas share the work."""

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next = 0

    def cost(self, replica: Load) -> float:
        raise NotImplementedError

    def choose(self, candidates: Sequence[Load]) -> Load:
        self._next += 1
        count = len(candidates)
        best = candidates[self._next % count]
        best_cost = self.cost(best)
        for offset in range(1, count):
            replica = candidates[(self._next + offset) % count]
            cost = self.cost(replica)
            if cost < best_cost:
                best, best_cost = replica, cost
        return best


class LeastOutstanding(_LowestCost):
    """The least loaded replica."""

    __slots__ = ()

    def cost(self, replica: Load) -> float:
        return load_of(replica)


class PeakEwma(_LowestCost):
    """Finagle's peak EWMA: latency times (load + 1); a replica with no sample yet is tried."""

    __slots__ = ()

    def cost(self, replica: Load) -> float:
        return replica.ewma_ms * (load_of(replica) + 1)


def balancer(kind: Balance) -> Balancer:
    if kind == "round_robin":
        return RoundRobin()
    if kind == "weighted":
        return SmoothWeighted()
    if kind == "least_outstanding":
        return LeastOutstanding()
    return PeakEwma()
