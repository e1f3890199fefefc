"""Three gateway processes sharing one Redis enforce one set of limits between them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import KEYS_ENV, policy_yaml
from tests.ratelimit.conftest import REDIS_URL
from tests.support.mock_upstream import MockUpstream
from tests.support.processes import AUTH, GatewayProcess

REPLICAS = 3
CLIENTS_PER_REPLICA = 4
DRIVE_S = 3.0


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[callable]:
    started: list[GatewayProcess] = []

    def start(policy: str) -> list[GatewayProcess]:
        path = tmp_path / "policy.yaml"
        path.write_text(policy)
        started.extend(GatewayProcess(path, KEYS_ENV) for _ in range(REPLICAS))
        for process in started:
            process.wait_healthy()
        return started

    yield start
    for process in started:
        process.stop()


def drive(gateways: list[GatewayProcess], model: str) -> tuple[float, list[tuple[float, int]]]:
    """Every client sends back to back for DRIVE_S; returns (start, [(done_at, status)])."""
    results: list[tuple[float, int]] = []
    lock = threading.Lock()
    start = time.monotonic()
    stop_at = start + DRIVE_S
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}

    def client(url: str) -> None:
        with httpx.Client(base_url=url, headers=AUTH, timeout=10) as http:
            while time.monotonic() < stop_at:
                status = http.post("/v1/chat/completions", json=body).status_code
                with lock:
                    results.append((time.monotonic(), status))

    threads = [
        threading.Thread(target=client, args=(g.url,))
        for g in gateways
        for _ in range(CLIENTS_PER_REPLICA)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return start, results


def limits(prefix: str, section: str) -> str:
    return (
        f"ratelimit:\n  store: redis\n"
        f"  redis: {{url: '{REDIS_URL}', key_prefix: '{prefix}', timeout_ms: 1000}}\n"
        f"  limits:\n    key: {section}\n"
    )


def test_replicas_share_one_request_rate(
    upstream: MockUpstream, replicas, redis_prefix: str
) -> None:
    rate = 20
    policy = policy_yaml(upstream.base_url) + limits(
        redis_prefix, f"{{requests_per_second: {rate}}}"
    )
    start, results = drive(replicas(policy), "gpt-echo")
    statuses = {status for _, status in results}
    assert statuses == {200, 429}
    admitted = sorted(t for t, status in results if status == 200)
    elapsed = max(t for t, _ in results) - start
    # docs/ratelimit.md: any window of W seconds admits at most rate * (1 + W / 1 s).
    assert len(admitted) <= rate * (1 + elapsed)
    # ...and the shared limit is not stricter than the rate either.
    assert len(admitted) >= 0.9 * rate * elapsed
    # The same bound holds for every one-second window of the run (completions trail
    # admissions by an upstream round trip: a few requests of slack).
    j = 0
    for i, t in enumerate(admitted):
        while j < len(admitted) and admitted[j] < t + 1.0:
            j += 1
        assert j - i <= 2 * rate + 2


def test_replicas_never_exceed_a_shared_concurrency_limit(
    upstream: MockUpstream, replicas, redis_prefix: str
) -> None:
    policy = policy_yaml(upstream.base_url) + limits(redis_prefix, "{concurrent: 3}")
    _, results = drive(replicas(policy), "gpt-busy-0.2")
    assert {status for _, status in results} == {200, 429}
    # Measured where it matters: requests the upstream was answering at the same moment.
    assert upstream.record.max_in_flight == 3
    assert upstream.record.in_flight == 0
