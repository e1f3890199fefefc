"""The rate-limit stage: admits a request against every limit that applies, settles it after.

Owns the failure policy (fail open or closed when the store cannot answer) and the headers;
the arithmetic lives in buckets.py, the counters in a store.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from gateway.auth import Principal
from gateway.config.ratelimit import RateLimitConfig
from gateway.errors import RateLimited, RateLimitStoreDown
from gateway.ratelimit.buckets import Bucket, Kind, Unit, Verdict
from gateway.ratelimit.headers import format_reset, rate_headers
from gateway.ratelimit.memory import MemoryStore
from gateway.ratelimit.plan import Planner
from gateway.ratelimit.redis_store import RedisStore, StoreUnavailable

log = logging.getLogger("sluicegate.ratelimit")


class Store(Protocol):
    async def admit(
        self, buckets: tuple[Bucket, ...], costs: list[float], holder: str
    ) -> list[Verdict]: ...

    async def settle(
        self, buckets: tuple[Bucket, ...], token_delta: float, holder: str, release: bool
    ) -> None: ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class Admission:
    """What admitting one request took, so that settling it can give back the right things."""

    buckets: tuple[Bucket, ...]
    holder: str
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    prompt_tokens: int = 0
    counts_tokens: bool = False
    holds_slots: bool = False
    # The store could not answer and the policy failed open: nothing was counted.
    store_failed: bool = False
    settled: bool = False

    def header_map(self) -> dict[str, str]:
        return {name.decode(): value.decode() for name, value in self.headers}


class Limiter:
    def __init__(self, config: RateLimitConfig, store: Store | None = None) -> None:
        self.config = config
        self.planner = Planner(config)
        self.store: Store = store or (
            RedisStore(config) if config.store == "redis" else MemoryStore()
        )
        self.store_failures = 0
        self._store_healthy = True

    async def admit(
        self, principal: Principal, model: str, holder: str, prompt_tokens: Callable[[], int]
    ) -> Admission:
        buckets = self.planner.plan(principal.key_id, principal.tenant, model)
        if not buckets:
            return Admission(buckets, holder)
        counts_tokens = any(b.unit is Unit.TOKENS for b in buckets)
        estimate = prompt_tokens() if counts_tokens else 0
        costs = [float(estimate) if b.unit is Unit.TOKENS else 1.0 for b in buckets]
        try:
            verdicts = await self.store.admit(buckets, costs, holder)
        except StoreUnavailable as exc:
            self._store_failed(exc)
            if self.config.on_store_error == "closed":
                raise RateLimitStoreDown(
                    "Rate limits cannot be checked right now (the limit store does not answer) "
                    "and this gateway is configured to refuse requests then; retry shortly.",
                    headers={"retry-after": "1"},
                ) from None
            return Admission(buckets, holder, store_failed=True)
        self._store_answered()
        headers = rate_headers(buckets, verdicts)
        if not all(v.allowed for v in verdicts):
            raise _refusal(buckets, verdicts, costs, headers)
        holds_slots = any(b.kind is Kind.SLOTS for b in buckets)
        return Admission(buckets, holder, headers, estimate, counts_tokens, holds_slots)

    async def settle(self, admission: Admission, total_tokens: int | None) -> None:
        """Charge real usage against the estimate and free slots; later calls do nothing."""
        if admission.settled or admission.store_failed or not admission.buckets:
            return
        admission.settled = True
        delta = 0.0
        if admission.counts_tokens and total_tokens is not None:
            delta = float(total_tokens - admission.prompt_tokens)
        if not delta and not admission.holds_slots:
            return
        try:
            await self.store.settle(
                admission.buckets, delta, admission.holder, admission.holds_slots
            )
        except StoreUnavailable as exc:
            # Slots free themselves when their lease runs out; the token charge is lost.
            self._store_failed(exc)
        else:
            self._store_answered()

    def _store_failed(self, exc: StoreUnavailable) -> None:
        self.store_failures += 1
        if self._store_healthy:
            self._store_healthy = False
            log.error(
                "rate-limit store unavailable (%s); failing %s until it answers again",
                exc,
                self.config.on_store_error,
            )

    def _store_answered(self) -> None:
        if not self._store_healthy:
            self._store_healthy = True
            log.warning("rate-limit store answers again; limits are enforced")

    async def aclose(self) -> None:
        await self.store.aclose()


def _refusal(
    buckets: tuple[Bucket, ...],
    verdicts: list[Verdict],
    costs: list[float],
    headers: list[tuple[bytes, bytes]],
) -> RateLimited:
    refused = [(b, v, c) for b, v, c in zip(buckets, verdicts, costs, strict=True) if not v.allowed]
    bucket, verdict, cost = max(refused, key=lambda r: r[1].retry_after_s)
    extra = {k.decode(): v.decode() for k, v in headers}
    if math.isinf(verdict.retry_after_s):
        return RateLimited(
            f"This request needs about {int(cost)} tokens, more than the {bucket.label} limit "
            f"of {bucket.limit} allows at once; send a smaller request.",
            code="request_too_large",
            headers=extra,
        )
    retry_s = max(1, math.ceil(verdict.retry_after_s))
    extra["retry-after"] = str(retry_s)
    what = "concurrent requests" if bucket.kind is Kind.SLOTS else bucket.unit.value
    return RateLimited(
        f"Rate limit reached for {bucket.label} ({bucket.limit} {what}). "
        f"Retry after {format_reset(verdict.retry_after_s)}.",
        headers=extra,
    )
