"""The `ratelimit` section of a policy: where counters live and which limits apply to whom.

docs/ratelimit.md explains the algorithm and the accuracy each kind of limit guarantees.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from gateway.config.base import StrictModel

PositiveInt = Field(None, ge=1)


class Limits(StrictModel):
    """Limits for one subject (a key, a tenant, a model, or everything); unset means unlimited."""

    requests_per_second: int | None = PositiveInt
    requests_per_minute: int | None = PositiveInt
    requests_per_day: int | None = PositiveInt
    tokens_per_second: int | None = PositiveInt
    tokens_per_minute: int | None = PositiveInt
    # Budgets per UTC calendar day and month, not rolling windows.
    tokens_per_day: int | None = PositiveInt
    tokens_per_month: int | None = PositiveInt
    concurrent: int | None = PositiveInt

    def is_empty(self) -> bool:
        return all(value is None for value in self.model_dump().values())

    def merged(self, override: Limits | None) -> Limits:
        """This limit set with every field that `override` sets replaced."""
        if override is None:
            return self
        return self.model_copy(update=override.model_dump(exclude_unset=True))


class ScopeLimits(StrictModel):
    """Defaults applied to each subject of every scope (each key, each tenant, each model)."""

    key: Limits = Field(default_factory=Limits)
    tenant: Limits = Field(default_factory=Limits)
    model: Limits = Field(default_factory=Limits)
    # `global` is a Python keyword: the YAML key is `global`.
    everything: Limits = Field(default_factory=Limits, alias="global")


class Overrides(StrictModel):
    """Limits for named subjects; each replaces the scope's default field by field."""

    key: dict[str, Limits] = Field(default_factory=dict)
    tenant: dict[str, Limits] = Field(default_factory=dict)
    model: dict[str, Limits] = Field(default_factory=dict)


class RedisStore(StrictModel):
    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = Field("sluice:rl:", min_length=1)
    # Every call to Redis is bounded by this; on expiry `on_store_error` decides.
    timeout_ms: int = Field(50, ge=1, le=10_000)


class RateLimitConfig(StrictModel):
    store: Literal["memory", "redis"] = "memory"
    redis: RedisStore = Field(default_factory=RedisStore)
    # open: admit and count it when the store cannot answer; closed: answer 503.
    on_store_error: Literal["open", "closed"] = "open"
    # A concurrency slot whose holder vanished (a killed gateway) frees itself after this.
    slot_lease_s: float = Field(900.0, gt=0)
    limits: ScopeLimits = Field(default_factory=ScopeLimits)
    overrides: Overrides = Field(default_factory=Overrides)

    @model_validator(mode="after")
    def _redis_url(self) -> RateLimitConfig:
        if self.store == "redis" and not self.redis.url.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ValueError("ratelimit.redis.url must start with redis://, rediss:// or unix://")
        return self
