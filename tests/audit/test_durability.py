"""A gateway killed with SIGKILL under load loses at most the records it had not yet written,
and once restarted its log verifies again."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx

from gateway.audit.verify import verify_log
from tests.audit.test_records import read_log
from tests.conftest import KEYS_ENV, policy_yaml
from tests.support.mock_upstream import MockUpstream
from tests.support.processes import AUTH, GatewayProcess

KEY = "durability-test-key"
CLIENTS = 6


def test_sigkill_under_load_loses_only_unwritten_records(
    upstream: MockUpstream, tmp_path: Path
) -> None:
    audit_dir = tmp_path / "audit"
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        policy_yaml(upstream.base_url) + f"audit:\n  dir: '{audit_dir}'\n  fsync: batch\n"
    )
    env = {**KEYS_ENV, "SLUICE_AUDIT_HMAC_KEY": KEY}
    gateway = GatewayProcess(policy, env)
    gateway.wait_healthy()
    answered: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    body = {"model": "gpt-echo", "messages": [{"role": "user", "content": "hi"}]}

    def client() -> None:
        with httpx.Client(base_url=gateway.url, headers=AUTH, timeout=5) as http:
            while not stop.is_set():
                try:
                    response = http.post("/v1/chat/completions", json=body)
                except httpx.TransportError:
                    return  # the gateway is gone
                with lock:
                    answered.append(response.headers["x-request-id"])

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while len(answered) < 300 and time.monotonic() < deadline:
        time.sleep(0.01)
    gateway.proc.send_signal(signal.SIGKILL)
    gateway.proc.wait(timeout=10)
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    gateway.stop()

    # A restart seals the segment the crash left open (cutting a half-written line).
    restarted = GatewayProcess(policy, env)
    restarted.wait_healthy()
    restarted.stop()
    report = verify_log(audit_dir, KEY.encode())
    assert report.ok, report.problem
    assert report.open_segment is None and report.hmac_checked

    records, _ = read_log(audit_dir)
    logged = {r["request_id"] for r in records}
    # Every record is of a request that was made; at most the ones in flight at the kill may
    # have been answered by the gateway without the client reading the answer.
    assert len(logged - set(answered)) <= CLIENTS
    lost = len(set(answered) - logged)
    # The bound (docs/audit.md): records still queued or in the batch being written when the
    # process died. With writes flushed batch by batch that is a small tail of the traffic.
    assert len(answered) >= 300
    assert lost <= 256, f"{lost} of {len(answered)} answered requests have no record"
    print(f"SIGKILL after {len(answered)} answered requests: {lost} records lost")
