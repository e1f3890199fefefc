"""Everything one policy turns into at run time: key ring, upstream clients, model routes.

A `Runtime` never changes after it is built; a reload builds a new one and swaps the reference,
so a request holds the runtime it started with until it ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from gateway.auth import KeyRing
from gateway.config.ratelimit import RateLimitConfig
from gateway.config.schema import Backend, BuiltinBackend, Policy
from gateway.errors import ModelNotFound
from gateway.ratelimit.limiter import Limiter
from gateway.upstream.builtin import BuiltinUpstream
from gateway.upstream.interface import Upstream
from gateway.upstream.openai import OpenAIUpstream


@dataclass(frozen=True, slots=True)
class Route:
    public_model: str
    upstream_model: str
    upstream: Upstream

    @property
    def renames_model(self) -> bool:
        return self.public_model != self.upstream_model


class Runtime:
    def __init__(
        self,
        policy: Policy,
        env: Mapping[str, str],
        previous: Runtime | None = None,
    ) -> None:
        self.policy = policy
        self.keyring = KeyRing(policy.auth, env)
        self.upstreams: dict[str, AnyUpstream] = {
            name: _upstream(name, config, env, previous.upstreams.get(name) if previous else None)
            for name, config in policy.backends.items()
        }
        self.routes = {
            name: Route(name, route.model or name, self.upstreams[route.backend])
            for name, route in policy.models.items()
        }
        self.limiter: Limiter | None = _limiter(
            policy.ratelimit, previous.limiter if previous else None
        )

    def route(self, model: str) -> Route:
        route = self.routes.get(model)
        if route is None:
            raise ModelNotFound(
                f"The model '{model}' does not exist on this gateway; GET /v1/models lists them.",
                param="model",
            )
        return route

    def retired(self, successor: Runtime) -> list[Closable]:
        """Clients of this runtime that `successor` does not use and that can be closed."""
        kept = {id(u) for u in successor.upstreams.values()}
        out: list[Closable] = [u for u in self.upstreams.values() if id(u) not in kept]
        if self.limiter is not None and successor.limiter is not None:
            if self.limiter.store is not successor.limiter.store:
                out.append(self.limiter.store)
        elif self.limiter is not None:
            out.append(self.limiter.store)
        return out

    async def aclose(self) -> None:
        for upstream in self.upstreams.values():
            await upstream.aclose()
        if self.limiter is not None:
            await self.limiter.aclose()


class Closable(Protocol):
    async def aclose(self) -> None: ...


AnyUpstream = OpenAIUpstream | BuiltinUpstream


def _upstream(
    name: str, config: Backend, env: Mapping[str, str], old: AnyUpstream | None
) -> AnyUpstream:
    """The client for backend `name`, reusing the previous runtime's when nothing changed:
    an OpenAI upstream keeps its pooled connections, a builtin one its loaded engine."""
    if isinstance(config, BuiltinBackend):
        if isinstance(old, BuiltinUpstream) and old.config == config:
            return old
        return BuiltinUpstream(name, config)
    key = env.get(config.api_key_env) if config.api_key_env else None
    if isinstance(old, OpenAIUpstream) and old.config == config and old.api_key == key:
        return old
    return OpenAIUpstream(name, config, env)


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
