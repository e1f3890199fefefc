"""Routing's series on /metrics, read from the live objects when Prometheus scrapes: circuit
states, health verdicts, in-flight counts, retries and fallbacks per backend, shadow copies per
model, arm weights and canary rollbacks per experiment. Documented in docs/metrics.md.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from gateway.service import Gateway


class RoutingCollector(Collector):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        runtime = self.gateway.runtime
        now = time.monotonic()
        circuit = GaugeMetricFamily(
            "sluice_upstream_circuit_state",
            "Circuit breaker per replica: 0 closed, 1 half-open, 2 open.",
            labels=["backend", "replica"],
        )
        healthy = GaugeMetricFamily(
            "sluice_upstream_healthy",
            "Active health check verdict per replica: 1 healthy, 0 taken out.",
            labels=["backend", "replica"],
        )
        in_flight = GaugeMetricFamily(
            "sluice_upstream_in_flight",
            "Requests in flight per replica (backends balanced by load).",
            labels=["backend", "replica"],
        )
        retries = CounterMetricFamily(
            "sluice_upstream_retries",
            "Retries sent to a backend (after backoff, within the retry budget).",
            labels=["backend"],
        )
        exhausted = CounterMetricFamily(
            "sluice_retry_budget_exhausted",
            "Retries not sent because the backend's retry budget was spent.",
            labels=["backend"],
        )
        failovers = CounterMetricFamily(
            "sluice_upstream_failovers",
            "Requests that gave up on a backend and went on down their fallback chain.",
            labels=["backend"],
        )
        for name, pool in runtime.upstreams.items():
            for replica in pool.replicas:
                labels = [name, replica.label]
                if replica.breaker is not None:
                    circuit.add_metric(labels, float(replica.breaker.current(now)))
                if replica.health is not None:
                    healthy.add_metric(labels, 1.0 if replica.health.healthy else 0.0)
                if pool.tracks_load:
                    in_flight.add_metric(labels, float(replica.outstanding))
            retries.add_metric([name], float(pool.retried))
            failovers.add_metric([name], float(pool.failed_over))
            if pool.budget is not None:
                exhausted.add_metric([name], float(pool.budget.exhausted))
        yield from (circuit, healthy, in_flight, retries, exhausted, failovers)
        yield from self._shadows()
        yield from self._experiments(now)

    def _shadows(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        copies = CounterMetricFamily(
            "sluice_shadow_requests",
            "Shadow copies by model, shadow backend and outcome (ok, error, timeout; dropped: "
            "sampled but not sent because max_concurrency copies were in flight).",
            labels=["model", "backend", "outcome"],
        )
        compared = CounterMetricFamily(
            "sluice_shadow_compared",
            "Shadow answers compared with the primary's (both complete).",
            labels=["model", "backend"],
        )
        exact = CounterMetricFamily(
            "sluice_shadow_exact_matches",
            "Shadow answers whose text equalled the primary's.",
            labels=["model", "backend"],
        )
        in_flight = GaugeMetricFamily(
            "sluice_shadow_in_flight",
            "Shadow copies in flight.",
            labels=["model", "backend"],
        )
        for model, runner in self.gateway.runtime.table.shadows.items():
            backend = runner.pool.name
            for outcome, count in runner.outcomes.items():
                copies.add_metric([model, backend, outcome], float(count))
            copies.add_metric([model, backend, "dropped"], float(runner.dropped))
            compared.add_metric([model, backend], float(runner.compared))
            exact.add_metric([model, backend], float(runner.exact))
            in_flight.add_metric([model, backend], float(runner.in_flight))
        yield from (copies, compared, exact, in_flight)

    def _experiments(self, now: float) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        share = GaugeMetricFamily(
            "sluice_experiment_arm_share",
            "Share of an experiment's traffic each arm gets now (0-1; a canary's ramp included).",
            labels=["experiment", "arm"],
        )
        rolled_back = GaugeMetricFamily(
            "sluice_canary_rolled_back",
            "1 while a canary is rolled back (automatically or by hand), else 0.",
            labels=["experiment"],
        )
        rollbacks = CounterMetricFamily(
            "sluice_canary_rollbacks",
            "Canary rollbacks, automatic and by hand.",
            labels=["experiment"],
        )
        for name, split in self.gateway.runtime.experiments.items():
            weights = split.weights(now)
            total = sum(weights) or 1.0
            for arm, weight in zip(split.arms, weights, strict=True):
                share.add_metric([name, arm], weight / total)
            if split.canary is not None:
                rolled_back.add_metric([name], 1.0 if split.canary.rolled_back else 0.0)
                rollbacks.add_metric([name], float(split.canary.rollbacks))
        yield from (share, rolled_back, rollbacks)
