"""Experiment arm assignment by weighted rendezvous hashing (highest random weight).

Each arm scores a caller's key as `weight / -ln(u)`, with `u` uniform in (0, 1) from a hash of
the experiment, the arm and the key; the highest score wins. So a caller always lands in the
same arm while the weights stay; each arm gets `weight / sum(weights)` of the keys; and when
weights change, only keys whose winner changed move: raising one arm's weight moves keys into
that arm only, which is the least movement any assignment can achieve.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence

_SCALE = 2.0**-64


class Assigner:
    """Picks an arm for a key; the arm names and their order are fixed at construction."""

    __slots__ = ("_prefixes", "arms")

    def __init__(self, experiment: str, arms: Sequence[str]) -> None:
        self.arms = tuple(arms)
        self._prefixes = tuple(f"{experiment}\0{arm}\0".encode() for arm in self.arms)

    def choose(self, key: bytes, weights: Sequence[float]) -> int:
        """Index of the arm `key` belongs to under `weights` (one per arm, same order)."""
        best, best_score = 0, -1.0
        for index, weight in enumerate(weights):
            if weight <= 0:
                continue
            digest = hashlib.blake2b(self._prefixes[index] + key, digest_size=8).digest()
            u = (int.from_bytes(digest, "big") + 0.5) * _SCALE
            score = weight / -math.log(u)
            if score > best_score:
                best, best_score = index, score
        return best


def canary_weights(
    weights: Mapping[str, float], canary_arm: str, canary_percent: float
) -> dict[str, float]:
    """Arm weights with `canary_percent` of the traffic on the canary arm and the rest shared
    by the other arms in proportion to their own weights (their ratios never change, so a ramp
    only moves callers into or out of the canary)."""
    others = sum(w for arm, w in weights.items() if arm != canary_arm)
    rest = 100.0 - canary_percent
    return {
        arm: canary_percent if arm == canary_arm else (rest * w / others if others else 0.0)
        for arm, w in weights.items()
    }
