"""Engine metrics with vLLM's names and meanings under the `sluice:` prefix.

Counters and histograms are fed by the engine loop; gauges (queue depth, KV usage) are read
from the engine when Prometheus scrapes, so the step itself only bumps a few numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from prometheus_client import Metric

    from backend.request_state import RequestState

TTFT_BUCKETS_S = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
)
ITL_BUCKETS_S = (
    0.005,
    0.01,
    0.015,
    0.02,
    0.025,
    0.03,
    0.04,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
)
E2E_BUCKETS_S = (
    0.3,
    0.5,
    0.8,
    1.0,
    1.5,
    2.0,
    2.5,
    5.0,
    10.0,
    15.0,
    20.0,
    30.0,
    40.0,
    50.0,
    60.0,
    120.0,
    240.0,
    480.0,
)


class EngineStats:
    """What the engine loop counts; `registry` holds the series for /metrics."""

    def __init__(self, model_name: str = "") -> None:
        self.registry = CollectorRegistry()
        r, labels = self.registry, ["model_name"]
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.preemptions = 0
        self._ttft = Histogram(
            "sluice:time_to_first_token_seconds",
            "Arrival to the first generated token.",
            labels,
            buckets=TTFT_BUCKETS_S,
            registry=r,
        ).labels(model_name)
        self._itl = Histogram(
            "sluice:inter_token_latency_seconds",
            "Time between two tokens of one request.",
            labels,
            buckets=ITL_BUCKETS_S,
            registry=r,
        ).labels(model_name)
        self._e2e = Histogram(
            "sluice:e2e_request_latency_seconds",
            "Arrival to the request's end.",
            labels,
            buckets=E2E_BUCKETS_S,
            registry=r,
        ).labels(model_name)
        self._success = Counter(
            "sluice:request_success",
            "Finished requests by finish reason.",
            ["model_name", "finished_reason"],
            registry=r,
        )
        self.model_name = model_name

    def token(self, request: RequestState, now: float) -> None:
        self.generation_tokens += 1
        if request.first_token_s is None:
            request.first_token_s = now
            self._ttft.observe(now - request.arrival_s)
        elif request.last_token_s is not None and request.params.n == 1:
            self._itl.observe(now - request.last_token_s)
        request.last_token_s = now

    def finished(self, request: RequestState, reason: str) -> None:
        end = request.last_token_s if reason != "abort" else None
        if end is not None:
            self._e2e.observe(end - request.arrival_s)
        self._success.labels(self.model_name, reason).inc()


class EngineCollector(Collector):
    """Gauges and counters read from a live engine at scrape time."""

    def __init__(self, snapshot: Callable[[], dict[str, float]], stats: EngineStats) -> None:
        self._snapshot = snapshot
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        s, stats, name = self._snapshot(), self._stats, [self._stats.model_name]
        for key, help_text in (
            ("num_requests_running", "Requests in the running batch."),
            ("num_requests_waiting", "Requests waiting to be scheduled."),
            ("kv_cache_usage_perc", "Fraction of KV-cache blocks in use (1 = full)."),
        ):
            gauge = GaugeMetricFamily(f"sluice:{key}", help_text, labels=["model_name"])
            gauge.add_metric(name, s[key])
            yield gauge
        for key, help_text, value in (
            ("num_preemptions", "Sequences preempted (recomputed later).", stats.preemptions),
            ("prompt_tokens", "Prompt tokens admitted.", stats.prompt_tokens),
            ("generation_tokens", "Tokens generated.", stats.generation_tokens),
            (
                "prefix_cache_queries",
                "Prompt tokens looked up in the prefix cache.",
                s["prefix_cache_queries"],
            ),
            (
                "prefix_cache_hits",
                "Prompt tokens served from the prefix cache.",
                s["prefix_cache_hits"],
            ),
        ):
            counter = CounterMetricFamily(f"sluice:{key}", help_text, labels=["model_name"])
            counter.add_metric(name, value)
            yield counter
        yield from stats.registry.collect()
