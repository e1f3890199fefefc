"""Policy models for routing: replicas and their balancing, health checks, circuit breakers,
retry budgets, weighted routes, fallback chains, shadow copies, experiments and canaries.

docs/policy.md and docs/routing.md document every field here; keep them in step.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from gateway.config.base import StrictModel

Balance = Literal["round_robin", "weighted", "least_outstanding", "peak_ewma"]

# Arm names go out in the `x-sluice-arm` header and into metrics labels.
_ARM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")


def located(path: tuple[str | int, ...], message: str) -> ValueError:
    """An error about the key at `path` below the model being validated (the loader names its
    line); imported late, as schema imports this module."""
    from gateway.config.schema import LocatedError

    return LocatedError(path, message)


def http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("base_url must start with http:// or https://")
    return value.rstrip("/")


class Replica(StrictModel):
    base_url: str
    # Share of traffic under `balance: weighted`.
    weight: int = Field(1, ge=1, le=1000)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value)


class HealthCheck(StrictModel):
    # GET base_url + path; a replica is healthy while it answers below 500 in time.
    path: str = Field("/models", pattern=r"^/")
    interval_s: float = Field(10.0, gt=0)
    timeout_s: float = Field(2.0, gt=0)
    # Consecutive failed checks that take a replica out, and passed ones that bring it back.
    unhealthy_after: int = Field(2, ge=1, le=100)
    healthy_after: int = Field(1, ge=1, le=100)
    # Also read the queue depth of `sluice backend serve` engines from /metrics at the
    # replica's origin: a load hint for least_outstanding and peak_ewma.
    queue_depth: bool = False


class CircuitBreaker(StrictModel):
    # Consecutive failed requests (connection errors, timeouts, 5xx) that open the circuit.
    failures: int = Field(5, ge=1, le=10_000)
    # How long an open circuit refuses requests before letting trial requests through.
    cooldown_s: float = Field(30.0, gt=0)
    # Trial requests at once while half-open; one success closes the circuit, one failure
    # opens it again.
    half_open_requests: int = Field(1, ge=1, le=1000)


class RetryBudget(StrictModel):
    # Retries allowed per request sent, on top of `min_per_s`, over a sliding `window_s`.
    ratio: float = Field(0.2, ge=0, le=10)
    min_per_s: float = Field(5.0, ge=0)
    window_s: int = Field(10, ge=1, le=600)


class RouteTarget(StrictModel):
    backend: str
    # Name sent upstream; defaults to the public name.
    model: str | None = None
    # Share of the model's traffic (relative to the other routes).
    weight: int = Field(1, ge=0, le=1_000_000)


class FallbackTarget(StrictModel):
    backend: str
    model: str | None = None


class ShadowConfig(StrictModel):
    backend: str
    model: str | None = None
    # Fraction of the model's requests copied to the shadow backend.
    sample_rate: float = Field(0.1, ge=0, le=1)
    timeout_s: float = Field(30.0, gt=0)
    # Copies in flight at once; a request sampled while it is full is not copied (counted).
    max_concurrency: int = Field(4, ge=1, le=10_000)


class Arm(StrictModel):
    backend: str
    model: str | None = None
    weight: float = Field(1.0, ge=0)


class CanaryStep(StrictModel):
    # Seconds after the experiment was first applied; the step's weight holds from then on.
    after_s: float = Field(ge=0)
    # Percent of the experiment's traffic sent to the canary arm.
    weight: float = Field(ge=0, le=100)


class Rollback(StrictModel):
    max_error_rate: float | None = Field(None, ge=0, le=1)
    max_p99_ms: float | None = Field(None, gt=0)
    # No verdict on fewer canary requests than this in the window.
    min_requests: int = Field(50, ge=1)
    window_s: float = Field(60.0, gt=0)

    @model_validator(mode="after")
    def _some_bound(self) -> Rollback:
        if self.max_error_rate is None and self.max_p99_ms is None:
            raise ValueError("rollback needs max_error_rate, max_p99_ms or both")
        return self


class Canary(StrictModel):
    arm: str
    schedule: list[CanaryStep] = Field(min_length=1, max_length=100)
    rollback: Rollback | None = None

    @field_validator("schedule")
    @classmethod
    def _in_order(cls, steps: list[CanaryStep]) -> list[CanaryStep]:
        for index in range(1, len(steps)):
            if steps[index].after_s <= steps[index - 1].after_s:
                raise located(
                    (index, "after_s"),
                    f"schedule steps must be in increasing after_s order "
                    f"({steps[index].after_s:g} follows {steps[index - 1].after_s:g})",
                )
        return steps


class Experiment(StrictModel):
    # The public model name whose requests the experiment splits.
    model: str
    arms: dict[str, Arm] = Field(min_length=2, max_length=32)
    # What keeps a caller in one arm: the request's `user` field, the API key, or a header.
    sticky_by: str = "user"
    canary: Canary | None = None

    @field_validator("sticky_by")
    @classmethod
    def _sticky(cls, value: str) -> str:
        if value in ("user", "api_key"):
            return value
        kind, _, name = value.partition(":")
        if kind == "header" and _HEADER_NAME.fullmatch(name):
            return f"header:{name.lower()}"
        raise ValueError("sticky_by must be user, api_key or header:<header name>")

    @model_validator(mode="after")
    def _arms(self) -> Experiment:
        for name in self.arms:
            if not _ARM_NAME.fullmatch(name):
                raise located(
                    ("arms", name),
                    "arm names are 1-64 letters, digits, '.', '_' or '-' (they go out in the "
                    "x-sluice-arm header)",
                )
        if self.canary is not None:
            if self.canary.arm not in self.arms:
                known = ", ".join(self.arms)
                raise located(("canary", "arm"), f"unknown arm {self.canary.arm!r} (arms: {known})")
            others = [a for n, a in self.arms.items() if n != self.canary.arm]
            if sum(a.weight for a in others) <= 0:
                raise located(("arms",), "the arms other than the canary need a weight above 0")
        elif sum(a.weight for a in self.arms.values()) <= 0:
            raise located(("arms",), "at least one arm needs a weight above 0")
        return self
