"""Limit arithmetic over plain numbers: rolling buckets (GCRA), calendar budgets, slots.

Pure functions of (state, cost, now) so both stores share one definition: the memory store
calls these directly and `redis_admit.lua` is a line-by-line port, held to the same tests.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import UTC, datetime


class Kind(enum.IntEnum):
    """How a limit counts; the values are part of the Redis script's protocol."""

    ROLLING = 1  # GCRA: `limit` units per `period_s`, replenished continuously
    BUDGET = 2  # fixed UTC calendar window (day or month): at most `limit` units in it
    SLOTS = 3  # at most `limit` held at once


class Unit(enum.Enum):
    REQUESTS = "requests"
    TOKENS = "tokens"
    SLOTS = "slots"


@dataclass(frozen=True, slots=True)
class Bucket:
    """One limit that applies to one request: `key` names the subject's counter."""

    key: str
    kind: Kind
    unit: Unit
    limit: int
    period_s: float  # ROLLING: the period; BUDGET: 86400 (day) or 0 (month); SLOTS: unused
    label: str = ""  # for people: "key 'alice' requests_per_minute"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one bucket for one request."""

    allowed: bool
    remaining: int  # units left after this request
    reset_s: float  # until the bucket is full again (ROLLING) or the window ends (BUDGET)
    retry_after_s: float  # when refused: the earliest time the same request could pass


def rolling(
    tat: float, cost: float, limit: int, period_s: float, now: float
) -> tuple[Verdict, float]:
    """GCRA: `tat` is the theoretical time at which the bucket is full again.

    A request of `cost` passes if the bucket has room for it; capacity is `limit`, refilled at
    `limit / period_s`. Any window of W seconds admits at most limit * (1 + W / period_s).
    """
    interval = period_s / limit
    base = tat if tat > now else now
    new_tat = base + cost * interval
    over = new_tat - now - period_s
    if over > 1e-9:
        remaining = math.floor((period_s - (base - now)) / interval + 1e-9)
        never = cost > limit
        return Verdict(False, remaining, base - now, math.inf if never else over), tat
    remaining = math.floor((period_s - (new_tat - now)) / interval + 1e-9)
    return Verdict(True, remaining, new_tat - now, 0.0), new_tat


def rolling_adjust(tat: float, delta: float, limit: int, period_s: float, now: float) -> float:
    """Charge (or refund) `delta` units after the fact; usage reported by the upstream."""
    base = tat if tat > now else now
    adjusted = base + delta * (period_s / limit)
    return adjusted if adjusted > now else now


def budget(used: float, cost: float, limit: int, window_end: float, now: float) -> Verdict:
    if used + cost > limit:
        return Verdict(False, max(0, int(limit - used)), window_end - now, window_end - now)
    return Verdict(True, int(limit - used - cost), window_end - now, 0.0)


def budget_window(period_s: float, now: float) -> tuple[str, float]:
    """(window id, window end) of the UTC day (period 86400) or month (period 0) holding `now`."""
    moment = datetime.fromtimestamp(now, UTC)
    if period_s:
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return start.strftime("%Y%m%d"), start.timestamp() + 86400
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start.strftime("%Y%m"), following.timestamp()


def slots(held: int, limit: int) -> Verdict:
    if held >= limit:
        return Verdict(False, 0, 0.0, 1.0)
    return Verdict(True, limit - held - 1, 0.0, 0.0)
