"""A reply that reports its end: to the balancer (requests in flight), to a canary's watch
(did the arm's backend answer in full, how long it took), and to a shadow copy (the primary's
answer, for the comparison). Also replays a stream's first chunk, read early by the router.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable

from gateway.routing.pool import Replica
from gateway.routing.shadow import MAX_COMPARED_BYTES, ShadowCopy
from gateway.upstream.interface import Reply

# (now, ok, latency_ms) of an arm under a canary's watch.
Observer = Callable[[float, bool, float], None]


class TrackedReply:
    __slots__ = (
        "_capture",
        "_captured",
        "_chunks",
        "_closed",
        "_cut",
        "_failed",
        "_first",
        "_load",
        "_observe",
        "_relay",
        "_reply",
        "_shadow",
        "_started",
        "backend",
        "deadline",
    )

    def __init__(
        self,
        reply: Reply,
        load: Replica | None,
        observe: Observer | None,
        shadow: ShadowCopy | None,
        started: float,
        first: bytes | None = None,
        chunks: AsyncIterator[bytes] | None = None,
    ) -> None:
        self._reply = reply
        self._load = load
        self._observe = observe
        self._shadow = shadow
        self._started = started
        self._first = first
        self._chunks = chunks
        self._capture: list[bytes] | None = [] if shadow is not None else None
        self._captured = 0
        self._failed = False
        # The client went away (a cancel): no verdict on the upstream, nothing to compare.
        self._cut = False
        self._closed = False
        self._relay: AsyncGenerator[bytes, None] | None = None
        self.deadline = reply.deadline
        self.backend = reply.backend

    @property
    def content_type(self) -> str:
        return self._reply.content_type

    def _keep(self, data: bytes) -> None:
        capture = self._capture
        if capture is None:
            return
        self._captured += len(data)
        if self._captured > MAX_COMPARED_BYTES:
            self._capture = None  # too long to compare: stop holding it
        else:
            capture.append(data)

    async def read(self) -> bytes:
        try:
            data = await self._reply.read()
        except Exception:
            self._failed = True
            raise
        except BaseException:
            self._cut = True
            raise
        self._keep(data)
        return data

    def aiter_raw(self) -> AsyncIterator[bytes]:
        self._relay = self._stream()
        return self._relay

    async def _stream(self) -> AsyncGenerator[bytes, None]:
        chunks = self._chunks if self._chunks is not None else self._reply.aiter_raw()
        try:
            if self._first is not None:
                self._keep(self._first)
                yield self._first
            async for chunk in chunks:
                self._keep(chunk)
                yield chunk
        except Exception:
            self._failed = True
            raise
        except GeneratorExit:  # closed early: the relay saw [DONE], or is being cancelled
            raise
        except BaseException:
            self._cut = True
            raise

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            self._cut = True
        try:
            if self._relay is not None:
                await self._relay.aclose()
            await self._reply.aclose()
        finally:
            now = time.monotonic()
            load = self._load
            if load is not None:
                load.outstanding -= 1
            if self._observe is not None and not self._cut:
                self._observe(now, not self._failed, (time.perf_counter() - self._started) * 1000)
            shadow = self._shadow
            if shadow is not None:
                if self._failed or self._cut:
                    shadow.primary_failed()
                else:
                    capture = self._capture
                    shadow.primary_answered(b"".join(capture) if capture is not None else None)
