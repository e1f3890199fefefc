"""Fallback chains, retries and circuit breakers end to end: the real openai SDK through the
gateway to mock upstreams on loopback that fail in scripted ways."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import openai
import pytest

from tests.conftest import ALICE_KEY, GatewayFactory
from tests.routing.conftest import MESSAGES, backend, sdk, streamed_text
from tests.support.mock_upstream import MockUpstream
from tests.support.processes import wait_until
from tests.support.servers import ServerThread, free_port

AUTH = {"authorization": f"Bearer {ALICE_KEY}"}


def chain_policy(primary: str, spare: str) -> str:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    fallback = "fallback: [{backend: spare, model: echo}]"
    return f"""
auth:
  keys: [{{id: alice, tenant: acme, key_env: ALICE_KEY}}]
backends:
  primary:
{backend(primary)}
  dead:
{backend(dead)}
  spare:
{backend(spare)}
models:
  m-500: {{backend: primary, model: error-500, {fallback}}}
  m-slow: {{backend: primary, model: 'slow:1.5', {fallback}}}
  m-refused: {{backend: dead, model: echo, {fallback}}}
  m-midstream: {{backend: primary, model: die-midstream, {fallback}}}
  m-400: {{backend: primary, model: bad-400, {fallback}}}
  m-flaky: {{backend: primary, model: flaky-503, {fallback}}}
"""


@pytest.fixture
def chain(
    mocks: Callable[[], MockUpstream], start_gateway: GatewayFactory
) -> tuple[ServerThread, MockUpstream, MockUpstream]:
    primary, spare = mocks(), mocks()
    return start_gateway(chain_policy(primary.base_url, spare.base_url)), primary, spare


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(
    ("model", "primary_attempts"),
    [("m-500", 1), ("m-slow", 1), ("m-refused", 0)],
    ids=["http-500", "timeout", "refused"],
)
def test_a_failing_primary_falls_back(
    chain: tuple[ServerThread, MockUpstream, MockUpstream],
    model: str,
    primary_attempts: int,
    stream: bool,
) -> None:
    gateway, primary, spare = chain
    rid = f"{model}-{stream}"
    headers = {"x-request-id": rid}
    client = sdk(gateway)
    if stream:
        chunks = client.chat.completions.create(
            model=model, messages=MESSAGES, stream=True, extra_headers=headers
        )
        assert streamed_text(chunks) == "echo: hi"
    else:
        answer = client.chat.completions.create(
            model=model, messages=MESSAGES, extra_headers=headers
        )
        assert answer.choices[0].message.content == "echo: hi"
    assert primary.record.attempts[rid] == primary_attempts
    assert spare.record.attempts[rid] == 1
    assert spare.record.seen[-1]["model"] == "echo"


def test_retries_on_the_same_backend_come_before_the_fallback(
    chain: tuple[ServerThread, MockUpstream, MockUpstream],
) -> None:
    gateway, primary, spare = chain
    # flaky-503 answers 503 twice; two attempts (the policy's) are not enough: the spare answers.
    answer = sdk(gateway).chat.completions.create(
        model="m-flaky", messages=MESSAGES, extra_headers={"x-request-id": "flaky"}
    )
    assert answer.choices[0].message.content == "echo: hi"
    assert primary.record.attempts["flaky"] == 2
    assert spare.record.attempts["flaky"] == 1


def test_no_fallback_once_the_stream_has_started(
    chain: tuple[ServerThread, MockUpstream, MockUpstream],
) -> None:
    gateway, primary, spare = chain
    chunks = sdk(gateway).chat.completions.create(
        model="m-midstream", messages=MESSAGES, stream=True, extra_headers={"x-request-id": "mid"}
    )
    received = []
    with pytest.raises(openai.APIError):
        for chunk in chunks:
            received.append(chunk)
    assert received  # the client had the first bytes before the upstream died
    assert primary.record.attempts["mid"] == 1
    assert spare.record.attempts["mid"] == 0


def test_a_client_mistake_is_not_sent_down_the_chain(
    chain: tuple[ServerThread, MockUpstream, MockUpstream],
) -> None:
    gateway, _, spare = chain
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(gateway).chat.completions.create(
            model="m-400", messages=MESSAGES, extra_headers={"x-request-id": "b400"}
        )
    assert caught.value.code == "context_length_exceeded"
    assert spare.record.attempts["b400"] == 0


def breaker_policy(primary: str, spare: str) -> str:
    # Long enough that a busy test machine cannot outrun it, short enough to wait out.
    breaker = "    circuit_breaker: {failures: 2, cooldown_s: 3}\n"
    return f"""
auth:
  keys: [{{id: alice, tenant: acme, key_env: ALICE_KEY}}]
backends:
  flaky:
{backend(primary, breaker)}
  spare:
{backend(spare)}
models:
  broken: {{backend: flaky, model: error-500}}
  rescued: {{backend: flaky, model: error-500, fallback: [{{backend: spare, model: echo}}]}}
  other: {{backend: spare, model: echo}}
"""


def circuit(gateway: ServerThread) -> str:
    ready = httpx.get(f"{gateway.url}/readyz", timeout=5).json()
    return ready["replicas"]["flaky"][0]["circuit"]


def post(gateway: ServerThread, model: str, rid: str) -> httpx.Response:
    body = {"model": model, "messages": MESSAGES}
    return httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json=body,
        headers={**AUTH, "x-request-id": rid},
        timeout=10,
    )


def test_the_circuit_opens_after_n_failures_and_half_opens_after_the_cool_down(
    mocks: Callable[[], MockUpstream], start_gateway: GatewayFactory
) -> None:
    primary, spare = mocks(), mocks()
    gateway = start_gateway(breaker_policy(primary.base_url, spare.base_url))
    assert circuit(gateway) == "closed"
    for n in range(2):
        assert post(gateway, "broken", f"fail-{n}").status_code == 502
    assert circuit(gateway) == "open"
    # Open: the upstream is not even tried; the client is told when to come back.
    refused = post(gateway, "broken", "refused")
    assert refused.status_code == 503
    assert "circuit open" in refused.json()["error"]["message"]
    assert int(refused.headers["retry-after"]) >= 1
    assert primary.record.attempts["refused"] == 0
    # With a fallback, requests go straight to it while the circuit is open.
    assert post(gateway, "rescued", "rescued").json()["choices"][0]["message"]["content"] == (
        "echo: hi"
    )
    assert primary.record.attempts["rescued"] == 0
    ready = httpx.get(f"{gateway.url}/readyz", timeout=5)
    assert ready.json()["upstreams"]["flaky"].startswith("circuit open")
    assert ready.json()["models"]["broken"] == "no usable backend"
    assert ready.status_code == 503

    wait_until(lambda: circuit(gateway) == "half-open", "the cool-down is over")
    # Half-open: one trial request reaches the upstream; it fails, so the circuit opens again.
    assert post(gateway, "broken", "trial").status_code == 502
    assert primary.record.attempts["trial"] == 1
    assert circuit(gateway) == "open"


def test_a_half_open_circuit_closes_when_the_trial_succeeds(
    mocks: Callable[[], MockUpstream], start_gateway: GatewayFactory
) -> None:
    primary, spare = mocks(), mocks()
    text = breaker_policy(primary.base_url, spare.base_url).replace(
        "  other: {backend: spare, model: echo}", "  healthy: {backend: flaky, model: echo}"
    )
    gateway = start_gateway(text)
    for n in range(2):
        post(gateway, "broken", f"f{n}")
    assert circuit(gateway) == "open"
    wait_until(lambda: circuit(gateway) == "half-open", "the cool-down is over")
    assert post(gateway, "healthy", "ok").status_code == 200
    assert circuit(gateway) == "closed"
    assert httpx.get(f"{gateway.url}/readyz", timeout=5).status_code == 200


def test_a_replica_failing_health_checks_is_taken_out_of_rotation(
    mocks: Callable[[], MockUpstream], start_gateway: GatewayFactory
) -> None:
    live = mocks()
    dead = f"http://127.0.0.1:{free_port()}/v1"
    # A refused connection fails a check at once; the live replica gets time to answer.
    check = "    health_check: {interval_s: 0.1, timeout_s: 3, unhealthy_after: 1}\n"
    text = f"""
auth:
  keys: [{{id: alice, tenant: acme, key_env: ALICE_KEY}}]
backends:
  pool:
    kind: openai
    replicas: [{{base_url: "{dead}"}}, {{base_url: "{live.base_url}"}}]
    balance: round_robin
    retries: {{attempts: 1}}
{check}
models:
  m: {{backend: pool, model: echo}}
"""
    gateway = start_gateway(text)

    def dead_is_out() -> bool:
        replicas = httpx.get(f"{gateway.url}/readyz", timeout=5).json()["replicas"]["pool"]
        return replicas[0]["health"] == "unhealthy"

    wait_until(dead_is_out, "the health check took the dead replica out")
    ready = httpx.get(f"{gateway.url}/readyz", timeout=5)
    assert ready.status_code == 200  # one healthy replica is enough
    assert ready.json()["replicas"]["pool"][0]["status"].startswith("unreachable")
    # One attempt per request and round robin: without the health check half would fail.
    for n in range(6):
        assert post(gateway, "m", f"r{n}").status_code == 200
    assert sum(live.record.attempts[f"r{n}"] for n in range(6)) == 6


def test_replicas_share_the_load(
    mocks: Callable[[], MockUpstream], start_gateway: GatewayFactory
) -> None:
    one, two = mocks(), mocks()
    text = f"""
auth:
  keys: [{{id: alice, tenant: acme, key_env: ALICE_KEY}}]
backends:
  pool:
    kind: openai
    replicas: [{{base_url: "{one.base_url}"}}, {{base_url: "{two.base_url}", weight: 3}}]
    balance: weighted
models:
  m: {{backend: pool, model: echo}}
"""
    gateway = start_gateway(text)
    for n in range(8):
        assert post(gateway, "m", f"w{n}").status_code == 200
    assert (len(one.record.seen), len(two.record.seen)) == (2, 6)


def test_a_spent_retry_budget_stops_retries(
    mocks: Callable[[], MockUpstream], start_gateway: GatewayFactory
) -> None:
    primary = mocks()
    text = f"""
auth:
  keys: [{{id: alice, tenant: acme, key_env: ALICE_KEY}}]
backends:
  stingy:
    kind: openai
    base_url: {primary.base_url}
    retries: {{attempts: 3, backoff_initial_s: 0.01, budget: {{ratio: 0.5, min_per_s: 0}}}}
models:
  m: {{backend: stingy, model: always-503}}
"""
    gateway = start_gateway(text)
    attempts = []
    for n in range(4):
        assert post(gateway, "m", f"b{n}").status_code == 503
        attempts.append(primary.record.attempts[f"b{n}"])
    # Half a retry per request: 4 requests earn 2 retries in all, not 2 each.
    assert sum(attempts) == 4 + 2, attempts
    metrics = httpx.get(f"{gateway.url}/metrics", timeout=5).text
    assert 'sluice_upstream_retries_total{backend="stingy"} 2.0' in metrics


def test_requests_in_flight_are_counted_back_down_whatever_their_end(
    mocks: Callable[[], MockUpstream], start_gateway: GatewayFactory
) -> None:
    one, two = mocks(), mocks()
    text = f"""
auth:
  keys: [{{id: alice, tenant: acme, key_env: ALICE_KEY}}]
backends:
  pool:
    kind: openai
    replicas: [{{base_url: "{one.base_url}"}}, {{base_url: "{two.base_url}"}}]
    balance: least_outstanding
    retries: {{attempts: 1}}
models:
  m: {{backend: pool, model: echo}}
  broken: {{backend: pool, model: die-midstream}}
"""
    gateway = start_gateway(text)
    client = sdk(gateway)
    for _ in range(3):
        client.chat.completions.create(model="m", messages=MESSAGES)
        assert (
            streamed_text(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
            == "echo: hi"
        )
        with pytest.raises(openai.APIError):
            streamed_text(
                client.chat.completions.create(model="broken", messages=MESSAGES, stream=True)
            )
    metrics = httpx.get(f"{gateway.url}/metrics", timeout=5).text
    in_flight = [line for line in metrics.splitlines() if line.startswith("sluice_upstream_in_")]
    assert len(in_flight) == 2 and all(line.endswith(" 0.0") for line in in_flight), in_flight
    # Both replicas took their share of the nine requests.
    assert len(one.record.seen) + len(two.record.seen) == 9
    assert len(one.record.seen) >= 3 and len(two.record.seen) >= 3
