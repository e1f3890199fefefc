"""Choosing a replica: each balancing strategy on plain counters, and the pool skipping
replicas whose circuit is open or whose health checks fail."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest

from gateway.config.loader import parse_policy
from gateway.routing.balancer import (
    LeastOutstanding,
    PeakEwma,
    RoundRobin,
    SmoothWeighted,
    ewma,
)
from gateway.routing.health import HealthStreak, engine_queue_depth
from gateway.routing.pool import Pool


@dataclass
class FakeReplica:
    index: int
    weight: int = 1
    outstanding: int = 0
    queue_depth: int | None = None
    ewma_ms: float = 0.0


def picks(balancer: object, replicas: list[FakeReplica], n: int) -> list[int]:
    return [balancer.choose(replicas).index for _ in range(n)]  # type: ignore[attr-defined]


def test_round_robin_takes_turns() -> None:
    replicas = [FakeReplica(i) for i in range(3)]
    assert Counter(picks(RoundRobin(), replicas, 30)) == {0: 10, 1: 10, 2: 10}


def test_smooth_weighted_interleaves_and_keeps_the_proportions() -> None:
    replicas = [FakeReplica(0, weight=5), FakeReplica(1), FakeReplica(2)]
    sequence = picks(SmoothWeighted(), replicas, 7)
    assert sequence == [0, 0, 1, 0, 2, 0, 0]
    assert Counter(picks(SmoothWeighted(), replicas, 700)) == {0: 500, 1: 100, 2: 100}


def test_least_outstanding_picks_the_least_loaded() -> None:
    replicas = [FakeReplica(0, outstanding=3), FakeReplica(1, outstanding=1), FakeReplica(2, 1, 2)]
    assert set(picks(LeastOutstanding(), replicas, 10)) == {1}


def test_least_outstanding_shares_ties() -> None:
    replicas = [FakeReplica(i) for i in range(3)]
    assert set(picks(LeastOutstanding(), replicas, 9)) == {0, 1, 2}


def test_an_engines_queue_depth_counts_as_load() -> None:
    # Replica 0 has nothing in flight from this gateway, but its engine queue is long.
    replicas = [FakeReplica(0, queue_depth=8), FakeReplica(1, outstanding=2)]
    assert set(picks(LeastOutstanding(), replicas, 5)) == {1}


def test_peak_ewma_prefers_fast_replicas_unless_they_are_loaded() -> None:
    fast, slow = FakeReplica(0, ewma_ms=50.0), FakeReplica(1, ewma_ms=200.0)
    assert set(picks(PeakEwma(), [fast, slow], 5)) == {0}
    fast.outstanding = 4  # 50 * 5 = 250 > 200 * 1
    assert set(picks(PeakEwma(), [fast, slow], 5)) == {1}


def test_ewma_jumps_to_a_peak_and_decays_from_it() -> None:
    assert ewma(100.0, 0.0, 900.0, 1.0) == 900.0
    after_one = ewma(900.0, 1.0, 100.0, 2.0)
    after_many = ewma(900.0, 1.0, 100.0, 100.0)
    assert 800.0 < after_one < 900.0
    assert after_many == pytest.approx(100.0, abs=1.0)


def test_health_streaks_need_consecutive_results() -> None:
    policy = parse_policy(POOL, "p.yaml", {})
    check = policy.backends["pool"].health_check  # type: ignore[union-attr]
    assert check is not None
    streak = HealthStreak(check)
    assert not streak.observe(False)  # one failure is not enough (unhealthy_after: 2)
    assert streak.observe(False) and not streak.healthy
    assert streak.observe(True) and streak.healthy  # healthy_after: 1


def test_queue_depth_is_read_from_an_engines_metrics() -> None:
    text = (
        b"# HELP sluice:num_requests_running Requests in the running batch.\n"
        b'sluice:num_requests_running{model_name="m"} 3.0\n'
        b'sluice:num_requests_waiting{model_name="m"} 4.0\n'
        b"sluice:kv_cache_usage_perc 0.5\n"
    )
    assert engine_queue_depth(text) == 7
    assert engine_queue_depth(b"other_metric 1\n") is None


POOL = """
auth: none
backends:
  pool:
    kind: openai
    replicas: [{base_url: "http://127.0.0.1:9/v1"}, {base_url: "http://127.0.0.1:10/v1"}]
    balance: round_robin
    circuit_breaker: {failures: 1, cooldown_s: 30}
    health_check: {interval_s: 60, unhealthy_after: 2}
models:
  m: {backend: pool}
"""


async def test_the_pool_skips_open_circuits_and_unhealthy_replicas() -> None:
    policy = parse_policy(POOL, "p.yaml", {})
    pool = Pool("pool", policy.backends["pool"], {})
    try:
        a, b = pool.replicas
        assert {pool.pick(0.0, set()).index for _ in range(4)} == {0, 1}  # type: ignore[union-attr]
        assert a.breaker is not None
        a.breaker.failure(0.0)
        assert {pool.pick(1.0, set()).index for _ in range(4)} == {1}  # type: ignore[union-attr]
        assert b.health is not None
        b.health.observe(False)
        b.health.observe(False)
        assert pool.pick(1.0, set()) is None
        assert "circuit open" in pool.unavailable_reason(1.0)
        assert "failing health checks" in pool.unavailable_reason(1.0)
        # After the cool-down, a trial request may go to the first replica again.
        assert pool.pick(31.0, set()) is a
    finally:
        await pool.aclose()


async def test_a_retry_prefers_a_replica_not_tried_yet() -> None:
    policy = parse_policy(POOL.replace("balance: round_robin", "balance: peak_ewma"), "p.yaml", {})
    pool = Pool("pool", policy.backends["pool"], {})
    try:
        for _ in range(4):
            assert pool.pick(0.0, {0}) is pool.replicas[1]
        # All tried: any usable one will do.
        assert pool.pick(0.0, {0, 1}) is not None
    finally:
        await pool.aclose()
