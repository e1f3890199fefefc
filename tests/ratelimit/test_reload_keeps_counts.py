"""A policy reload keeps the counts: changing a limit does not hand everyone a fresh bucket."""

from __future__ import annotations

from gateway.config.loader import parse_policy
from gateway.runtime import Runtime
from tests.conftest import KEYS_ENV, policy_yaml


def policy(section: str):
    text = policy_yaml("http://127.0.0.1:9/v1") + "ratelimit:\n" + section
    return parse_policy(text, "p.yaml", KEYS_ENV)


def test_a_changed_limit_keeps_the_memory_stores_counters() -> None:
    before = Runtime(policy("  limits:\n    key: {requests_per_minute: 5}\n"), KEYS_ENV)
    after = Runtime(policy("  limits:\n    key: {requests_per_minute: 9}\n"), KEYS_ENV, before)
    assert before.limiter is not None and after.limiter is not None
    assert after.limiter is not before.limiter
    assert after.limiter.store is before.limiter.store
    assert before.retired(after) == [
        u for u in before.upstreams.values() if u not in after.upstreams.values()
    ]


def test_an_unchanged_section_keeps_the_limiter_and_dropping_it_retires_the_store() -> None:
    section = "  limits:\n    key: {requests_per_minute: 5}\n"
    before = Runtime(policy(section), KEYS_ENV)
    same = Runtime(policy(section), KEYS_ENV, before)
    assert same.limiter is before.limiter
    gone = Runtime(
        parse_policy(policy_yaml("http://127.0.0.1:9/v1"), "p.yaml", KEYS_ENV), KEYS_ENV, same
    )
    assert gone.limiter is None
    assert same.limiter.store in same.retired(gone)


def test_moving_to_another_store_starts_a_new_one() -> None:
    before = Runtime(policy("  limits:\n    key: {requests_per_minute: 5}\n"), KEYS_ENV)
    after = Runtime(
        policy("  store: redis\n  limits:\n    key: {requests_per_minute: 5}\n"), KEYS_ENV, before
    )
    assert after.limiter is not None and before.limiter is not None
    assert after.limiter.store is not before.limiter.store
    assert before.limiter.store in before.retired(after)
