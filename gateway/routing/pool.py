"""A backend as the router sees it: its replicas (one client each), their circuit breakers,
health verdicts and load counters, the balancer that picks among them, its retry budget.

A pool outlives a reload when its backend's settings (and key) did not change, so pooled
connections, loaded engines, open circuits and budgets carry over.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.config.schema import Backend, BuiltinBackend, OpenAIBackend, Retries
from gateway.routing.balancer import Balancer, balancer, ewma
from gateway.routing.breaker import Breaker
from gateway.routing.budget import Budget
from gateway.routing.health import HealthChecker, HealthStreak, engine_queue_depth, metrics_url
from gateway.upstream.builtin import BuiltinUpstream
from gateway.upstream.openai import OpenAIUpstream

AnyUpstream = OpenAIUpstream | BuiltinUpstream
# A builtin engine runs in-process: a failure is the engine's, trying again would not help.
_NO_RETRIES = Retries(attempts=1, budget=None)


class Replica:
    """One server of a backend and what the gateway knows about it."""

    __slots__ = (
        "_ewma_at",
        "breaker",
        "ewma_ms",
        "health",
        "health_problem",
        "index",
        "label",
        "outstanding",
        "queue_depth",
        "upstream",
        "weight",
    )

    def __init__(
        self,
        index: int,
        upstream: AnyUpstream,
        weight: int,
        breaker: Breaker | None,
        health: HealthStreak | None,
    ) -> None:
        self.index = index
        self.upstream = upstream
        self.label = upstream.base_url if isinstance(upstream, OpenAIUpstream) else "in-process"
        self.weight = weight
        self.breaker = breaker
        self.health = health
        self.health_problem: str | None = None
        # Requests this gateway has in flight on the replica (kept only when balancing needs it).
        self.outstanding = 0
        self.queue_depth: int | None = None
        self.ewma_ms = 0.0
        self._ewma_at = 0.0

    def usable(self, now: float) -> bool:
        if self.health is not None and not self.health.healthy:
            return False
        return self.breaker is None or self.breaker.available(now)

    def outcome(self, now: float, ok: bool | None) -> None:
        """An attempt's verdict for the circuit breaker: answered, failed (connection errors,
        timeouts, 5xx), or None for no verdict (cancelled)."""
        breaker = self.breaker
        if breaker is None:
            return
        if ok is None:
            breaker.release()
        elif ok:
            breaker.success(now)
        else:
            breaker.failure(now)

    def latency(self, now: float, latency_ms: float) -> None:
        self.ewma_ms = ewma(self.ewma_ms, self._ewma_at, latency_ms, now)
        self._ewma_at = now

    async def probe(self, timeout_s: float, path: str = "/models") -> str | None:
        if isinstance(self.upstream, OpenAIUpstream):
            return await self.upstream.probe(timeout_s, path)
        return await self.upstream.probe(timeout_s)

    async def read_queue_depth(self, timeout_s: float) -> int | None:
        if not isinstance(self.upstream, OpenAIUpstream):
            return None
        try:
            status, body = await self.upstream.get(metrics_url(self.label), timeout_s)
        except Exception:
            return None
        return engine_queue_depth(body) if status == 200 else None

    def status(self, now: float, problem: str | None) -> dict[str, Any]:
        """What /readyz says about this replica; `problem` is a live probe's answer."""
        circuit = self.breaker.current(now).label if self.breaker is not None else "closed"
        out: dict[str, Any] = {"replica": self.label, "status": problem or "ok", "circuit": circuit}
        if self.breaker is not None and circuit == "open":
            out["retry_in_s"] = round(self.breaker.retry_in_s(now), 3)
        if self.health is not None:
            out["health"] = "healthy" if self.health.healthy else "unhealthy"
        if self.queue_depth is not None:
            out["queue_depth"] = self.queue_depth
        return out


class Pool:
    """The replicas of one backend."""

    def __init__(self, name: str, config: Backend, env: Mapping[str, str]) -> None:
        self.name = name
        self.config = config
        self.api_key: str | None = None
        breaker = config.circuit_breaker
        self.health: HealthChecker | None = None
        if isinstance(config, BuiltinBackend):
            self.retries = _NO_RETRIES
            self.replicas = [Replica(0, BuiltinUpstream(name, config), 1, _breaker(breaker), None)]
            self.balancer: Balancer = balancer("round_robin")
        else:
            self.api_key = env[config.api_key_env] if config.api_key_env else None
            self.retries = config.retries
            check = config.health_check
            self.replicas = [
                Replica(
                    index,
                    OpenAIUpstream(name, config, env, replica.base_url),
                    replica.weight,
                    _breaker(breaker),
                    HealthStreak(check) if check is not None else None,
                )
                for index, replica in enumerate(config.replica_list())
            ]
            self.balancer = balancer(config.balance)
            if check is not None:
                self.health = HealthChecker(name, self.replicas, check)
        self.budget = Budget(self.retries.budget) if self.retries.budget is not None else None
        # Counters for /metrics: retries sent, requests that left this backend for a fallback.
        self.retried = 0
        self.failed_over = 0
        many = len(self.replicas) > 1
        # In-flight counts are kept only where the balancer reads them.
        self.tracks_load = (
            many
            and config.kind == "openai"
            and config.balance
            in (
                "least_outstanding",
                "peak_ewma",
            )
        )
        # The one replica to use without choosing anything: the plain case's fast path.
        self.single = (
            self.replicas[0] if not many and breaker is None and self.health is None else None
        )

    @classmethod
    def reuse_or_build(
        cls, name: str, config: Backend, env: Mapping[str, str], old: Pool | None
    ) -> Pool:
        """The previous runtime's pool when nothing about the backend changed, else a new one."""
        if old is not None and old.config == config:
            key = (
                env.get(config.api_key_env)
                if isinstance(config, OpenAIBackend) and config.api_key_env
                else None
            )
            if old.api_key == key:
                return old
        return cls(name, config, env)

    def pick(self, now: float, tried: frozenset[int] | set[int]) -> Replica | None:
        """A replica for the next attempt, preferring ones not tried yet for this request;
        None when every replica is out (circuit open, failing health checks)."""
        single = self.single
        if single is not None:
            return single
        usable = [r for r in self.replicas if r.usable(now)]
        fresh = [r for r in usable if r.index not in tried] if tried else usable
        candidates = fresh or usable
        if not candidates:
            return None
        chosen = candidates[0] if len(candidates) == 1 else self.balancer.choose(candidates)
        assert isinstance(chosen, Replica)
        if chosen.breaker is not None and not chosen.breaker.allow(now):
            return None
        return chosen

    def unavailable_reason(self, now: float) -> str:
        reasons = []
        for replica in self.replicas:
            if replica.health is not None and not replica.health.healthy:
                reasons.append(f"{replica.label}: failing health checks ({replica.health_problem})")
            elif replica.breaker is not None and not replica.breaker.available(now):
                wait = replica.breaker.retry_in_s(now)
                reasons.append(f"{replica.label}: circuit open (retry in {wait:.1f} s)")
        return "; ".join(reasons) or "no replica available"

    def start(self) -> None:
        if self.health is not None:
            self.health.start()

    @property
    def builtin(self) -> BuiltinUpstream | None:
        upstream = self.replicas[0].upstream
        return upstream if isinstance(upstream, BuiltinUpstream) else None

    async def aclose(self) -> None:
        if self.health is not None:
            await self.health.aclose()
        for replica in self.replicas:
            await replica.upstream.aclose()


def _breaker(config: Any) -> Breaker | None:
    return Breaker(config) if config is not None else None
