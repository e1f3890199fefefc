"""A `kind: builtin` backend: the built-in engine in the gateway's own process.

The model loads on a thread as soon as the policy is applied, so the gateway listens at once;
requests that come meanwhile wait for it (within timeouts.total_s), /readyz says it is loading.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING

from backend.outputs import EngineInputError
from backend.serving.handler import OpenAIHandler
from gateway.api.validation import strict_json
from gateway.config.schema import BuiltinBackend
from gateway.errors import (
    GatewayError,
    InvalidRequest,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

log = logging.getLogger("sluicegate")

_KINDS = {"/chat/completions": "chat", "/completions": "completions"}
# Seconds a client refused during the model load is told to wait (Retry-After).
RETRY_WHILE_LOADING_S = 5


class _Loaded:
    """What a finished load leaves: the handler, and the engine's metrics collector."""

    __slots__ = ("collector", "handler")

    def __init__(self, handler: OpenAIHandler, collector: Collector) -> None:
        self.handler = handler
        self.collector = collector


class BuiltinUpstream:
    def __init__(self, name: str, config: BuiltinBackend) -> None:
        self.name = name
        self.config = config
        self._loaded: concurrent.futures.Future[_Loaded] = concurrent.futures.Future()
        # Running: a waiter that gives up (cancels its wrapper) cannot cancel the load itself.
        self._loaded.set_running_or_notify_cancel()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._load, name=f"sluice-load-{name}", daemon=True).start()

    # ---- loading -----------------------------------------------------------------------------

    def _load(self) -> None:
        started = time.monotonic()
        log.warning("backend %s: loading model %s", self.name, self.config.model)
        try:
            loaded = _start_engine(self.name, self.config)
        except Exception as exc:
            log.error("backend %s: cannot load model %s: %s", self.name, self.config.model, exc)
            self._loaded.set_exception(exc)
            return
        with self._lock:
            closed = self._closed
            if not closed:
                self._loaded.set_result(loaded)
        if closed:  # retired while it loaded: nobody will use it
            asyncio.run(loaded.handler.engine.aclose())
            self._loaded.set_exception(RuntimeError("the backend was closed while loading"))
            return
        log.warning(
            "backend %s: model %s ready in %.1f s",
            self.name,
            self.config.model,
            time.monotonic() - started,
        )

    @property
    def ready(self) -> bool:
        return self._loaded.done() and self._loaded.exception() is None

    def engine_collector(self) -> Collector | None:
        """The engine's metrics (`sluice:*`), once it is loaded."""
        return self._loaded.result().collector if self.ready else None

    async def _handler(self, deadline: float) -> OpenAIHandler:
        if not self._loaded.done():
            try:
                async with asyncio.timeout_at(deadline):
                    await asyncio.wrap_future(self._loaded)
            except TimeoutError:
                raise UpstreamUnavailable(
                    f"Backend '{self.name}' is still loading its model ({self.config.model}); "
                    "try again shortly.",
                    code="model_loading",
                    headers={"retry-after": str(RETRY_WHILE_LOADING_S)},
                ) from None
            except Exception:
                pass  # reported just below
        failure = self._loaded.exception()
        if failure is not None:
            raise UpstreamUnavailable(
                f"Backend '{self.name}' could not load its model ({self.config.model}): {failure}"
            )
        return self._loaded.result().handler

    # ---- requests ----------------------------------------------------------------------------

    async def open(
        self,
        path: str,
        body: bytes,
        request_id: str,
        traceparent: str | None = None,
        deadline: float | None = None,
    ) -> BuiltinReply:
        """Run the request; returns with the whole answer, or a stream's first events."""
        if deadline is None:
            deadline = asyncio.get_running_loop().time() + self.config.timeouts.total_s
        kind = _KINDS.get(path)
        if kind is None:
            raise InvalidRequest(
                f"Backend '{self.name}' (the built-in engine) does not serve {path}.",
                code="unsupported_endpoint",
            )
        handler = await self._handler(deadline)
        data = strict_json(body)
        try:
            async with asyncio.timeout_at(deadline):
                if data.get("stream") is not True:
                    content = await handler.complete(kind, data, request_id)
                    return BuiltinReply(self.name, deadline, content=content)
                events = handler.stream(kind, data, request_id)
                try:
                    first = await anext(events)  # a client's mistake raises here, before a 200
                except BaseException:
                    await events.aclose()
                    raise
                return BuiltinReply(self.name, deadline, events=events, first=first)
        except EngineInputError as exc:
            raise InvalidRequest(str(exc), param=exc.param) from None
        except TimeoutError:
            raise UpstreamTimeout(
                f"Backend '{self.name}' did not finish within {self.config.timeouts.total_s:g} s "
                f"(backends.{self.name}.timeouts.total_s)."
            ) from None
        except GatewayError:
            raise
        except Exception as exc:
            log.exception("backend %s: request %s failed in the engine", self.name, request_id)
            raise UpstreamError(f"Backend '{self.name}': the engine failed: {exc}") from None

    async def probe(self, timeout_s: float = 2.0) -> str | None:
        if not self._loaded.done():
            return f"loading model {self.config.model}"
        failure = self._loaded.exception()
        return None if failure is None else f"model failed to load: {failure}"

    async def aclose(self) -> None:
        """Stop the engine (or have the load stop it) and let its memory go."""
        with self._lock:
            was_closed, self._closed = self._closed, True
            done = self._loaded.done()
        if done and not was_closed and self._loaded.exception() is None:
            await self._loaded.result().handler.engine.aclose()


def _start_engine(name: str, config: BuiltinBackend) -> _Loaded:
    # Heavy imports (torch, transformers) happen here, on the loading thread.
    from backend.async_engine import AsyncEngine
    from backend.engine import LLMEngine
    from backend.engine_config import EngineConfig
    from backend.engine_metrics import EngineCollector

    engine = LLMEngine(EngineConfig(**config.engine_options()), progress=False)
    collector = EngineCollector(engine.snapshot, engine.stats)
    return _Loaded(OpenAIHandler(AsyncEngine(engine), config.model), collector)


class BuiltinReply:
    """The engine's answer: whole bytes, or a stream whose first events are already in."""

    __slots__ = ("_events", "_first", "_relay", "backend", "content", "deadline")
    content_type = "application/json"

    def __init__(
        self,
        backend: str,
        deadline: float,
        *,
        content: bytes = b"",
        events: AsyncGenerator[bytes, None] | None = None,
        first: bytes = b"",
    ) -> None:
        self.backend = backend
        self.deadline = deadline
        self.content = content
        self._events = events
        self._first = first
        self._relay: AsyncGenerator[bytes, None] | None = None

    async def read(self) -> bytes:
        return self.content

    def aiter_raw(self) -> AsyncIterator[bytes]:
        self._relay = self._stream()
        return self._relay

    async def _stream(self) -> AsyncGenerator[bytes, None]:
        assert self._events is not None, "not a stream"
        yield self._first
        try:
            async for events in self._events:
                yield events
        except Exception as exc:
            log.exception("backend %s: the engine failed mid-stream", self.backend)
            raise UpstreamError(f"Backend '{self.backend}': the engine failed: {exc}") from None

    async def aclose(self) -> None:
        """Closing the events aborts the engine request (client gone, timeout) and frees it."""
        if self._relay is not None:
            await self._relay.aclose()
        if self._events is not None:
            await self._events.aclose()
