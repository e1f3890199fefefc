"""Prometheus metrics: what the gateway counts, fed once per request from its Trail, and the
live gauges (audit backlog, rate-limit store failures, builtin engines) read at scrape time.

Names and labels are documented in docs/metrics.md; labels never carry client-chosen strings
(an unknown model is counted as "-"), so a client cannot blow up the series count.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, Metric, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from gateway.routing.metrics import RoutingCollector

if TYPE_CHECKING:
    from gateway.audit.trail import Trail
    from gateway.guards.base import Decision
    from gateway.service import Gateway
    from gateway.worker_metrics import SharedMetrics

GUARD_BUCKETS_S = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5)
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self, gateway: Gateway) -> None:
        self.registry = _Registry()
        r = self.registry
        # Set in each worker of `sluice serve --workers N`: /metrics then adds all of them up.
        self.shared: SharedMetrics | None = None
        self.requests = Counter(
            "sluice_requests",
            "Requests by endpoint, public model, backend, status and outcome.",
            ["endpoint", "model", "backend", "status", "outcome"],
            registry=r,
        )
        self.duration = Histogram(
            "sluice_request_duration_seconds",
            "Arrival to the last byte sent.",
            ["endpoint", "model"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.ttft = Histogram(
            "sluice_time_to_first_byte_seconds",
            "Streams: arrival to the first event sent.",
            ["model"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.tokens = Counter(
            "sluice_tokens",
            "Tokens the upstream reported, by model and kind (prompt, completion).",
            ["model", "kind"],
            registry=r,
        )
        self.ratelimit = Counter(
            "sluice_ratelimit_decisions",
            "Rate-limit decisions (admitted, refused, store_failed).",
            ["decision"],
            registry=r,
        )
        self.upstream_errors = Counter(
            "sluice_upstream_errors",
            "Upstream failures by backend and reason (upstream_error, upstream_unavailable, "
            "upstream_timeout, mid_stream).",
            ["backend", "reason"],
            registry=r,
        )
        self.guard_decisions = Counter(
            "sluice_guard_decisions",
            "Guard decisions by guard, stage (input, output) and action (allow, block, redact, "
            "mask, hash, pseudonymize, flag, error, ...).",
            ["guard", "stage", "action"],
            registry=r,
        )
        self.guard_duration = Histogram(
            "sluice_guard_duration_seconds",
            "Time one guard took to decide on a request or a whole answer.",
            ["guard", "stage"],
            buckets=GUARD_BUCKETS_S,
            registry=r,
        )
        self.arm_requests = Counter(
            "sluice_experiment_requests",
            "Requests assigned to an experiment arm, by outcome (as sluice_requests_total).",
            ["experiment", "arm", "outcome"],
            registry=r,
        )
        r.register(_LiveGauges(gateway))
        r.register(_EngineMetrics(gateway))
        r.register(RoutingCollector(gateway))

    def observe(self, trail: Trail, endpoint: str) -> None:
        """Count one finished request."""
        model = trail.model if trail.route is not None and trail.model else "-"
        backend = trail.route["backend"] if trail.route is not None else "-"
        self.requests.labels(endpoint, model, backend, str(trail.status), trail.outcome).inc()
        self.duration.labels(endpoint, model).observe(trail.elapsed_s())
        if trail.ttft_s is not None:
            self.ttft.labels(model).observe(trail.ttft_s)
        if trail.usage:
            for kind in ("prompt", "completion"):
                count = trail.usage.get(f"{kind}_tokens")
                if count:
                    self.tokens.labels(model, kind).inc(count)
        if trail.ratelimit is not None:
            self.ratelimit.labels(trail.ratelimit).inc()
        if trail.arm is not None:
            self.arm_requests.labels(trail.experiment, trail.arm, trail.outcome).inc()
        error = trail.error
        if error is not None and error["type"] == "upstream_error":
            self.upstream_errors.labels(backend, error["code"] or "upstream_error").inc()
        elif trail.outcome == "upstream_failed":
            self.upstream_errors.labels(backend, "mid_stream").inc()

    def guard(self, name: str, stage: str, decision: Decision, seconds: float) -> None:
        """Count one guard decision (the pipeline calls this for every guard it runs)."""
        self.guard_decisions.labels(name, stage, decision.action).inc()
        self.guard_duration.labels(name, stage).observe(seconds)

    def exposition(self) -> bytes:
        if self.shared is not None:
            return self.shared.exposition()
        return generate_latest(self.registry)


class _Registry(CollectorRegistry):
    """Also keeps the collectors that read live values at scrape time (all but metric objects):
    with several workers, gateway.worker_metrics copies what they read into the shared files."""

    def __init__(self) -> None:
        super().__init__()
        self.live: list[Collector] = []

    def register(self, collector: Collector) -> None:
        super().register(collector)
        if not isinstance(collector, MetricWrapperBase):
            self.live.append(collector)


class _LiveGauges(Collector):
    """Values other parts already keep, read when Prometheus scrapes."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        audit = self.gateway.audit
        if audit is not None:
            yield GaugeMetricFamily(
                "sluice_audit_queue_backlog",
                "Audit records waiting for the writer.",
                value=audit.backlog,
            )
            yield CounterMetricFamily(
                "sluice_audit_dropped",
                "Audit records dropped because the queue was full.",
                value=audit.dropped,
            )
            yield CounterMetricFamily(
                "sluice_audit_spilled",
                "Audit records written to the local file log because the Redis stream failed.",
                value=audit.spilled,
            )
        limiter = self.gateway.runtime.limiter
        if limiter is not None:
            yield CounterMetricFamily(
                "sluice_ratelimit_store_failures",
                "Rate-limit store calls that failed or timed out.",
                value=limiter.store_failures,
            )


class _EngineMetrics(Collector):
    """The `sluice:*` series of every loaded builtin engine of the current runtime, read at
    scrape time (so reloads need no re-registering), with a `backend` label to tell them apart."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for name, pool in self.gateway.runtime.upstreams.items():
            upstream = pool.builtin
            if upstream is None:
                continue
            ready = GaugeMetricFamily(
                "sluice_builtin_engine_ready",
                "1 once a builtin backend's model is loaded, 0 while it loads (or failed).",
                labels=["backend"],
            )
            ready.add_metric([name], 1.0 if upstream.ready else 0.0)
            _merge(merged, ready)
            collector = upstream.engine_collector()
            if collector is None:
                continue
            for family in collector.collect():
                labelled = Metric(family.name, family.documentation, family.type, family.unit)
                for sample in family.samples:
                    labels = {**sample.labels, "backend": name}
                    labelled.add_sample(sample.name, labels, sample.value, sample.timestamp)
                _merge(merged, labelled)
        yield from merged.values()


def _merge(merged: dict[str, Metric], family: Metric) -> None:
    """One family per name: several engines' samples go under one HELP/TYPE header."""
    known = merged.get(family.name)
    if known is None:
        merged[family.name] = family
    else:
        known.samples.extend(family.samples)
