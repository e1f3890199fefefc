"""Upstream failures: what is retried, what is relayed, and what the client is told."""

from __future__ import annotations

import httpx
import orjson
import pytest

from gateway.errors import RelayedError, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from gateway.upstream.status import error_for_status
from tests.conftest import ALICE_KEY, GatewayFactory, policy_yaml
from tests.support.mock_upstream import MockUpstream
from tests.support.servers import ServerThread, free_port

AUTH = {"authorization": f"Bearer {ALICE_KEY}"}


def chat(gateway: ServerThread, model: str, rid: str, stream: bool = False) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "x"}], "stream": stream}
    return httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json=body,
        timeout=20,
        headers={**AUTH, "x-request-id": rid},
    )


def error_of(response: httpx.Response) -> dict:
    return orjson.loads(response.content)["error"]


@pytest.mark.parametrize("stream", [False, True])
def test_503s_are_retried_until_the_upstream_recovers(
    gateway: ServerThread, upstream: MockUpstream, stream: bool
) -> None:
    response = chat(gateway, "gpt-flaky-503", f"flaky-{stream}", stream)
    assert response.status_code == 200
    assert upstream.record.attempts[f"flaky-{stream}"] == 3


def test_retries_stop_at_the_configured_attempts(
    gateway: ServerThread, upstream: MockUpstream
) -> None:
    response = chat(gateway, "gpt-always-503", "always")
    assert response.status_code == 503
    assert error_of(response)["code"] == "upstream_unavailable"
    assert "overloaded" in error_of(response)["message"]
    assert upstream.record.attempts["always"] == 3


def test_500_is_not_retried_and_becomes_502(gateway: ServerThread, upstream: MockUpstream) -> None:
    response = chat(gateway, "gpt-error-500", "e500")
    assert response.status_code == 502
    assert upstream.record.attempts["e500"] == 1
    assert "boom" in error_of(response)["message"]


def test_upstream_rejecting_our_credentials_is_a_502_that_says_so(gateway: ServerThread) -> None:
    response = chat(gateway, "gpt-auth-401", "a401")
    assert response.status_code == 502
    assert error_of(response)["code"] == "upstream_auth_failed"
    assert "api_key_env" in error_of(response)["message"]


def test_upstream_client_error_is_relayed_with_its_own_body(gateway: ServerThread) -> None:
    response = chat(gateway, "gpt-bad-400", "b400")
    assert response.status_code == 400
    assert error_of(response)["code"] == "context_length_exceeded"
    assert error_of(response)["param"] == "messages"


def test_refused_connection_is_retried_then_503(start_gateway: GatewayFactory) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    gateway = start_gateway(policy_yaml(dead))
    response = chat(gateway, "gpt-echo", "dead")
    assert response.status_code == 503
    assert "refused the connection" in error_of(response)["message"]
    ready = httpx.get(f"{gateway.url}/readyz", timeout=10)
    assert ready.status_code == 503
    assert ready.json()["upstreams"]["mock"].startswith("unreachable")


def test_silent_upstream_is_a_504_naming_the_setting(
    upstream: MockUpstream, start_gateway: GatewayFactory
) -> None:
    gateway = start_gateway(policy_yaml(upstream.base_url, read_s=0.3))
    response = chat(gateway, "gpt-slow-3", "slow")
    assert response.status_code == 504
    assert "timeouts.read_s" in error_of(response)["message"]


def test_total_timeout_bounds_the_whole_request(
    upstream: MockUpstream, start_gateway: GatewayFactory
) -> None:
    text = policy_yaml(upstream.base_url).replace("total_s: 10", "total_s: 0.3")
    gateway = start_gateway(text)
    response = chat(gateway, "gpt-slow-3", "total")
    assert response.status_code == 504
    assert "timeouts.total_s" in error_of(response)["message"]


def test_upstream_key_is_sent_as_bearer(
    upstream: MockUpstream, start_gateway: GatewayFactory
) -> None:
    text = policy_yaml(upstream.base_url).replace(
        "    kind: openai\n", "    kind: openai\n    api_key_env: UPSTREAM_KEY\n", 1
    )
    gateway = start_gateway(text, env={"UPSTREAM_KEY": "sk-upstream-secret"})
    assert chat(gateway, "gpt-echo", "keyed").status_code == 200
    assert upstream.record.headers[-1]["authorization"] == "Bearer sk-upstream-secret"


@pytest.mark.parametrize(
    ("status", "body", "kind", "client_status"),
    [
        (422, b"plain text complaint", RelayedError, 422),
        (429, b'{"error": {"message": "slow down", "type": "rate_limit"}}', RelayedError, 429),
        (500, b"<html>oops</html>", UpstreamError, 502),
        (503, b"", UpstreamUnavailable, 503),
        (504, b"gateway timeout", UpstreamTimeout, 504),
        (403, b"{}", UpstreamError, 502),
    ],
)
def test_error_for_status_maps_each_upstream_status(
    status: int, body: bytes, kind: type, client_status: int
) -> None:
    error = error_for_status("up", status, body, retry_after="7")
    assert isinstance(error, kind)
    assert error.status_code == client_status
    rendered = orjson.loads(error.body())
    assert isinstance(rendered["error"]["message"], str) and rendered["error"]["message"]
    if status == 429:
        assert error.headers == {"retry-after": "7"}
