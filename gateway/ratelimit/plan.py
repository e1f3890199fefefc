"""Which limits apply to a request: the buckets of its key, tenant, model and the global scope.

Plans depend only on (key, tenant, model), so each combination is computed once and cached.
"""

from __future__ import annotations

from gateway.config.ratelimit import Limits, RateLimitConfig
from gateway.ratelimit.buckets import Bucket, Kind, Unit

DAY_S = 86400.0
MONTH = 0.0  # period_s of a calendar-month budget

# (field of Limits, kind, unit, period_s, short name used in the counter's key)
_FIELDS = (
    ("requests_per_second", Kind.ROLLING, Unit.REQUESTS, 1.0, "rps"),
    ("requests_per_minute", Kind.ROLLING, Unit.REQUESTS, 60.0, "rpm"),
    ("requests_per_day", Kind.ROLLING, Unit.REQUESTS, DAY_S, "rpd"),
    ("tokens_per_second", Kind.ROLLING, Unit.TOKENS, 1.0, "tps"),
    ("tokens_per_minute", Kind.ROLLING, Unit.TOKENS, 60.0, "tpm"),
    ("tokens_per_day", Kind.BUDGET, Unit.TOKENS, DAY_S, "tpd"),
    ("tokens_per_month", Kind.BUDGET, Unit.TOKENS, MONTH, "tpmo"),
    ("concurrent", Kind.SLOTS, Unit.SLOTS, 0.0, "conc"),
)


def buckets_for(limits: Limits, prefix: str, subject: str) -> list[Bucket]:
    out = []
    for field, kind, unit, period_s, short in _FIELDS:
        limit = getattr(limits, field)
        if limit is not None:
            label = f"{subject} {field}"
            out.append(Bucket(f"{prefix}{short}", kind, unit, limit, period_s, label))
    return out


class Planner:
    def __init__(self, config: RateLimitConfig) -> None:
        self.config = config
        self._prefix = config.redis.key_prefix
        self._cache: dict[tuple[str, str, str], tuple[Bucket, ...]] = {}

    def plan(self, key_id: str, tenant: str, model: str) -> tuple[Bucket, ...]:
        cache_key = (key_id, tenant, model)
        plan = self._cache.get(cache_key)
        if plan is None:
            plan = self._cache[cache_key] = self._build(key_id, tenant, model)
        return plan

    def _build(self, key_id: str, tenant: str, model: str) -> tuple[Bucket, ...]:
        defaults, overrides, p = self.config.limits, self.config.overrides, self._prefix
        scopes = (
            (
                defaults.key.merged(overrides.key.get(key_id)),
                f"{p}key:{key_id}:",
                f"key '{key_id}'",
            ),
            (
                defaults.tenant.merged(overrides.tenant.get(tenant)),
                f"{p}tenant:{tenant}:",
                f"tenant '{tenant}'",
            ),
            (
                defaults.model.merged(overrides.model.get(model)),
                f"{p}model:{model}:",
                f"model '{model}'",
            ),
            (defaults.everything, f"{p}global:", "global"),
        )
        return tuple(b for limits, prefix, who in scopes for b in buckets_for(limits, prefix, who))
