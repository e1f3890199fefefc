"""Fixtures for routing tests: several scriptable upstreams, and policies that route to them."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import openai
import pytest

from tests.conftest import ALICE_KEY
from tests.support.mock_upstream import MockUpstream
from tests.support.servers import ServerThread

MESSAGES = [{"role": "user", "content": "hi"}]
# Quick retries and timeouts: failures in these tests should cost milliseconds.
FAST = (
    "retries: {attempts: 2, backoff_initial_s: 0.01, backoff_max_s: 0.02}\n"
    "    timeouts: {connect_s: 1, read_s: 0.5, total_s: 5}"
)


@pytest.fixture
def mocks() -> Iterator[Callable[[], MockUpstream]]:
    """Starts as many mock upstreams as a test asks for."""
    started: list[MockUpstream] = []

    def start() -> MockUpstream:
        mock = MockUpstream().start()
        started.append(mock)
        return mock

    yield start
    for mock in started:
        mock.stop()


def backend(url: str, extra: str = "") -> str:
    """A `kind: openai` backend entry (indented for `backends:`) with the fast settings."""
    return f"    kind: openai\n    base_url: {url}\n    {FAST}\n{extra}"


def sdk(gateway: ServerThread, key: str = ALICE_KEY) -> openai.OpenAI:
    # A bounded timeout: a gateway that waited for something it should not fails, not hangs.
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, timeout=15)


def streamed_text(stream: openai.Stream) -> str:  # type: ignore[type-arg]
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
