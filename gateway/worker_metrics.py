"""`/metrics` when several worker processes serve one port: every worker answers with the
whole gateway's numbers, read from prometheus_client's per-process files.

Each worker's Counter and Histogram objects write to `PROMETHEUS_MULTIPROC_DIR` by themselves
(the parent set it before the worker imported prometheus_client). The values that collectors
read at scrape time (audit backlog, store failures, circuit states) live only in their own
process, so each worker copies them into those files every PUBLISH_INTERVAL_S and before it
answers a scrape: another worker's are at most that old.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Metric, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

PUBLISH_INTERVAL_S = 1.0
# Live gauges whose worker values add up to the gateway's. Any other live gauge is shown once
# per worker, with a `pid` label: a circuit state or a readiness flag does not add up.
SUMMED_GAUGES = frozenset({"sluice_audit_queue_backlog"})

Labels = tuple[tuple[str, str], ...]


class LiveMirror:
    """Copies what this process's scrape-time collectors report into the shared files:
    gauges as they are, counters as increments (a counter that restarted from zero, such as
    a new limiter's after a reload, adds its whole value)."""

    def __init__(self, collectors: Sequence[Collector]) -> None:
        # The registry's own list: collectors registered later are mirrored too.
        self.collectors = collectors
        self._gauges: dict[tuple[str, Labels], Gauge] = {}
        self._counters: dict[tuple[str, Labels], Counter] = {}
        self._counted: dict[tuple[str, Labels], float] = {}

    def publish(self) -> None:
        shown: set[tuple[str, Labels]] = set()
        for collector in self.collectors:
            for family in collector.collect():
                if family.type == "gauge":
                    shown.update(self._gauge_family(family))
                elif family.type == "counter":
                    self._counter_family(family)
                # Histograms come only from builtin engines, which several workers refuse.
        # A series can vanish (a backend removed by a reload), but no key ever leaves the
        # shared files: zero is the least wrong value to leave behind.
        for key in self._gauges.keys() - shown:
            self._gauges[key].set(0)

    def _gauge_family(self, family: Metric) -> list[tuple[str, Labels]]:
        keys = []
        for sample in family.samples:
            key = (family.name, tuple(sorted(sample.labels.items())))
            gauge = self._gauges.get(key)
            if gauge is None:
                gauge = self._gauges[key] = _gauge(family, key[1])
            gauge.set(sample.value)
            keys.append(key)
        return keys

    def _counter_family(self, family: Metric) -> None:
        total = family.name + "_total"
        for sample in family.samples:
            if sample.name != total:
                continue  # `_created`: the shared files keep none
            key = (family.name, tuple(sorted(sample.labels.items())))
            counter = self._counters.get(key)
            if counter is None:
                counter = self._counters[key] = _counter(family, key[1])
            last = self._counted.get(key, 0.0)
            increment = sample.value - last if sample.value >= last else sample.value
            if increment:
                counter.inc(increment)
            self._counted[key] = sample.value


def _gauge(family: Metric, labels: Labels) -> Gauge:
    mode: Literal["livesum", "liveall"] = "livesum" if family.name in SUMMED_GAUGES else "liveall"
    names = [name for name, _ in labels]
    gauge = Gauge(family.name, family.documentation, names, registry=None, multiprocess_mode=mode)
    return gauge.labels(**dict(labels)) if labels else gauge


def _counter(family: Metric, labels: Labels) -> Counter:
    names = [name for name, _ in labels]
    counter = Counter(family.name, family.documentation, names, registry=None)
    return counter.labels(**dict(labels)) if labels else counter


class SharedMetrics:
    """The `/metrics` body for all the workers that write to `path`."""

    def __init__(self, path: str, live: Sequence[Collector]) -> None:
        if not getattr(values.ValueClass, "_multiprocess", False):
            raise RuntimeError(
                "prometheus_client was imported before PROMETHEUS_MULTIPROC_DIR was set: this "
                "process's counters would not reach the shared files (start workers through "
                "`sluice serve --workers N`)"
            )
        self.mirror = LiveMirror(live)
        self._registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(self._registry, path)
        # One per live worker; the parent removes a dead worker's (mark_process_dead).
        Gauge(
            "sluice_workers",
            "Worker processes serving (sluice serve --workers N).",
            registry=None,
            multiprocess_mode="livesum",
        ).set(1)

    def exposition(self) -> bytes:
        self.mirror.publish()
        return generate_latest(self._registry)


async def publish_every(mirror: LiveMirror, interval_s: float = PUBLISH_INTERVAL_S) -> None:
    """Keep this worker's live values in the shared files (run as a task while serving)."""
    while True:
        await asyncio.sleep(interval_s)
        mirror.publish()
