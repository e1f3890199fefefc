"""Counters in Redis, shared by every gateway replica: one script call admits a request against
all its limits, another settles its tokens and frees its slots. Keys expire on their own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from importlib import resources

import redis.asyncio as aioredis

from gateway.config.ratelimit import RateLimitConfig
from gateway.ratelimit.buckets import Bucket, Kind, Unit, Verdict, budget_window


def _script(name: str) -> str:
    return resources.files("gateway.ratelimit").joinpath(name).read_text(encoding="utf-8")


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
        )
        self._admit = self._client.register_script(_script("admit.lua"))
        self._settle = self._client.register_script(_script("settle.lua"))

    async def admit(
        self, buckets: Sequence[Bucket], costs: Sequence[float], holder: str
    ) -> list[Verdict]:
        keys, args = _keys_and_args(buckets, [f"{cost:.3f}" for cost in costs])
        reply = await self._call(self._admit, keys, [holder, self._lease, *args])
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
        is_tokens = ["1" if b.unit is Unit.TOKENS else "0" for b in buckets]
        keys, args = _keys_and_args(buckets, is_tokens)
        await self._call(
            self._settle, keys, [holder, f"{token_delta:.3f}", "1" if release else "0", *args]
        )

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


def _keys_and_args(buckets: Sequence[Bucket], fourth: Sequence[str]) -> tuple[list[str], list[str]]:
    """KEYS and the per-bucket ARGV of both scripts; `fourth` is the cost or the is-tokens flag."""
    now = time.time()
    keys: list[str] = []
    args: list[str] = []
    for bucket, value in zip(buckets, fourth, strict=True):
        end = 0.0
        key = bucket.key
        if bucket.kind is Kind.BUDGET:
            # Calendar windows follow this gateway's clock; keep replicas on NTP.
            window, end = budget_window(bucket.period_s, now)
            key = f"{key}:{window}"
        keys.append(key)
        args += [
            str(int(bucket.kind)),
            str(bucket.limit),
            f"{bucket.period_s:g}",
            value,
            f"{end:.3f}",
        ]
    return keys, args
