"""The circuit breaker's states on a fake clock: opens after N failures in a row, refuses during
the cool-down, half-opens after it, and closes or opens again on the trial request's outcome."""

from __future__ import annotations

from gateway.config.routing import CircuitBreaker
from gateway.routing.breaker import Breaker, CircuitState


def breaker(failures: int = 3, cooldown_s: float = 10.0, trials: int = 1) -> Breaker:
    return Breaker(
        CircuitBreaker(failures=failures, cooldown_s=cooldown_s, half_open_requests=trials)
    )


def test_opens_after_n_consecutive_failures() -> None:
    b = breaker(failures=3)
    for _ in range(2):
        assert b.allow(0.0)
        b.failure(0.0)
    assert b.current(0.0) is CircuitState.CLOSED
    b.failure(0.0)
    assert b.current(0.0) is CircuitState.OPEN
    assert not b.allow(0.0)


def test_a_success_resets_the_count() -> None:
    b = breaker(failures=3)
    for _ in range(5):
        b.failure(0.0)
        b.failure(0.0)
        b.success(0.0)
    assert b.current(0.0) is CircuitState.CLOSED


def test_half_opens_after_the_cool_down_and_a_success_closes_it() -> None:
    b = breaker(failures=1, cooldown_s=10.0)
    b.failure(100.0)
    assert not b.allow(109.9)
    assert b.retry_in_s(105.0) == 5.0
    assert b.current(110.0) is CircuitState.HALF_OPEN
    assert b.allow(110.0)  # the trial request
    assert not b.allow(110.0)  # only one at a time
    b.success(111.0)
    assert b.current(111.0) is CircuitState.CLOSED
    assert b.allow(111.0) and b.allow(111.0)


def test_a_failed_trial_opens_it_for_another_cool_down() -> None:
    b = breaker(failures=1, cooldown_s=10.0)
    b.failure(0.0)
    assert b.allow(10.0)
    b.failure(10.5)
    assert b.current(10.5) is CircuitState.OPEN
    assert not b.allow(20.0)
    assert b.allow(20.5)


def test_a_trial_without_verdict_frees_its_slot() -> None:
    b = breaker(failures=1, cooldown_s=1.0, trials=1)
    b.failure(0.0)
    assert b.allow(1.0)
    assert not b.available(1.0)
    b.release()  # the client went away: no verdict on the upstream
    assert b.available(1.0) and b.allow(1.0)


def test_late_answers_of_requests_sent_before_it_opened_change_nothing() -> None:
    b = breaker(failures=1, cooldown_s=10.0)
    b.failure(0.0)
    b.success(1.0)  # a request that was already in flight
    assert b.current(1.0) is CircuitState.OPEN
    b.failure(2.0)
    assert b.retry_in_s(2.0) == 8.0  # the cool-down did not restart
