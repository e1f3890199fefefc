"""Rate limits through the gateway: 429s, headers on every response, token reconciliation,
slots released on every path, and a Redis that goes away and comes back."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator

import httpx
import openai
import orjson
import pytest

from gateway.service import Gateway
from tests.conftest import ALICE_KEY, GatewayFactory, policy_yaml
from tests.ratelimit.conftest import REDIS_URL
from tests.support.mock_upstream import MockUpstream
from tests.support.servers import ServerThread, free_port

AUTH = {"authorization": f"Bearer {ALICE_KEY}"}


def limited(upstream: MockUpstream, section: str, read_s: float = 5) -> str:
    return policy_yaml(upstream.base_url, read_s=read_s) + "ratelimit:\n" + section


def chat(server: ServerThread, model: str = "gpt-echo", **extra: object) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}], **extra}
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, headers=AUTH, timeout=10)


def gateway_of(server: ServerThread) -> Gateway:
    return server.app.state  # type: ignore[attr-defined,no-any-return]


def test_requests_over_the_limit_get_429_with_retry_after(
    upstream: MockUpstream, start_gateway: GatewayFactory
) -> None:
    server = start_gateway(limited(upstream, "  limits:\n    key: {requests_per_minute: 3}\n"))
    remaining = [chat(server).headers["x-ratelimit-remaining-requests"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    refused = chat(server)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
    assert "key 'alice' requests_per_minute" in error["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 20
    assert refused.headers["x-ratelimit-limit-requests"] == "3"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key=ALICE_KEY, max_retries=0)
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model="gpt-echo", messages=[{"role": "user", "content": "x"}])
    # The refused requests never reached the upstream.
    assert len(upstream.record.seen) == 3


def test_every_response_carries_the_headers(
    upstream: MockUpstream, start_gateway: GatewayFactory
) -> None:
    section = "  limits:\n    key: {requests_per_minute: 100, tokens_per_minute: 100000}\n"
    server = start_gateway(limited(upstream, section))
    plain = chat(server)
    streamed = chat(server, stream=True)
    failed = chat(server, "gpt-error-500")
    for response in (plain, streamed, failed):
        for name in ("limit", "remaining", "reset"):
            assert f"x-ratelimit-{name}-requests" in response.headers
            assert f"x-ratelimit-{name}-tokens" in response.headers
    assert failed.status_code == 502
    assert plain.headers["x-ratelimit-limit-tokens"] == "100000"
    assert int(plain.headers["x-ratelimit-remaining-tokens"]) < 100000


def stream_text(response: httpx.Response) -> tuple[list[dict], bytes]:
    events = [
        orjson.loads(block[6:])
        for block in response.content.split(b"\n\n")
        if block.startswith(b"data: {")
    ]
    return events, response.content


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_streamed_answers_are_charged_their_real_usage(
    upstream: MockUpstream, start_gateway: GatewayFactory, redis_prefix: str, store: str
) -> None:
    section = (
        f"  store: {store}\n  redis: {{url: '{REDIS_URL}', key_prefix: '{redis_prefix}'}}\n"
        "  limits:\n    key: {tokens_per_minute: 600}\n"
    )
    server = start_gateway(limited(upstream, section))
    # A short prompt (estimated at 8 tokens) and a 500-token answer.
    first = chat(server, "gpt-long-500", stream=True)
    assert first.status_code == 200
    events, raw = stream_text(first)
    # The gateway asked the upstream for usage; the client did not, so it never sees it.
    assert upstream.record.seen[-1]["stream_options"] == {"include_usage": True}
    assert all(e.get("usage") is None for e in events) and raw.endswith(b"data: [DONE]\n\n")
    # The next request already sees the 505 tokens charged: 600 - 505 - its own 8 left.
    second = chat(server, "gpt-long-500", stream=True)
    assert second.status_code == 200
    assert int(second.headers["x-ratelimit-remaining-tokens"]) <= 95
    # Charged at estimates only (8 each) this one would pass too.
    third = chat(server, "gpt-long-500", stream=True)
    assert third.status_code == 429
    assert "tokens_per_minute" in third.json()["error"]["message"]


def test_client_asking_for_usage_still_gets_it(
    upstream: MockUpstream, start_gateway: GatewayFactory
) -> None:
    server = start_gateway(limited(upstream, "  limits:\n    key: {tokens_per_minute: 100000}\n"))
    response = chat(server, stream=True, stream_options={"include_usage": True})
    events, _ = stream_text(response)
    assert events[-1]["usage"]["completion_tokens"] == 2


def test_a_slot_is_freed_when_the_client_drops_mid_stream(
    upstream: MockUpstream, start_gateway: GatewayFactory
) -> None:
    server = start_gateway(limited(upstream, "  limits:\n    key: {concurrent: 1}\n", read_s=60))
    body = {"model": "gpt-hold", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    with (
        httpx.Client(timeout=10) as http,
        http.stream("POST", f"{server.url}/v1/chat/completions", json=body, headers=AUTH) as held,
    ):
        assert held.status_code == 200
        # Keep the iterator: dropping a half-read httpx iterator closes the connection.
        chunks = held.iter_raw()
        next(chunks)
        busy = chat(server)
        assert busy.status_code == 429 and "concurrent" in busy.json()["error"]["message"]
    assert upstream.record.stream_cancelled.wait(timeout=5)
    deadline = time.monotonic() + 5
    while (status := chat(server).status_code) == 429 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status == 200


def test_slots_are_freed_after_errors_and_timeouts(
    upstream: MockUpstream, start_gateway: GatewayFactory
) -> None:
    server = start_gateway(limited(upstream, "  limits:\n    key: {concurrent: 1}\n", read_s=0.3))
    assert [chat(server, "gpt-error-500").status_code for _ in range(3)] == [502] * 3
    assert [chat(server, "gpt-slow-3").status_code for _ in range(2)] == [504] * 2
    assert chat(server).status_code == 200


class RedisServer:
    """A redis-server of the test's own, on its own port, that the test can kill and restart."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with httpx.Client() as _:
                    import socket

                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                        s.sendall(b"PING\r\n")
                        if s.recv(16).startswith(b"+PONG"):
                            return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer()
    server.start()
    yield server
    server.kill()


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_redis_going_away_fails_as_configured_and_recovers(
    upstream: MockUpstream,
    start_gateway: GatewayFactory,
    own_redis: RedisServer,
    mode: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    section = (
        f"  store: redis\n  on_store_error: {mode}\n"
        f"  redis: {{url: '{own_redis.url}', timeout_ms: 200}}\n"
        "  limits:\n    key: {requests_per_minute: 2}\n"
    )
    server = start_gateway(limited(upstream, section))
    limiter = gateway_of(server).runtime.limiter
    assert limiter is not None
    assert [chat(server).status_code for _ in range(3)] == [200, 200, 429]

    own_redis.kill()
    during = [chat(server) for _ in range(3)]
    if mode == "open":
        assert [r.status_code for r in during] == [200] * 3
        assert "x-ratelimit-remaining-requests" not in during[0].headers
    else:
        assert [r.status_code for r in during] == [503] * 3
        assert during[0].json()["error"]["code"] == "rate_limit_store_unavailable"
        assert during[0].headers["retry-after"] == "1"
    assert limiter.store_failures >= 3

    own_redis.start()  # empty: the counts start again, no gateway restart
    deadline = time.monotonic() + 10
    while (first := chat(server)).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert first.status_code == 200
    assert "x-ratelimit-remaining-requests" in first.headers
    statuses = [chat(server).status_code for _ in range(2)]
    assert statuses == [200, 429]
    # Logged once when it went away and once when it came back, not once per request.
    messages = [r.getMessage() for r in caplog.records if r.name == "sluicegate.ratelimit"]
    assert sum("store unavailable" in m for m in messages) == 1, messages
    assert sum("limits are enforced" in m for m in messages) == 1, messages
