"""The routing parts of a policy: today's one-backend shorthand still works, the new shapes
load, and every mistake names its file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config.loader import PolicyError, parse_policy
from gateway.config.schema import Policy
from gateway.runtime import Runtime

REPO = Path(__file__).resolve().parent.parent.parent

HEAD = """\
auth: none
backends:
  a: {kind: openai, base_url: "http://127.0.0.1:9/v1"}
  b:
    kind: openai
    replicas: [{base_url: "http://127.0.0.1:10/v1", weight: 2}, {base_url: "http://h:11/v1"}]
    balance: peak_ewma
    circuit_breaker: {failures: 2, cooldown_s: 5}
models:
"""


def load(models: str, tail: str = "") -> Policy:
    return parse_policy(HEAD + models + tail, "p.yaml", {})


def reject(models: str, tail: str = "") -> str:
    with pytest.raises(PolicyError) as caught:
        load(models, tail)
    return str(caught.value)


def test_the_one_backend_shorthand_still_works() -> None:
    policy = load("  m: {backend: a, model: up}\n")
    route = policy.models["m"]
    assert [(t.backend, t.model, t.weight) for t in route.targets()] == [("a", "up", 1)]


async def test_routes_fallbacks_shadows_and_experiments_load() -> None:
    policy = load(
        """\
  m:
    routes: [{backend: a, weight: 3}, {backend: b, model: x, weight: 1}]
    fallback: [{backend: b, model: y}]
    shadow: {backend: b, sample_rate: 0.5, timeout_s: 3, max_concurrency: 2}
  n: {backend: a}
""",
        """\
experiments:
  e:
    model: n
    sticky_by: header:X-Session-Id
    arms: {one: {backend: a}, two: {backend: b, model: z, weight: 3}}
""",
    )
    runtime = Runtime(policy, {})
    try:
        router = runtime.routes["m"].router
        assert [t.pool.name for t in router.targets()] == ["a", "b", "b", "b"]
        assert runtime.experiments["e"].sticky_by == "header:x-session-id"
        assert runtime.upstreams["b"].tracks_load
        assert runtime.upstreams["a"].single is not None  # the plain fast path
    finally:
        await runtime.aclose()


@pytest.mark.parametrize(
    ("models", "tail", "expected"),
    [
        (
            "  m: {backend: a, fallback: [{backend: nope}]}\n",
            "",
            "p.yaml:10: models.m.fallback[0].backend: unknown backend 'nope' (declared: a, b)",
        ),
        (
            "  m:\n    routes: [{backend: a}, {backend: zz}]\n",
            "",
            "p.yaml:11: models.m.routes[1].backend: unknown backend 'zz'",
        ),
        (
            "  m: {backend: a, shadow: {backend: gone}}\n",
            "",
            "p.yaml:10: models.m.shadow.backend: unknown backend 'gone'",
        ),
        (
            "  m: {backend: a, routes: [{backend: a}]}\n",
            "",
            "p.yaml:10: models.m.routes: give backend or routes, not both",
        ),
        (
            "  m: {model: x}\n",
            "",
            "p.yaml:10: models.m: needs backend (one target) or routes (weighted targets)",
        ),
        (
            "  m:\n    routes: [{backend: a, weight: 0}]\n",
            "",
            "p.yaml:11: models.m.routes: at least one route needs a weight above 0",
        ),
        (
            "  m: {backend: a}\n",
            "experiments:\n  e:\n    model: nope\n    arms: {x: {backend: a}, y: {backend: b}}\n",
            "p.yaml:13: experiments.e.model: unknown model 'nope'",
        ),
        (
            "  m: {backend: a}\n",
            "experiments:\n  e:\n    model: m\n    arms:\n      x: {backend: a}\n"
            "      y: {backend: c}\n",
            "p.yaml:16: experiments.e.arms.y.backend: unknown backend 'c'",
        ),
        (
            "  m: {backend: a}\n",
            "experiments:\n  e:\n    model: m\n    arms: {x: {backend: a}, y: {backend: b}}\n"
            "    canary:\n      arm: z\n      schedule: [{after_s: 0, weight: 5}]\n",
            "p.yaml:16: experiments.e.canary.arm: unknown arm 'z' (arms: x, y)",
        ),
        (
            "  m: {backend: a}\n",
            "experiments:\n  e:\n    model: m\n    arms: {x: {backend: a}, y: {backend: b}}\n"
            "    canary:\n      arm: y\n      schedule:\n        - {after_s: 60, weight: 5}\n"
            "        - {after_s: 10, weight: 50}\n",
            "p.yaml:19: experiments.e.canary.schedule[1].after_s: schedule steps must be in "
            "increasing after_s order",
        ),
        (
            "  m: {backend: a}\n",
            "experiments:\n  e:\n    model: m\n    sticky_by: cookie\n"
            "    arms: {x: {backend: a}, y: {backend: b}}\n",
            "p.yaml:14: experiments.e.sticky_by: sticky_by must be user, api_key or "
            "header:<header name>",
        ),
        (
            "  m: {backend: a}\n",
            "experiments:\n  e:\n    model: m\n    arms: {'x y': {backend: a}, y: {backend: b}}\n",
            "p.yaml:14: experiments.e.arms.x y: arm names are 1-64 letters",
        ),
        (
            "  m: {backend: a}\n",
            "experiments:\n"
            "  e: {model: m, arms: {x: {backend: a}, y: {backend: b}}}\n"
            "  f: {model: m, arms: {x: {backend: a}, y: {backend: b}}}\n",
            "p.yaml:13: experiments.f.model: model 'm' is already split by experiment 'e'",
        ),
        (
            "  m: {backend: a}\n",
            "experiments:\n  e:\n    model: m\n    arms: {x: {backend: a}, y: {backend: b}}\n"
            "    canary:\n      arm: y\n      schedule: [{after_s: 0, weight: 5}]\n"
            "      rollback: {min_requests: 5}\n",
            "p.yaml:18: experiments.e.canary.rollback: rollback needs "
            "max_error_rate, max_p99_ms or both",
        ),
    ],
)
def test_mistakes_name_their_line_and_key(models: str, tail: str, expected: str) -> None:
    assert expected in reject(models, tail)


def test_base_url_and_replicas_are_exclusive() -> None:
    text = HEAD.replace(
        'a: {kind: openai, base_url: "http://127.0.0.1:9/v1"}',
        'a: {kind: openai, base_url: "http://x/v1", replicas: [{base_url: "http://y/v1"}]}',
    )
    with pytest.raises(PolicyError, match=r"p.yaml:3: backends.a.replicas: give base_url or"):
        parse_policy(text + "  m: {backend: a}\n", "p.yaml", {})


def test_a_replica_url_must_be_http() -> None:
    text = HEAD.replace('"http://h:11/v1"', '"h:11/v1"')
    with pytest.raises(PolicyError, match=r"backends.b.replicas\[1\].base_url: .*http://"):
        parse_policy(text + "  m: {backend: a}\n", "p.yaml", {})


def test_the_worked_example_passes_policy_check(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("TEAM_A_KEY", "OPS_KEY", "OPENAI_API_KEY"):
        monkeypatch.setenv(name, "sk-test")
    assert main(["policy", "check", str(REPO / "policies" / "example-routing.yaml")]) == 0
    assert ": ok (3 backends, 3 models" in capsys.readouterr().out


async def test_a_reload_keeps_experiment_state_and_pools_that_did_not_change() -> None:
    tail = "experiments:\n  e:\n    model: n\n    arms: {one: {backend: a}, two: {backend: b}}\n"
    models = "  m: {backend: a}\n  n: {backend: a}\n"
    before = Runtime(load(models, tail), {})
    before.experiments["e"].set_weight("two", 5)
    same = Runtime(load(models + "  o: {backend: b}\n", tail), {}, before)
    changed = Runtime(
        load(models, tail.replace("two: {backend: b}", "two: {backend: a}")), {}, same
    )
    try:
        assert same.experiments["e"] is before.experiments["e"]
        assert same.upstreams["b"] is before.upstreams["b"]
        assert same.experiments["e"].weights(0.0) == [1.0, 5.0]
        assert changed.experiments["e"] is not same.experiments["e"]
        assert changed.experiments["e"].weights(0.0) == [1.0, 1.0]
    finally:
        await before.aclose()
        await changed.upstreams["b"].aclose()
