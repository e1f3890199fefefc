"""The retry budget: retries stay within `ratio` of the requests plus `min_per_s`, over a
sliding window, so an outage gets a trickle of retries instead of a multiple of the traffic."""

from __future__ import annotations

from gateway.config.routing import RetryBudget
from gateway.routing.budget import Budget


def spend(budget: Budget, now: float, tries: int) -> int:
    return sum(budget.try_retry(now) for _ in range(tries))


def test_retries_are_capped_at_the_ratio_of_requests() -> None:
    budget = Budget(RetryBudget(ratio=0.2, min_per_s=0, window_s=10))
    for _ in range(100):
        budget.sent()
    assert spend(budget, 1000.0, 50) == 20
    assert budget.exhausted == 30


def test_a_floor_allows_retries_with_little_traffic() -> None:
    budget = Budget(RetryBudget(ratio=0.0, min_per_s=0.5, window_s=10))
    assert spend(budget, 50.0, 10) == 5


def test_the_window_slides() -> None:
    budget = Budget(RetryBudget(ratio=0.5, min_per_s=0, window_s=10))
    for _ in range(10):
        budget.sent()
    assert spend(budget, 100.0, 10) == 5
    # Five seconds on, the same requests and retries still count.
    assert spend(budget, 105.5, 1) == 0
    # Past the window they are forgotten: no requests, no budget.
    assert spend(budget, 110.5, 1) == 0
    for _ in range(4):
        budget.sent()
    assert spend(budget, 111.0, 5) == 2


def test_requests_counted_over_a_quiet_spell_are_spread_over_it() -> None:
    budget = Budget(RetryBudget(ratio=1.0, min_per_s=0, window_s=10))
    assert not budget.try_retry(0.0)  # the budget looks once, then nothing fails for 100 s
    for _ in range(100):
        budget.sent()
    # 100 requests in 100 s: about 10 of them fall in the last 10 s, so 10 retries are allowed.
    assert spend(budget, 100.0, 20) == 10
