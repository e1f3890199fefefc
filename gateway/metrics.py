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
from prometheus_client.registry import Collector

from gateway.upstream.builtin import BuiltinUpstream

if TYPE_CHECKING:
    from gateway.audit.trail import Trail
    from gateway.service import Gateway

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self, gateway: Gateway) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
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
        r.register(_LiveGauges(gateway))
        r.register(_EngineMetrics(gateway))

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
        error = trail.error
        if error is not None and error["type"] == "upstream_error":
            self.upstream_errors.labels(backend, error["code"] or "upstream_error").inc()
        elif trail.outcome == "upstream_failed":
            self.upstream_errors.labels(backend, "mid_stream").inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


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
        for name, upstream in self.gateway.runtime.upstreams.items():
            if not isinstance(upstream, BuiltinUpstream):
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
