"""What a request can be sent to: a `Target` (a backend and the model name it gets), and a
`Selection` (the chain of targets one request tries, and its experiment arm).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from gateway.api.validation import strict_json
from gateway.routing.pool import Pool, Replica
from gateway.routing.shadow import ShadowCopy


class RouteSink(Protocol):
    """Where the router reports what it did (the request's audit trail)."""

    route: dict[str, Any] | None
    shadow: ShadowCopy | None


class Target:
    """A backend and the model name sent to it."""

    __slots__ = ("_infos", "first_info", "pool", "renames", "total_s", "upstream_model")

    def __init__(self, pool: Pool, upstream_model: str, public_model: str) -> None:
        self.pool = pool
        self.upstream_model = upstream_model
        self.renames = upstream_model != public_model
        self.total_s = pool.config.timeouts.total_s
        # The audit's `route` for a first attempt on each replica (shared, never mutated).
        self._infos = tuple(self._info(replica, 1) for replica in pool.replicas)
        self.first_info = self._infos[0]

    def _info(self, replica: Replica, attempts: int) -> dict[str, Any]:
        return {
            "backend": self.pool.name,
            "upstream_model": self.upstream_model,
            "replica": replica.label,
            "attempts": attempts,
        }

    def info(self, replica: Replica, attempts: int) -> dict[str, Any]:
        return self._infos[replica.index] if attempts == 1 else self._info(replica, attempts)

    def body(self, body: bytes, ask_usage: bool) -> bytes:
        """The client's bytes, unless the model is renamed or the gateway needs the upstream to
        report a stream's usage (`stream_options.include_usage`)."""
        if not self.renames and not ask_usage:
            return body
        data = strict_json(body)
        data["model"] = self.upstream_model
        if ask_usage:
            options = data.get("stream_options")
            data["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
        return orjson.dumps(data)


@dataclass(frozen=True, slots=True, eq=False)
class Selection:
    """Where one request goes: the chain to try in order, and its experiment arm if any."""

    chain: tuple[Target, ...]
    experiment: str | None = None
    arm: str | None = None
    arm_header: tuple[bytes, bytes] | None = None
    # The arm is a canary whose error rate and latency are watched.
    canary: bool = False
    # One target with one plain replica and nothing else to do: the fast path.
    plain: bool = False
