"""What the pipeline needs from a backend, whatever its kind: `Upstream` opens a `Reply`.

`OpenAIUpstream` (HTTP) and `BuiltinUpstream` (the engine in-process) both fit it. `open` is
one attempt: retries, fallbacks and circuit breakers are the router's (gateway.routing).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from gateway.errors import GatewayError


class Retryable(Exception):
    """Raised by `Upstream.open` for a failure worth trying again on the same backend: refused
    or reset before answering, a connect timeout, HTTP 502/503/504. `error` is what the client
    gets if nothing else works."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(error.message)
        self.error = error


class Reply(Protocol):
    """A 2xx answer whose body has not been read yet."""

    # Event-loop time by which the whole answer must be in (backends.<name>.timeouts.total_s).
    deadline: float
    # The backend that answered (its name in the policy).
    backend: str

    @property
    def content_type(self) -> str: ...

    async def read(self) -> bytes:
        """The whole body (non-streaming requests)."""
        ...

    def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body as it arrives (streams); cut anywhere, the relay reassembles events."""
        ...

    async def aclose(self) -> None: ...


class Upstream(Protocol):
    name: str

    async def open(
        self,
        path: str,
        body: bytes,
        request_id: str,
        traceparent: str | None = None,
        deadline: float | None = None,
    ) -> Reply:
        """Send `body` to `path` (e.g. /chat/completions) once; raises Retryable or GatewayError
        unless 2xx. `traceparent` makes the upstream's work part of the request's trace;
        `deadline` (event-loop time) bounds the whole answer, else timeouts.total_s from now."""
        ...

    async def probe(self, timeout_s: float = 2.0) -> str | None:
        """None when ready to serve, else why not (for /readyz)."""
        ...

    async def aclose(self) -> None: ...
