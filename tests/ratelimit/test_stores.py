"""Both stores, one behaviour: every scenario runs against memory and against real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from gateway.ratelimit.buckets import Bucket, Kind, Unit
from gateway.ratelimit.memory import MemoryStore
from gateway.ratelimit.redis_store import RedisStore
from tests.ratelimit.conftest import REDIS_URL, ratelimit_config


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, redis_prefix: str) -> AsyncIterator[object]:
    if request.param == "memory":
        yield MemoryStore()
        return
    redis_store = RedisStore(ratelimit_config(redis_prefix))
    yield redis_store
    await redis_store.aclose()


@pytest.fixture
def key(redis_prefix: str):
    return lambda name: f"{redis_prefix}{name}"


def rpm(name: str, limit: int) -> Bucket:
    return Bucket(name, Kind.ROLLING, Unit.REQUESTS, limit, 60.0, f"test {name}")


def tpm(name: str, limit: int) -> Bucket:
    return Bucket(name, Kind.ROLLING, Unit.TOKENS, limit, 60.0, f"test {name}")


async def test_a_refusal_charges_no_bucket(store, key) -> None:
    tight, loose = rpm(key("tight"), 2), rpm(key("loose"), 5)
    for expected in (True, True, False, False):
        verdicts = await store.admit((tight, loose), [1, 1], "h")
        assert all(v.allowed for v in verdicts) is expected
    # Only the two admitted requests were charged to the loose bucket.
    (alone,) = await store.admit((loose,), [1], "h")
    assert alone.allowed and alone.remaining == 2


async def test_refusal_reports_remaining_reset_and_retry(store, key) -> None:
    bucket = rpm(key("r"), 3)
    for _ in range(3):
        await store.admit((bucket,), [1], "h")
    (verdict,) = await store.admit((bucket,), [1], "h")
    assert not verdict.allowed and verdict.remaining == 0
    assert 19 < verdict.retry_after_s <= 20.0
    assert 59 < verdict.reset_s <= 60.0


async def test_settle_charges_what_the_estimate_missed(store, key) -> None:
    bucket = tpm(key("t"), 1000)
    (first,) = await store.admit((bucket,), [100], "h")
    assert first.allowed and first.remaining == 900
    await store.settle((bucket,), 500.0, "h", False)
    (big,) = await store.admit((bucket,), [401], "h")
    assert not big.allowed and big.remaining == 400
    await store.settle((bucket,), -200.0, "h", False)  # a refund
    (fits,) = await store.admit((bucket,), [550], "h")
    assert fits.allowed


async def test_slots_are_held_until_released(store, key) -> None:
    slots = Bucket(key("c"), Kind.SLOTS, Unit.SLOTS, 2, 0.0, "test slots")
    assert (await store.admit((slots,), [1], "a"))[0].allowed
    assert (await store.admit((slots,), [1], "b"))[0].allowed
    assert not (await store.admit((slots,), [1], "c"))[0].allowed
    await store.settle((slots,), 0.0, "a", True)
    assert (await store.admit((slots,), [1], "c"))[0].allowed


async def test_daily_budget(store, key) -> None:
    day = Bucket(key("d"), Kind.BUDGET, Unit.TOKENS, 1000, 86400.0, "test day")
    assert (await store.admit((day,), [600], "h"))[0].allowed
    refused = (await store.admit((day,), [500], "h"))[0]
    assert not refused.allowed and refused.remaining == 400
    assert 0 < refused.retry_after_s <= 86400
    await store.settle((day,), -300.0, "h", False)
    assert (await store.admit((day,), [700], "h"))[0].allowed


async def test_redis_keys_expire_on_their_own(redis_prefix: str) -> None:
    store = RedisStore(ratelimit_config(redis_prefix))
    buckets = (
        rpm(f"{redis_prefix}rpm", 10),
        Bucket(f"{redis_prefix}day", Kind.BUDGET, Unit.TOKENS, 100, 86400.0, "d"),
        Bucket(f"{redis_prefix}slots", Kind.SLOTS, Unit.SLOTS, 3, 0.0, "s"),
    )
    await store.admit(buckets, [1, 5, 1], "holder")
    client = aioredis.Redis.from_url(REDIS_URL)
    keys = [k async for k in client.scan_iter(match=f"{redis_prefix}*")]
    assert len(keys) == 3
    for k in keys:
        ttl_ms = await client.pttl(k)
        assert 0 < ttl_ms <= (86400 + 2 * 3600) * 1000, k
    await client.aclose()
    await store.aclose()


async def test_memory_store_forgets_full_buckets() -> None:
    now = [0.0]
    store = MemoryStore(clock=lambda: now[0])
    for i in range(5000):
        store.admit_at((rpm(f"k{i}", 10),), [1], now[0])
    assert store.size() == 5000
    now[0] = 1000.0  # every one of those buckets is full again: nothing to remember
    for i in range(5000):
        store.admit_at((rpm(f"fresh{i % 3}", 10),), [1], now[0])
    assert store.size() == 3
