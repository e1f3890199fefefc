"""The audit log under `sluice serve --workers N`: one hash chain per worker, kept by the worker
that replaces a crashed one, and `sluice audit verify` over all of them."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.audit.chains import read_log
from gateway.cli import main
from tests.conftest import policy_yaml
from tests.support.mock_upstream import MockUpstream
from tests.support.processes import wait_until
from tests.support.workers import WORKERS, Workers, chat


@pytest.fixture
def mock() -> Iterator[MockUpstream]:
    upstream = MockUpstream().start()
    yield upstream
    upstream.stop()


def audit_records(directory: Path) -> int:
    return sum(1 for _ in read_log(directory)) if directory.is_dir() else 0


def test_each_worker_writes_its_own_audit_chain_and_its_replacement_continues_it(
    mock: MockUpstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    audit = tmp_path / "audit"
    config = tmp_path / "policy.yaml"
    config.write_text(policy_yaml(mock.base_url) + f"audit: {{dir: '{audit}'}}\n")
    key = {"SLUICE_AUDIT_HMAC_KEY": "workers-audit-key"}
    gateway = Workers(config, tmp_path, key)
    sent = 0
    try:
        gateway.wait_all_serving()
        # Until both workers have records (each request is a new connection: either may get it).
        while sent < 40 and not (sent >= 6 and all(audit_records(audit / w) for w in ("w0", "w1"))):
            assert chat(gateway.url, "gpt-echo", stream=sent % 3 == 0) == 200
            sent += 1
        wait_until(lambda: audit_records(audit) == sent, "every request's record is written")
        assert all(audit_records(audit / w) for w in ("w0", "w1")), "one worker served all"

        # A crash: its open segment stays unsealed until a worker with its index starts.
        victim = next(iter(gateway.live_pids()))
        os.kill(victim, signal.SIGKILL)
        wait_until(
            lambda: len(gateway.live_pids()) == WORKERS and victim not in gateway.live_pids(),
            "the supervisor replaced the killed worker",
            timeout=30,
        )
        wait_until(lambda: "left open by an unclean stop" in gateway.stderr, "its chain recovered")
        for _ in range(6):
            assert chat(gateway.url, "gpt-echo") == 200
            sent += 1
    finally:
        assert gateway.stop() == 0, gateway.stderr

    # The replacement took the dead worker's folder: no third chain.
    assert sorted(path.name for path in audit.iterdir()) == ["w0", "w1"]
    monkeypatch.setenv("SLUICE_AUDIT_HMAC_KEY", key["SLUICE_AUDIT_HMAC_KEY"])
    assert main(["audit", "verify", "--dir", str(audit)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"OK: 2 chains, {sent} records verified\n"), out
    assert out.count("HMAC checked") == 2 and "open segment" not in out  # all sealed
    ids = [line.value["request_id"] for line in read_log(audit)]
    assert len(ids) == len(set(ids)) == sent
