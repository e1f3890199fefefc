"""Limit arithmetic: GCRA's guarantee, calendar budgets, slots, and the header format."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ratelimit.buckets import budget, budget_window, rolling, rolling_adjust, slots
from gateway.ratelimit.headers import format_reset


def admit_all(times: list[float], limit: int, period_s: float, cost: float = 1.0) -> list[float]:
    tat, admitted = 0.0, []
    for now in times:
        verdict, tat = rolling(tat, cost, limit, period_s, now)
        if verdict.allowed:
            admitted.append(now)
    return admitted


def test_a_full_bucket_admits_the_limit_at_once_then_refills_at_the_rate() -> None:
    admitted = admit_all([100.0] * 15, limit=10, period_s=60)
    assert len(admitted) == 10
    # One request's worth (6 s) later, exactly one more fits.
    assert len(admit_all([100.0] * 10 + [105.9, 106.0, 106.1], limit=10, period_s=60)) == 11


def test_refusal_says_when_the_same_request_would_pass() -> None:
    tat = 0.0
    for _ in range(10):
        _, tat = rolling(tat, 1, 10, 60, 100.0)
    verdict, unchanged = rolling(tat, 1, 10, 60, 100.0)
    assert not verdict.allowed and unchanged == tat
    assert verdict.retry_after_s == pytest.approx(6.0)
    later, _ = rolling(tat, 1, 10, 60, 100.0 + verdict.retry_after_s)
    assert later.allowed


def test_remaining_and_reset_count_down() -> None:
    verdict, tat = rolling(0.0, 1, 10, 60, 0.0)
    assert (verdict.remaining, verdict.reset_s) == (9, pytest.approx(6.0))
    verdict, _ = rolling(tat, 3, 10, 60, 0.0)
    assert (verdict.remaining, verdict.reset_s) == (6, pytest.approx(24.0))


def test_a_cost_above_the_limit_can_never_pass() -> None:
    verdict, _ = rolling(0.0, 11, 10, 60, 0.0)
    assert not verdict.allowed and math.isinf(verdict.retry_after_s)


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0, max_value=3), min_size=1, max_size=300),
    limit=st.integers(min_value=1, max_value=50),
    period_s=st.sampled_from([1.0, 10.0, 60.0]),
    window_s=st.floats(min_value=0.1, max_value=30),
)
def test_no_window_admits_more_than_the_documented_bound(
    gaps: list[float], limit: int, period_s: float, window_s: float
) -> None:
    """docs/ratelimit.md: any window of W seconds admits at most limit * (1 + W / period)."""
    times, now = [], 0.0
    for gap in gaps:
        now += gap
        times.append(now)
    admitted = admit_all(times, limit, period_s)
    bound = limit * (1 + window_s / period_s) + 1e-6
    j = 0
    for i, start in enumerate(admitted):
        while j < len(admitted) and admitted[j] <= start + window_s:
            j += 1
        assert j - i <= bound


def test_adjust_charges_and_refunds_after_the_fact() -> None:
    _, tat = rolling(0.0, 100, 1000, 60, 0.0)  # estimate: 100 tokens
    charged = rolling_adjust(tat, 400, 1000, 60, 0.0)  # the answer used 400 more
    verdict, _ = rolling(charged, 600, 1000, 60, 0.0)
    assert not verdict.allowed  # only 500 left
    refunded = rolling_adjust(tat, -100, 1000, 60, 0.0)
    assert refunded == 0.0  # never below "empty"


@pytest.mark.parametrize(
    ("moment", "period", "window", "end"),
    [
        ("2026-11-25T13:00:00", 86400, "20261125", "2026-11-26T00:00:00"),
        ("2026-11-30T23:59:59", 86400, "20261130", "2026-12-01T00:00:00"),
        ("2026-11-25T13:00:00", 0, "202611", "2026-12-01T00:00:00"),
        ("2026-12-31T23:00:00", 0, "202612", "2027-01-01T00:00:00"),
    ],
)
def test_budget_windows_are_utc_calendar_days_and_months(
    moment: str, period: float, window: str, end: str
) -> None:
    now = datetime.fromisoformat(moment).replace(tzinfo=UTC).timestamp()
    got_window, got_end = budget_window(period, now)
    assert got_window == window
    assert got_end == datetime.fromisoformat(end).replace(tzinfo=UTC).timestamp()


def test_budget_refuses_what_would_overflow_until_the_window_ends() -> None:
    assert budget(900, 100, 1000, 500.0, 100.0).allowed
    refused = budget(900, 101, 1000, 500.0, 100.0)
    assert not refused.allowed and refused.retry_after_s == 400.0 and refused.remaining == 100


def test_slots() -> None:
    assert slots(2, 3).allowed and slots(2, 3).remaining == 0
    assert not slots(3, 3).allowed


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.02, "20ms"), (0.0, "0ms"), (1.0, "1s"), (59.2, "1m0s"), (360, "6m0s"), (3723, "1h2m3s")],
)
def test_reset_uses_openais_duration_format(seconds: float, text: str) -> None:
    assert format_reset(seconds) == text
