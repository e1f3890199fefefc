"""What the pipeline needs from a backend, whatever its kind: `Upstream` opens a `Reply`.

`OpenAIUpstream` (HTTP) and `BuiltinUpstream` (the engine in-process) both fit it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol


class Reply(Protocol):
    """A 2xx answer whose body has not been read yet."""

    # Event-loop time by which the whole answer must be in (backends.<name>.timeouts.total_s).
    deadline: float

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
        self, path: str, body: bytes, request_id: str, traceparent: str | None = None
    ) -> Reply:
        """Send `body` to `path` (e.g. /chat/completions); raises GatewayError unless 2xx.
        `traceparent` makes the upstream's work part of the request's trace."""
        ...

    async def probe(self, timeout_s: float = 2.0) -> str | None:
        """None when ready to serve, else why not (for /readyz)."""
        ...

    async def aclose(self) -> None: ...
