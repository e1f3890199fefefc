"""What `/readyz` reports: per backend and replica, reachability (a live probe, or the health
checker's last verdict), circuit state and health; the gateway is ready when every public model
has at least one backend (route, arm or fallback) with a usable replica.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from gateway.routing.pool import Pool, Replica
from gateway.routing.table import Route

PROBE_TIMEOUT_S = 2.0


async def readiness(pools: Mapping[str, Pool], routes: Mapping[str, Route]) -> tuple[bool, Any]:
    replicas = [(pool, replica) for pool in pools.values() for replica in pool.replicas]
    problems = await asyncio.gather(*(_problem(replica) for _, replica in replicas))
    now = time.monotonic()
    details: dict[str, list[dict[str, Any]]] = {name: [] for name in pools}
    summary: dict[str, str] = {}
    usable: set[str] = set()
    for (pool, replica), problem in zip(replicas, problems, strict=True):
        details[pool.name].append(replica.status(now, problem))
        if problem is None and replica.usable(now):
            usable.add(pool.name)
        elif pool.name not in summary:
            summary[pool.name] = problem or _why_unusable(replica, now)
    upstreams = {name: "ok" if name in usable else summary.get(name, "?") for name in pools}
    models = {}
    for name, route in routes.items():
        backends = {target.pool.name for target in route.router.targets()}
        models[name] = "ok" if backends & usable else "no usable backend"
    ready = all(state == "ok" for state in models.values())
    return ready, {
        "status": "ready" if ready else "not ready",
        "upstreams": upstreams,
        "models": models,
        "replicas": details,
    }


async def _problem(replica: Replica) -> str | None:
    """A live probe where no health check runs; the health checker's last verdict otherwise."""
    if replica.health is not None:
        return None if replica.health.healthy else (replica.health_problem or "unhealthy")
    return await replica.probe(PROBE_TIMEOUT_S)


def _why_unusable(replica: Replica, now: float) -> str:
    breaker = replica.breaker
    if breaker is not None and not breaker.available(now):
        return f"circuit open (retry in {breaker.retry_in_s(now):.1f} s)"
    return "unavailable"
