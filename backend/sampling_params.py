"""SamplingParams: what one request asks of the sampler, validated once when it is built.
Every field is checked for type and range: the engine never sees NaN, inf or a bool as an int."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

MAX_N = 128
MAX_TEMPERATURE = 100.0
MAX_REPETITION_PENALTY = 100.0
MAX_ADDITIVE_PENALTY = 2.0
MAX_STOPS = 16
MAX_STOP_CHARS = 256
MAX_LOGPROBS = 20
# torch.Generator.manual_seed accepts exactly this range.
MIN_SEED = -(2**63)
MAX_SEED = 2**64 - 1


class InvalidSamplingParams(ValueError):
    """A sampling parameter is out of range or of the wrong type; `field` names it (or None)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(name: str, value: Any, low: int, high: int | None = None, allowed: str = "") -> int:
    if not _is_int(value):
        raise InvalidSamplingParams(f"{name} must be an integer, got {value!r}", field=name)
    if value < low or (high is not None and value > high):
        span = allowed or (f"[{low}, {high}]" if high is not None else f">= {low}")
        raise InvalidSamplingParams(f"{name} must be {span}, got {value}", field=name)
    return int(value)


def _float(name: str, value: Any, low: float, high: float, *, open_low: bool = False) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise InvalidSamplingParams(f"{name} must be a number, got {value!r}", field=name)
    number = float(value)
    span = f"{'(' if open_low else '['}{low:g}, {high:g}]"
    too_low = number <= low if open_low else number < low
    if not math.isfinite(number) or too_low or number > high:
        raise InvalidSamplingParams(f"{name} must be in {span}, got {value}", field=name)
    return number


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidSamplingParams(f"{name} must be true or false, got {value!r}", field=name)
    return value


def _stops(value: Any) -> list[str]:
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list | tuple):
        raise InvalidSamplingParams(
            f"stop must be a string or a list of strings, got {value!r}", field="stop"
        )
    if len(stops) > MAX_STOPS:
        raise InvalidSamplingParams(
            f"stop must have at most {MAX_STOPS} entries, got {len(stops)}", field="stop"
        )
    for stop in stops:
        if not isinstance(stop, str) or not 1 <= len(stop) <= MAX_STOP_CHARS:
            raise InvalidSamplingParams(
                f"stop entries must be strings of 1 to {MAX_STOP_CHARS} characters, "
                f"got {stop!r:.40}",
                field="stop",
            )
    return list(stops)


def _token_ids(value: Any) -> list[int]:
    if not isinstance(value, list | tuple):
        raise InvalidSamplingParams(
            f"stop_token_ids must be a list of integers, got {value!r}", field="stop_token_ids"
        )
    return [_int("stop_token_ids", token_id, 0, allowed=">= 0") for token_id in value]


@dataclass(slots=True)
class SamplingParams:
    """How to pick each next token and when to stop; see docs/ for the OpenAI field mapping.

    `n` copies are the engine's business (one sequence each); the sampler sees one row per sequence.
    `top_k` 0 or -1 and `top_p` 1 and `min_p` 0 switch those filters off.
    """

    n: int = 1
    max_tokens: int | None = 16
    min_tokens: int = 0
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    ignore_eos: bool = False
    logprobs: int | None = None
    include_stop_str_in_output: bool = False
    skip_special_tokens: bool = True

    def __post_init__(self) -> None:
        self.n = _int("n", self.n, 1, MAX_N)
        if self.max_tokens is not None:
            self.max_tokens = _int("max_tokens", self.max_tokens, 1)
        self.min_tokens = _int("min_tokens", self.min_tokens, 0)
        if self.max_tokens is not None and self.min_tokens > self.max_tokens:
            raise InvalidSamplingParams(
                f"min_tokens must be <= max_tokens ({self.max_tokens}), got {self.min_tokens}",
                field="min_tokens",
            )
        self.temperature = _float("temperature", self.temperature, 0.0, MAX_TEMPERATURE)
        self.top_p = _float("top_p", self.top_p, 0.0, 1.0, open_low=True)
        if not _is_int(self.top_k) or (self.top_k < 1 and self.top_k not in (0, -1)):
            raise InvalidSamplingParams(
                f"top_k must be 0 or -1 (off) or >= 1, got {self.top_k!r}", field="top_k"
            )
        self.min_p = _float("min_p", self.min_p, 0.0, 1.0)
        self.repetition_penalty = _float(
            "repetition_penalty",
            self.repetition_penalty,
            0.0,
            MAX_REPETITION_PENALTY,
            open_low=True,
        )
        for name in ("presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            setattr(self, name, _float(name, value, -MAX_ADDITIVE_PENALTY, MAX_ADDITIVE_PENALTY))
        if self.seed is not None:
            self.seed = _int("seed", self.seed, MIN_SEED, MAX_SEED)
        self.stop = _stops(self.stop)
        self.stop_token_ids = _token_ids(self.stop_token_ids)
        if self.logprobs is not None:
            self.logprobs = _int("logprobs", self.logprobs, 0, MAX_LOGPROBS)
        for name in ("ignore_eos", "include_stop_str_in_output", "skip_special_tokens"):
            _bool(name, getattr(self, name))

    @property
    def greedy(self) -> bool:
        """True when the next token is always the argmax: temperature 0 or top_k 1."""
        return self.temperature == 0.0 or self.top_k == 1

    @property
    def has_penalties(self) -> bool:
        """True when any repetition, presence or frequency penalty changes the logits."""
        return (
            self.repetition_penalty != 1.0
            or self.presence_penalty != 0.0
            or self.frequency_penalty != 0.0
        )
