"""Fixtures: a scriptable upstream and the gateway, both real HTTP servers on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from gateway.app import create_app
from gateway.config.loader import parse_policy
from tests.support.mock_upstream import MockUpstream
from tests.support.servers import ServerThread

ALICE_KEY = "sk-test-alice-0123456789"
BOB_KEY = "sk-test-bob-0123456789"
KEYS_ENV = {"ALICE_KEY": ALICE_KEY, "BOB_KEY": BOB_KEY}

MODELS = [
    "echo",
    "chars",
    "hold",
    "die-midstream",
    "no-done",
    "error-500",
    "auth-401",
    "bad-400",
    "flaky-503",
    "always-503",
    "slow:3",
    "busy:0.2",
    "long:500",
]


def policy_yaml(upstream_url: str, extra_backend: str = "", read_s: float = 5) -> str:
    models = "\n".join(
        f"  gpt-{m.replace(':', '-')}: {{backend: mock, model: '{m}'}}" for m in MODELS
    )
    return f"""
server: {{host: 127.0.0.1, port: 8080, max_body_bytes: 65536}}
auth:
  keys:
    - {{id: alice, tenant: acme, key_env: ALICE_KEY}}
    - {{id: bob, tenant: beta, key_env: BOB_KEY, models: [gpt-echo]}}
backends:
  mock:
    kind: openai
    base_url: {upstream_url}
    retries: {{attempts: 3, backoff_initial_s: 0.01, backoff_max_s: 0.05}}
    timeouts: {{connect_s: 2, read_s: {read_s}, total_s: 10}}
{extra_backend}
models:
{models}
"""


@pytest.fixture
def upstream() -> Iterator[MockUpstream]:
    mock = MockUpstream().start()
    yield mock
    mock.stop()


GatewayFactory = Callable[..., ServerThread]


@pytest.fixture
def start_gateway() -> Iterator[GatewayFactory]:
    started: list[ServerThread] = []

    def start(policy_text: str, env: dict[str, str] | None = None) -> ServerThread:
        env = {**KEYS_ENV, **(env or {})}
        policy = parse_policy(policy_text, "test-policy.yaml", env)
        server = ServerThread(create_app(policy, env=env)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def gateway(upstream: MockUpstream, start_gateway: GatewayFactory) -> ServerThread:
    return start_gateway(policy_yaml(upstream.base_url))
