"""A canary's weight on a fake clock: the schedule's ramp, weights set by hand, and the automatic
rollback when its error rate or p99 breaks a bound over the window."""

from __future__ import annotations

import pytest

from gateway.config.routing import Canary, Experiment
from gateway.errors import InvalidRequest
from gateway.routing.canary import CanaryState
from gateway.routing.experiment import Split

SCHEDULE = [
    {"after_s": 0, "weight": 5},
    {"after_s": 600, "weight": 25},
    {"after_s": 1200, "weight": 50},
]
ROLLBACK = {"max_error_rate": 0.1, "max_p99_ms": 1000, "min_requests": 20, "window_s": 60}


def canary(**rollback: float) -> CanaryState:
    config = Canary.model_validate(
        {"arm": "new", "schedule": SCHEDULE, "rollback": {**ROLLBACK, **rollback}}
    )
    return CanaryState(config, started_at=1000.0)


@pytest.mark.parametrize(
    ("elapsed_s", "weight"),
    [(0, 5), (599.9, 5), (600, 25), (1199, 25), (1200, 50), (99999, 50)],
)
def test_the_weight_ramps_on_the_schedule(elapsed_s: float, weight: float) -> None:
    assert canary().weight(1000.0 + elapsed_s) == weight


def test_a_weight_set_by_hand_holds_until_resumed() -> None:
    state = canary()
    state.set_weight(80)
    assert state.weight(1000.0) == 80 and state.weight(5000.0) == 80
    state.resume()
    assert state.weight(1700.0) == 25


def test_rolls_back_when_the_error_rate_breaks_its_bound() -> None:
    state = canary()
    now = 2000.0
    for i in range(19):  # below min_requests: no verdict, however bad
        assert state.observe(now + i * 0.1, ok=False, latency_ms=10) is None
    reason = state.observe(now + 2, ok=False, latency_ms=10)
    assert reason is not None and "error rate" in reason
    assert state.weight(now + 3) == 0 and state.rollbacks == 1


def test_stays_when_errors_are_under_the_bound() -> None:
    state = canary()
    for i in range(200):
        assert state.observe(2000.0 + i * 0.1, ok=i % 20 != 0, latency_ms=10) is None  # 5%
    assert state.rolled_back is None
    assert state.weight(2100.0) == 25


def test_rolls_back_when_p99_breaks_its_bound() -> None:
    state = canary()
    for i in range(98):
        state.observe(2000.0 + i * 0.01, ok=True, latency_ms=100)
    state.observe(2001.0, ok=True, latency_ms=5000)
    reason = state.observe(2002.5, ok=True, latency_ms=5000)  # 2 of 100 slow: p99 = 5000
    assert reason is not None and "p99" in reason


def test_old_requests_leave_the_window() -> None:
    state = canary()
    for i in range(30):
        state.observe(2000.0 + i * 0.01, ok=False, latency_ms=10)
    state.resume()  # the operator cleared the rollback
    for i in range(30):
        state.observe(2100.0 + i * 0.01, ok=True, latency_ms=10)
    stats = state.stats(2100.5)
    assert stats.requests == 30 and stats.errors == 0
    assert state.stats(2200.0).requests == 0


def experiment(canary: dict | None = None) -> Experiment:
    return Experiment.model_validate(
        {
            "model": "m",
            "arms": {"old": {"backend": "a", "weight": 1}, "new": {"backend": "b", "weight": 1}},
            "canary": canary,
        }
    )


def test_a_split_follows_its_canary_and_a_rollback_sends_everyone_to_control() -> None:
    config = experiment({"arm": "new", "schedule": SCHEDULE, "rollback": ROLLBACK})
    split = Split("exp", config, 0.0)
    keys = [f"u{n}".encode() for n in range(2000)]

    def in_canary(now: float) -> int:
        return sum(split.arms[split.assign(key, now)] == "new" for key in keys)

    assert 50 < in_canary(1.0) < 150  # ~5%
    assert 850 < in_canary(1300.0) < 1150  # ~50% after 1200 s
    for i in range(25):
        split.observe(1300.0 + i * 0.01, False, 10.0)
    assert in_canary(1301.0) == 0
    assert split.status(1301.0)["canary"]["rolled_back"]


def test_weights_by_hand_are_checked() -> None:
    plain = Split("exp", experiment(), 0.0)
    plain.set_weight("new", 3)
    assert plain.weights(0.0) == [1.0, 3.0]
    with pytest.raises(InvalidRequest, match="no arm 'nope'"):
        plain.set_weight("nope", 1)
    plain.set_weight("old", 0)
    with pytest.raises(InvalidRequest, match="above 0"):
        plain.set_weight("new", 0)
    assert plain.weights(0.0) == [0.0, 3.0]
    canary_split = Split("c", experiment({"arm": "new", "schedule": SCHEDULE}), 0.0)
    with pytest.raises(InvalidRequest, match="canary arm 'new'"):
        canary_split.set_weight("old", 10)
    with pytest.raises(InvalidRequest, match="0 to 100"):
        canary_split.set_weight("new", 120)
    canary_split.set_weight("new", 30)
    assert canary_split.weights(0.0) == [70.0, 30.0]
