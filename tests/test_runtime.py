"""A reload keeps an upstream's pooled client only when nothing about it changed, its key too."""

from __future__ import annotations

from gateway.config.loader import parse_policy
from gateway.runtime import Runtime
from tests.conftest import KEYS_ENV, policy_yaml

KEYED = policy_yaml("http://127.0.0.1:9/v1").replace(
    "    kind: openai\n", "    kind: openai\n    api_key_env: UPSTREAM_KEY\n", 1
)


def runtime(env: dict[str, str], previous: Runtime | None = None) -> Runtime:
    return Runtime(parse_policy(KEYED, "p.yaml", env), env, previous)


def test_same_backend_same_key_keeps_the_client() -> None:
    env = {**KEYS_ENV, "UPSTREAM_KEY": "sk-one"}
    before = runtime(env)
    after = runtime(env, before)
    assert after.upstreams["mock"] is before.upstreams["mock"]
    assert before.retired(after) == []


def test_a_rotated_upstream_key_gets_a_new_client() -> None:
    before = runtime({**KEYS_ENV, "UPSTREAM_KEY": "sk-one"})
    after = runtime({**KEYS_ENV, "UPSTREAM_KEY": "sk-two"}, before)
    assert after.upstreams["mock"] is not before.upstreams["mock"]
    assert after.upstreams["mock"].api_key == "sk-two"
    assert before.retired(after) == [before.upstreams["mock"]]
