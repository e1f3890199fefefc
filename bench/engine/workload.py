"""The seeded workloads: ShareGPT-like requests, and requests sharing one long system prompt.

Pure functions of a seed and a TextSource; the same seed gives the same token ids every run.
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import asdict, dataclass, replace
from typing import Any

from engine.corpus import TextSource

# Share of shared-prefix requests that start with the system prompt; the rest are unrelated.
PREFIX_SHARE = 0.9


@dataclass(frozen=True)
class LengthSpec:
    """A log-normal length (median, sigma), rounded and clipped to [low, high] tokens."""

    median: float
    sigma: float
    low: int
    high: int

    def sample(self, rng: random.Random) -> int:
        value = round(rng.lognormvariate(math.log(self.median), self.sigma))
        return min(self.high, max(self.low, value))


@dataclass(frozen=True)
class BenchRequest:
    """One request: its prompt, exactly how many tokens to generate, and when it arrives."""

    request_id: str
    prompt_token_ids: list[int]
    max_tokens: int
    # Seconds after the start at one request per second: divide by the rate for real arrival
    # times. 0 for every request of an all-at-once (offline) run.
    arrival_s: float = 0.0
    shared_prefix: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BenchRequest:
        return cls(**data)


def main_lengths(
    prompt_tokens: tuple[int, int], output_tokens: tuple[int, int]
) -> tuple[LengthSpec, LengthSpec]:
    """ShareGPT-like: prompts with a median of 160 tokens and a long tail, replies around 64."""
    return (
        LengthSpec(median=160, sigma=0.9, low=prompt_tokens[0], high=prompt_tokens[1]),
        LengthSpec(median=64, sigma=0.8, low=output_tokens[0], high=output_tokens[1]),
    )


def sharegpt_like(
    source: TextSource, n: int, seed: int, prompt: LengthSpec, output: LengthSpec
) -> list[BenchRequest]:
    """n requests, all arriving at once, each with its own fresh text."""
    rng = random.Random(f"sharegpt-like:{seed}")
    requests = []
    for i in range(n):
        prompt_len, output_len = prompt.sample(rng), output.sample(rng)
        requests.append(BenchRequest(f"req-{i}", source.tokens(rng, prompt_len), output_len))
    return requests


def shared_prefix_lengths(
    output_tokens: tuple[int, int],
) -> tuple[LengthSpec, LengthSpec]:
    """A short user turn after the system prompt (median 32 tokens) and a short reply."""
    low, high = output_tokens
    return (
        LengthSpec(median=32, sigma=0.6, low=8, high=128),
        LengthSpec(median=48, sigma=0.6, low=low, high=max(low, min(high, 128))),
    )


def shared_prefix(
    source: TextSource,
    n: int,
    seed: int,
    system_prompt_tokens: int,
    user: LengthSpec,
    output: LengthSpec,
) -> list[BenchRequest]:
    """n requests with Poisson arrivals (at rate 1/s; see BenchRequest.arrival_s).

    PREFIX_SHARE of them are the one system prompt plus a user turn; the others are unrelated
    text of the same length, so every request costs the same without a prefix cache.
    """
    rng = random.Random(f"shared-prefix:{seed}")
    system = source.tokens(rng, system_prompt_tokens)
    requests = []
    arrival_s = 0.0  # the first request arrives at the start
    for i in range(n):
        shared = rng.random() < PREFIX_SHARE
        user_len, output_len = user.sample(rng), output.sample(rng)
        prompt = (
            system + source.tokens(rng, user_len)
            if shared
            else source.tokens(rng, system_prompt_tokens + user_len)
        )
        requests.append(BenchRequest(f"pfx-{i}", prompt, output_len, arrival_s, shared))
        arrival_s += rng.expovariate(1.0)
    return requests


def at_rate(requests: list[BenchRequest], rate_per_s: float) -> list[BenchRequest]:
    """The requests with arrival times for rate_per_s requests per second."""
    return [replace(r, arrival_s=r.arrival_s / rate_per_s) for r in requests]


def fresh_prompts(
    source: TextSource, purpose: str, seed: int, lengths: tuple[int, ...]
) -> list[list[int]]:
    """Prompts for warm-ups and calibration: fresh text, sharing nothing with the workloads."""
    rng = random.Random(f"{purpose}:{seed}")
    return [source.tokens(rng, n) for n in lengths]


def describe(requests: list[BenchRequest]) -> dict[str, Any]:
    """Counts and length statistics of a workload, for the results file."""
    prompts = [len(r.prompt_token_ids) for r in requests]
    outputs = [r.max_tokens for r in requests]
    return {
        "requests": len(requests),
        "prompt_tokens": _lengths(prompts),
        "output_tokens": _lengths(outputs),
        "shared_prefix_requests": sum(r.shared_prefix for r in requests),
        "distinct_prompt_token_ids": len({t for r in requests for t in r.prompt_token_ids}),
    }


def _lengths(values: list[int]) -> dict[str, Any]:
    if not values:
        return {"total": 0}
    return {
        "total": sum(values),
        "min": min(values),
        "median": statistics.median(values),
        "mean": round(statistics.fmean(values), 1),
        "max": max(values),
    }
