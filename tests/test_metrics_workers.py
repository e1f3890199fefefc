"""`sluice serve --workers 2`: /metrics adds up every worker's counts whichever worker answers,
SIGHUP reloads each worker's policy, each worker writes its own audit chain, and what several
processes cannot share is refused."""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import Metric, values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from gateway.cli import main
from gateway.worker_metrics import SharedMetrics
from tests.conftest import policy_yaml
from tests.support.mock_upstream import MockUpstream
from tests.support.processes import wait_until
from tests.support.servers import free_port
from tests.support.workers import WORKERS, Samples, Workers, chat


def value(samples: Samples, name: str, labels: tuple[tuple[str, str], ...]) -> float:
    return samples.get((name, labels), 0.0)


def requests_sum(samples: Samples) -> float:
    return sum(v for (name, _), v in samples.items() if name == "sluice_requests_total")


def stale_metrics(folder: Path) -> Path:
    """A metrics folder left by an earlier run, holding 1,000 requests of a dead worker."""
    folder.mkdir()
    stale = MmapedDict(str(folder / "counter_1.db"))
    labels = ("endpoint", "model", "backend", "status", "outcome")
    values = ("chat.completions", "gpt-echo", "mock", "200", "ok")
    key = mmap_key("sluice_requests", "sluice_requests_total", labels, values, "old")
    stale.write_value(key, 1000.0, 0.0)
    stale.close()
    return folder


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstream]:
    upstream = MockUpstream().start()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def workers(mock: MockUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    root = tmp_path_factory.mktemp("workers")
    # A Redis store nobody answers: each worker counts its failures where only it can see them.
    ratelimit = (
        f"ratelimit:\n  store: redis\n  redis: {{url: 'redis://127.0.0.1:{free_port()}/0'}}\n"
        "  limits: {key: {requests_per_minute: 100000}}\n"
    )
    # Laid out like a Kubernetes ConfigMap: only SIGHUP (no file watch) sees the symlink swap.
    for version, models in [("v1", ""), ("v2", "  gpt-added: {backend: mock, model: echo}\n")]:
        (root / version).mkdir()
        (root / version / "policy.yaml").write_text(policy_yaml(mock.base_url) + models + ratelimit)
    (root / "current").symlink_to(root / "v1")
    stale = stale_metrics(root / "stale")
    gateway = Workers(
        root / "current" / "policy.yaml", root, {"PROMETHEUS_MULTIPROC_DIR": str(stale)}
    )
    try:
        gateway.wait_all_serving()
        yield gateway
    finally:
        gateway.stop()


def test_every_scrape_counts_the_requests_of_all_workers(workers: Workers) -> None:
    sent: Counter[str] = Counter()
    # Rounds until both workers have served some; the test then knows the exact total.
    for _ in range(20):
        for _ in range(4):
            assert chat(workers.url, "gpt-echo") == 200
            sent["plain"] += 1
        assert chat(workers.url, "gpt-echo", stream=True) == 200
        sent["stream"] += 1
        assert chat(workers.url, "gpt-error-500") == 502
        sent["failed"] += 1
        by_worker = workers.requests_by_worker()
        if len(by_worker) == WORKERS and all(by_worker.values()):
            break
    assert len(by_worker) == WORKERS, f"one worker served everything: {by_worker}"
    total = sum(sent.values())
    assert sum(by_worker.values()) == total

    # Read from each worker when Prometheus scrapes, and copied to the shared files every
    # second: the answering worker's are current, another's at most a second old.
    failures = ("sluice_ratelimit_store_failures_total", ())
    wait_until(lambda: workers.scrape().get(failures) == total, "all store failures show")

    ok = (("backend", "mock"), ("endpoint", "chat.completions"), ("model", "gpt-echo"))
    failed = (("backend", "mock"), ("endpoint", "chat.completions"), ("model", "gpt-error-500"))
    for _ in range(6):
        samples = workers.scrape()

        # Exactly what was sent: every worker's share, and nothing from the stale folder.
        assert requests_sum(samples) == total
        assert value(
            samples, "sluice_requests_total", (*ok, ("outcome", "ok"), ("status", "200"))
        ) == (sent["plain"] + sent["stream"])
        assert (
            value(
                samples, "sluice_requests_total", (*failed, ("outcome", "error"), ("status", "502"))
            )
            == sent["failed"]
        )
        durations = sum(
            v for (name, _), v in samples.items() if name == "sluice_request_duration_seconds_count"
        )
        assert durations == total
        inf = (("endpoint", "chat.completions"), ("le", "+Inf"), ("model", "gpt-echo"))
        assert (
            value(samples, "sluice_request_duration_seconds_bucket", inf)
            == sent["plain"] + sent["stream"]
        )
        ttft = (("model", "gpt-echo"),)
        assert value(samples, "sluice_time_to_first_byte_seconds_count", ttft) == sent["stream"]
        # The mock reports 5 prompt + 3 completion tokens per plain answer, none on streams.
        prompt = (("kind", "prompt"), ("model", "gpt-echo"))
        assert value(samples, "sluice_tokens_total", prompt) == 5 * sent["plain"]
        errors = (("backend", "mock"), ("reason", "upstream_error"))
        assert value(samples, "sluice_upstream_errors_total", errors) == sent["failed"]
        assert value(samples, "sluice_workers", ()) == WORKERS
        assert value(samples, *failures) == total
        store_failed = (("decision", "store_failed"),)
        assert value(samples, "sluice_ratelimit_decisions_total", store_failed) == total


def test_sighup_reloads_the_policy_in_every_worker(workers: Workers) -> None:
    current = workers.log.parent / "current"
    replacement = current.with_name(".current.new")
    os.symlink(workers.log.parent / "v2", replacement)
    os.replace(replacement, current)
    workers.proc.send_signal(signal.SIGHUP)

    wait_until(
        lambda: workers.stderr.count("(SIGHUP)") >= WORKERS,
        "every worker logged its reload",
    )
    # Each worker swapped the policy in place (uvicorn alone would have replaced the workers,
    # which log no reload).
    assert workers.stderr.count("policy reloaded from") == WORKERS, workers.stderr
    for _ in range(6):
        assert "gpt-added" in workers.models()
    assert workers.scrape()[("sluice_workers", ())] == WORKERS


def test_a_killed_worker_is_replaced_and_its_counts_stay(workers: Workers) -> None:
    for _ in range(4):
        assert chat(workers.url, "gpt-echo") == 200
    before = requests_sum(workers.scrape())
    by_worker = workers.requests_by_worker()
    victim = max(workers.live_pids(), key=lambda pid: by_worker[str(pid)])
    assert by_worker[str(victim)] > 0

    os.kill(victim, signal.SIGKILL)

    def replaced() -> bool:
        pids = workers.live_pids()
        return len(pids) == WORKERS and victim not in pids

    wait_until(replaced, "the supervisor replaced the killed worker", timeout=30)
    wait_until(lambda: workers.scrape()[("sluice_workers", ())] == WORKERS, "both serve")
    # The dead worker's requests still count: totals never go back.
    assert requests_sum(workers.scrape()) == before


class FakeLive(Collector):
    """What a worker's scrape-time collectors report."""

    def __init__(self) -> None:
        self.backlog = 3.0
        self.failures = 5.0
        self.circuits = {"a": 2.0}

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("sluice_audit_queue_backlog", "Backlog.", value=self.backlog)
        yield CounterMetricFamily("sluice_ratelimit_store_failures", "F.", value=self.failures)
        circuits = GaugeMetricFamily("sluice_circuit_state", "State.", labels=["backend"])
        for backend, state in self.circuits.items():
            circuits.add_metric([backend], state)
        yield circuits


def test_live_values_are_mirrored_as_gauges_and_counter_increments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a worker process gets from PROMETHEUS_MULTIPROC_DIR at import, for this test only.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue())
    live = FakeLive()
    shared = SharedMetrics(str(tmp_path), [live])
    pid = str(os.getpid())

    def read() -> Samples:
        text = shared.exposition().decode()
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    first = read()
    assert first[("sluice_audit_queue_backlog", ())] == 3
    assert first[("sluice_ratelimit_store_failures_total", ())] == 5
    assert first[("sluice_circuit_state", (("backend", "a"), ("pid", pid)))] == 2
    assert first[("sluice_workers", ())] == 1

    # A reload built a new limiter (its count restarts) and removed backend a.
    live.backlog, live.failures, live.circuits = 0.0, 2.0, {"b": 1.0}
    second = read()
    assert second[("sluice_audit_queue_backlog", ())] == 0
    assert second[("sluice_ratelimit_store_failures_total", ())] == 7
    assert second[("sluice_circuit_state", (("backend", "a"), ("pid", pid)))] == 0
    assert second[("sluice_circuit_state", (("backend", "b"), ("pid", pid)))] == 1


BUILTIN_POLICY = """
server: {host: 127.0.0.1, port: 8080}
auth: {mode: none}
backends:
  engine: {kind: builtin}
models:
  smol: {backend: engine}
ratelimit: {limits: {key: {requests_per_minute: 10}}}
audit: {dir: AUDIT_DIR}
"""


def test_what_workers_cannot_share_is_refused_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "policy.yaml"
    config.write_text(BUILTIN_POLICY.replace("AUDIT_DIR", str(tmp_path / "audit")))
    assert main(["serve", "--config", str(config), "--workers", "2"]) == 2
    stderr = capsys.readouterr().err
    assert f"{config} cannot run with --workers 2:" in stderr
    assert "backends engine: a `kind: builtin` engine" in stderr
    assert "sluice backend serve" in stderr
    assert "ratelimit.store: memory" in stderr
    assert "audit" not in stderr  # each worker writes its own chain
    assert not (tmp_path / "audit").exists()


def test_workers_must_be_at_least_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--workers", "0"])
    assert exited.value.code == 2
    assert "--workers: '0' is not a whole number of at least 1" in capsys.readouterr().err


# Runs last in this module: it stops the gateway the tests above share.
def test_stopping_ends_every_worker_and_removes_the_metrics_folder(workers: Workers) -> None:
    folder = workers.metrics_dir()
    assert list(folder.glob("counter_*.db"))
    assert workers.stop() == 0, workers.stderr
    assert not folder.exists()
