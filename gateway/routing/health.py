"""Active health checks: a task per backend probes each replica every `interval_s`; a replica
that fails `unhealthy_after` checks in a row is taken out of the balancer until it passes
`healthy_after` in a row. Optionally reads an engine's queue depth as a load hint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from gateway.config.routing import HealthCheck

if TYPE_CHECKING:
    from gateway.routing.pool import Replica

log = logging.getLogger("sluicegate.health")

# The `sluice backend serve` gauges whose sum is an engine's queue depth.
_QUEUE_GAUGES = (b"sluice:num_requests_waiting", b"sluice:num_requests_running")


class HealthStreak:
    """Pure: the healthy/unhealthy verdict from consecutive check results."""

    __slots__ = ("_streak", "config", "healthy")

    def __init__(self, config: HealthCheck) -> None:
        self.config = config
        # Optimistic until checks say otherwise: a new replica takes traffic at once.
        self.healthy = True
        self._streak = 0  # consecutive results that disagree with `healthy`

    def observe(self, passed: bool) -> bool:
        """Record one check; returns True if the verdict changed."""
        if passed == self.healthy:
            self._streak = 0
            return False
        self._streak += 1
        needed = self.config.healthy_after if passed else self.config.unhealthy_after
        if self._streak < needed:
            return False
        self.healthy = passed
        self._streak = 0
        return True


def engine_queue_depth(metrics_text: bytes) -> int | None:
    """Requests running plus waiting in a `sluice backend serve` engine, from its /metrics."""
    total = 0.0
    found = False
    for line in metrics_text.splitlines():
        if line.startswith(_QUEUE_GAUGES):
            try:
                total += float(line.rsplit(b" ", 1)[1])
            except (IndexError, ValueError):
                continue
            found = True
    return round(total) if found else None


def metrics_url(base_url: str) -> httpx.URL:
    """/metrics at the origin of `base_url`, where `sluice backend serve` exposes it."""
    parts = urlsplit(base_url)
    return httpx.URL(f"{parts.scheme}://{parts.netloc}/metrics")


class HealthChecker:
    """Runs the checks of one backend's replicas until closed."""

    def __init__(self, backend: str, replicas: list[Replica], config: HealthCheck) -> None:
        self.backend = backend
        self.replicas = replicas
        self.config = config
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"sluice-health-{self.backend}"
            )

    async def _run(self) -> None:
        while True:
            await asyncio.gather(*(self.check(replica) for replica in self.replicas))
            await asyncio.sleep(self.config.interval_s)

    async def check(self, replica: Replica) -> None:
        """Probe one replica once and update its verdict (and queue depth)."""
        config = self.config
        try:
            problem = await replica.probe(config.timeout_s, config.path)
        except Exception as exc:  # a bug in a probe must not end the checks
            problem = f"check failed: {type(exc).__name__}: {exc}"
        replica.health_problem = problem
        streak = replica.health
        assert streak is not None
        if streak.observe(problem is None):
            if streak.healthy:
                log.warning("backend %s: replica %s is healthy again", self.backend, replica.label)
            else:
                log.warning(
                    "backend %s: replica %s failed %d health checks (%s); taken out of rotation",
                    self.backend,
                    replica.label,
                    config.unhealthy_after,
                    problem,
                )
        if config.queue_depth and problem is None:
            replica.queue_depth = await replica.read_queue_depth(config.timeout_s)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
