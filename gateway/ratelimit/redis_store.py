"""Counters in Redis, shared by every gateway replica: one script call admits a request against
all its limits, another settles its tokens and frees its slots. Keys expire on their own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from importlib import resources

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway.config.ratelimit import RateLimitConfig
from gateway.ratelimit.buckets import Bucket, Kind, Unit, Verdict, budget_window


def _script(name: str) -> str:
    """A Lua script with the shared prelude in front of it."""
    package = resources.files("gateway.ratelimit")
    prelude = package.joinpath("prelude.lua").read_text(encoding="utf-8")
    return prelude + package.joinpath(name).read_text(encoding="utf-8")


class StoreUnavailable(Exception):
    """Redis did not answer in time or refused: the limiter's failure policy decides."""


class RedisStore:
    def __init__(self, config: RateLimitConfig) -> None:
        timeout_s = config.redis.timeout_ms / 1000
        self._timeout_s = timeout_s
        self._lease = f"{config.slot_lease_s:.3f}"
        self._client = aioredis.Redis.from_url(
            config.redis.url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            max_connections=256,
            # A pooled connection that died with a restarted Redis fails its first command;
            # one immediate retry on a fresh connection keeps that from counting as an outage.
            retry=Retry(NoBackoff(), retries=1),
            retry_on_error=[aioredis.ConnectionError],
        )
        self._admit = self._client.register_script(_script("admit.lua"))
        self._settle = self._client.register_script(_script("settle.lua"))
        # Plans are cached tuples (see Planner): their encoding is computed once per plan.
        self._plans: dict[int, tuple[Sequence[Bucket], str, list[str], bool]] = {}

    async def admit(
        self, buckets: Sequence[Bucket], costs: Sequence[float], holder: str
    ) -> list[Verdict]:
        spec, keys, ends = self._encoded(buckets)
        cost_list = ",".join(f"{cost:.3f}" for cost in costs)
        reply = await self._call(self._admit, keys, [holder, self._lease, spec, cost_list, ends])
        verdicts = []
        for i in range(len(buckets)):
            ok, remaining, reset, retry = reply[4 * i : 4 * i + 4]
            retry_s = float(retry)
            verdicts.append(
                Verdict(
                    bool(int(ok)),
                    int(remaining),
                    float(reset),
                    float("inf") if retry_s < 0 else retry_s,
                )
            )
        return verdicts

    async def settle(
        self, buckets: Sequence[Bucket], token_delta: float, holder: str, release: bool
    ) -> None:
        spec, keys, ends = self._encoded(buckets)
        args = [holder, f"{token_delta:.3f}", "1" if release else "0", spec, ends]
        await self._call(self._settle, keys, args)

    def _encoded(self, buckets: Sequence[Bucket]) -> tuple[str, list[str], str]:
        """The scripts' view of a plan: (spec, KEYS, window ends); static parts are cached."""
        cached = self._plans.get(id(buckets))
        if cached is None or cached[0] is not buckets:
            spec = ",".join(
                f"{int(b.kind)},{b.limit},{b.period_s:g},{int(b.unit is Unit.TOKENS)}"
                for b in buckets
            )
            has_budgets = any(b.kind is Kind.BUDGET for b in buckets)
            cached = (buckets, spec, [b.key for b in buckets], has_budgets)
            self._plans[id(buckets)] = cached
        _, spec, keys, has_budgets = cached
        if not has_budgets:
            return spec, keys, ",".join("0" for _ in keys)
        return (spec, *_with_windows(buckets, time.time()))

    async def _call(self, script: object, keys: list[str], args: list[str]) -> list[bytes]:
        try:
            async with asyncio.timeout(self._timeout_s):
                return await script(keys=keys, args=args)  # type: ignore[operator]
        except (TimeoutError, aioredis.RedisError, OSError) as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from None

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout_s):
                return bool(await self._client.ping())
        except (TimeoutError, aioredis.RedisError, OSError):
            return False

    async def aclose(self) -> None:
        await self._client.aclose()


def _with_windows(buckets: Sequence[Bucket], now: float) -> tuple[list[str], str]:
    """KEYS with each budget's calendar window appended, and the windows' ends."""
    keys: list[str] = []
    ends: list[str] = []
    for bucket in buckets:
        if bucket.kind is Kind.BUDGET:
            # Calendar windows follow this gateway's clock; keep replicas on NTP.
            window, end = budget_window(bucket.period_s, now)
            keys.append(f"{bucket.key}:{window}")
            ends.append(f"{end:.3f}")
        else:
            keys.append(bucket.key)
            ends.append("0")
    return keys, ",".join(ends)
