"""Stores under test: the in-memory one and a real Redis, each with its own key prefix."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from gateway.config.ratelimit import RateLimitConfig

REDIS_URL = "redis://127.0.0.1:6379/9"


def ratelimit_config(prefix: str, **overrides: object) -> RateLimitConfig:
    return RateLimitConfig.model_validate(
        {
            "store": "redis",
            "redis": {"url": REDIS_URL, "key_prefix": prefix, "timeout_ms": 500},
            **overrides,
        }
    )


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of its own; every key under it is deleted afterwards."""
    prefix = f"sluice-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = aioredis.Redis.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()
