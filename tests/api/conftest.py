"""Module-wide gateway and client for the tests that send many independent requests.

One gateway (built exactly like tests/conftest.py's `gateway` fixture) and one client serve a
whole module, rather than two servers per case.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from gateway.app import create_app
from gateway.config.loader import parse_policy
from tests.conftest import KEYS_ENV, policy_yaml
from tests.support.mock_upstream import MockUpstream
from tests.support.servers import ServerThread

# assert_client_answer's asserts are these tests' asserts: have pytest explain them when they fail
# (it can only rewrite a module imported after this call).
pytest.register_assert_rewrite("tests.support.fuzz_target")

from tests.support.fuzz_target import AUTH  # noqa: E402


@pytest.fixture(scope="module")
def shared_gateway() -> Iterator[ServerThread]:
    upstream = MockUpstream().start()
    env = dict(KEYS_ENV)
    policy = parse_policy(policy_yaml(upstream.base_url), "test-policy.yaml", env)
    server = ServerThread(create_app(policy, env=env)).start()
    yield server
    server.stop()
    upstream.stop()


@pytest.fixture(scope="module")
def client(shared_gateway: ServerThread) -> Iterator[httpx.Client]:
    headers = {**AUTH, "content-type": "application/json"}
    with httpx.Client(base_url=shared_gateway.url, headers=headers, timeout=15) as client:
        yield client
