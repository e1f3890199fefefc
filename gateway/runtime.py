"""Everything one policy turns into at run time: key ring, backend pools, model routes.

A `Runtime` never changes after it is built; a reload builds a new one and swaps the reference,
so a request holds the runtime it started with until it ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from gateway.auth import KeyRing
from gateway.config.ratelimit import RateLimitConfig
from gateway.config.schema import Policy
from gateway.errors import ModelNotFound
from gateway.guards.runner import GuardSet
from gateway.ratelimit.limiter import Limiter
from gateway.routing.pool import Pool
from gateway.routing.table import Route, RoutingTable

__all__ = ["Closable", "Route", "Runtime"]


class Runtime:
    def __init__(
        self,
        policy: Policy,
        env: Mapping[str, str],
        previous: Runtime | None = None,
    ) -> None:
        self.policy = policy
        self.keyring = KeyRing(policy.auth, env)
        # One pool per backend: its replicas' clients, breakers, health checks, retry budget.
        self.upstreams: dict[str, Pool] = {
            name: Pool.reuse_or_build(
                name, config, env, previous.upstreams.get(name) if previous else None
            )
            for name, config in policy.backends.items()
        }
        self.table: RoutingTable = RoutingTable(
            policy, self.upstreams, previous.table if previous else None
        )
        self.routes: dict[str, Route] = self.table.routes
        self.experiments = self.table.splits
        # Health checks start with the event loop (a reload builds its runtime inside it).
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            self.start()
        self.limiter: Limiter | None = _limiter(
            policy.ratelimit, previous.limiter if previous else None
        )
        # None when the policy has no guards: then the request path skips them entirely.
        self.guards: GuardSet | None = (
            GuardSet(policy.guards, previous.guards if previous else None, self.upstreams)
            if policy.guards is not None and (policy.guards.input or policy.guards.output)
            else None
        )

    def route(self, model: str) -> Route:
        route = self.routes.get(model)
        if route is None:
            raise ModelNotFound(
                f"The model '{model}' does not exist on this gateway; GET /v1/models lists them.",
                param="model",
            )
        return route

    def start(self) -> None:
        """Start the backends' health checks (idempotent; needs the event loop)."""
        for pool in self.upstreams.values():
            pool.start()

    def retired(self, successor: Runtime) -> list[Closable]:
        """Clients of this runtime that `successor` does not use and that can be closed."""
        kept = {id(u) for u in successor.upstreams.values()}
        out: list[Closable] = [u for u in self.upstreams.values() if id(u) not in kept]
        if self.limiter is not None and successor.limiter is not None:
            if self.limiter.store is not successor.limiter.store:
                out.append(self.limiter.store)
        elif self.limiter is not None:
            out.append(self.limiter.store)
        if self.guards is not None:
            retired = self.guards.retired(successor.guards)
            out.extend(g for g in retired if isinstance(g, Closable))
        return out

    async def aclose(self) -> None:
        await self.table.aclose()
        for upstream in self.upstreams.values():
            await upstream.aclose()
        if self.limiter is not None:
            await self.limiter.aclose()
        if self.guards is not None:
            await self.guards.aclose()


@runtime_checkable
class Closable(Protocol):
    async def aclose(self) -> None: ...


def _limiter(config: RateLimitConfig | None, previous: Limiter | None) -> Limiter | None:
    """The limiter for `config`, keeping the previous one's counters when the store is the same."""
    if config is None:
        return None
    if previous is None:
        return Limiter(config)
    if previous.config == config:
        return previous
    same_store = previous.config.store == config.store and (
        config.store == "memory" or previous.config.redis == config.redis
    )
    return Limiter(config, previous.store if same_store else None)
