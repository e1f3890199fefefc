"""/metrics after a known sequence of requests shows exactly the expected counts."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ALICE_KEY, GatewayFactory, policy_yaml
from tests.support.mock_upstream import MockUpstream

AUTH = {"authorization": f"Bearer {ALICE_KEY}"}


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def requests_total(samples: dict, **labels: str) -> float:
    want = {"endpoint": "chat.completions", **labels}
    return samples.get(("sluice_requests_total", tuple(sorted(want.items()))), 0.0)


def test_counts_after_a_known_sequence(
    upstream: MockUpstream, start_gateway: GatewayFactory
) -> None:
    text = policy_yaml(upstream.base_url) + (
        "ratelimit:\n  limits:\n    key: {requests_per_minute: 1000}\n"
    )
    server = start_gateway(text)
    url = f"{server.url}/v1/chat/completions"

    def chat(model: str, headers: dict = AUTH, **extra: object) -> int:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
        return httpx.post(url, json=body, headers=headers, timeout=10).status_code

    assert [chat("gpt-echo") for _ in range(3)] == [200] * 3
    assert chat("gpt-echo", stream=True) == 200
    assert chat("gpt-echo", headers={}) == 401
    assert chat("no-such-model-x7q") == 404
    assert chat("gpt-error-500") == 502
    samples = scrape(server.url)

    ok = {"model": "gpt-echo", "backend": "mock", "status": "200", "outcome": "ok"}
    assert requests_total(samples, **ok) == 4
    assert requests_total(samples, model="-", backend="-", status="401", outcome="error") == 1
    assert requests_total(samples, model="-", backend="-", status="404", outcome="error") == 1
    failed = {"model": "gpt-error-500", "backend": "mock", "status": "502", "outcome": "error"}
    assert requests_total(samples, **failed) == 1
    # Client-chosen strings never become label values.
    assert not any("no-such-model-x7q" in str(labels) for _, labels in samples)

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    # The three plain answers reported 5 + 3 tokens each; the stream reported none.
    assert value("sluice_tokens_total", model="gpt-echo", kind="prompt") == 15
    assert value("sluice_tokens_total", model="gpt-echo", kind="completion") == 9
    duration = ("sluice_request_duration_seconds_count", {"endpoint": "chat.completions"})
    assert value(duration[0], **duration[1], model="gpt-echo") == 4
    assert value("sluice_time_to_first_byte_seconds_count", model="gpt-echo") == 1
    # Admitted: everything that got past auth, validation and routing.
    assert value("sluice_ratelimit_decisions_total", decision="admitted") == 5
    assert value("sluice_ratelimit_store_failures_total") == 0


def test_audit_gauges_appear_with_an_audit_log(
    upstream: MockUpstream, start_gateway: GatewayFactory, tmp_path
) -> None:
    server = start_gateway(policy_yaml(upstream.base_url) + f"audit:\n  dir: '{tmp_path}'\n")
    samples = scrape(server.url)
    assert samples[("sluice_audit_queue_backlog", ())] == 0
    assert samples[("sluice_audit_dropped_total", ())] == 0


def test_upstream_errors_by_backend_and_reason(
    upstream: MockUpstream, start_gateway: GatewayFactory
) -> None:
    server = start_gateway(policy_yaml(upstream.base_url, read_s=1))
    url = f"{server.url}/v1/chat/completions"

    def chat(model: str, **extra: object) -> int:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
        return httpx.post(url, json=body, headers=AUTH, timeout=20).status_code

    assert chat("gpt-error-500") == 502
    assert chat("gpt-always-503") == 503
    assert chat("gpt-slow-3") == 504
    assert chat("gpt-die-midstream", stream=True) == 200
    assert chat("gpt-echo") == 200
    assert chat("gpt-bad-400") == 400  # the client's mistake, relayed: not an upstream failure
    samples = scrape(server.url)
    errors = {
        dict(labels)["reason"]: value
        for (name, labels), value in samples.items()
        if name == "sluice_upstream_errors_total"
    }
    assert errors == {
        "upstream_error": 1,
        "upstream_unavailable": 1,
        "upstream_timeout": 1,
        "mid_stream": 1,
    }
