"""`sluice backend serve`: the engine alone as an OpenAI-compatible HTTP server.

Loads the model at start-up; serves chat, completions, models, health and Prometheus metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from backend.async_engine import AsyncEngine
from backend.engine_config import EngineConfig
from backend.engine_metrics import EngineCollector
from backend.outputs import EngineInputError
from backend.serving.handler import OpenAIHandler

log = logging.getLogger("sluicegate.backend")
T = TypeVar("T")

MAX_BODY_BYTES = 16 * 1024 * 1024
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


class APIError(Exception):
    """An OpenAI-shaped error answer."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        error_type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.error_type = error_type

    def body(self) -> bytes:
        error = {"message": self.message, "type": self.error_type, "param": self.param}
        return orjson.dumps({"error": {**error, "code": self.code}})

    def response(self, request_id: str | None = None) -> Response:
        headers = {"x-request-id": request_id} if request_id else None
        return Response(self.body(), self.status, headers, "application/json")


class ClientGone(Exception):
    """The client disconnected before its answer was ready."""


@dataclass(slots=True)
class Serving:
    engine: AsyncEngine
    handler: OpenAIHandler
    registry: CollectorRegistry
    model_name: str
    created: int


def create_app(
    config: EngineConfig, *, model_name: str | None = None, engine: AsyncEngine | None = None
) -> Starlette:
    """The server for `config`; pass a started `engine` to serve it instead (the caller owns it)."""
    name = model_name or config.model

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        running = engine or await AsyncEngine.start(config)
        registry = CollectorRegistry()
        registry.register(EngineCollector(running.engine.snapshot, running.engine.stats))
        handler = OpenAIHandler(running, name)
        app.state.serving = Serving(running, handler, registry, name, int(time.time()))
        context = running.max_model_len
        log.warning("serving %s as %r (context %d tokens)", config.model, name, context)
        try:
            yield
        finally:
            if engine is None:
                await running.aclose()

    routes = [
        Route("/v1/chat/completions", _endpoint("chat"), methods=["POST"]),
        Route("/v1/completions", _endpoint("completions"), methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    return Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: _http_error}
    )


def _endpoint(kind: str) -> Any:
    async def endpoint(request: Request) -> Any:
        return await inference(request, kind)

    return endpoint


async def inference(request: Request, kind: str) -> Any:
    serving: Serving = request.app.state.serving
    given = request.headers.get("x-request-id", "")
    request_id = given if _SANE_REQUEST_ID.fullmatch(given) else secrets.token_hex(12)
    try:
        body = await _json_body(request)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise APIError(400, "You must name a model (GET /v1/models lists it).", param="model")
        if model != serving.model_name:
            raise APIError(
                404,
                f"The model '{model}' does not exist here; this server serves "
                f"'{serving.model_name}'.",
                param="model",
                code="model_not_found",
            )
        if body.get("stream") is True:
            events = serving.handler.stream(kind, body, request_id)
            try:
                first = await _unless_disconnected(request, anext(events))  # errors: no 200 yet
            except BaseException:
                await events.aclose()
                raise
            return EventStream(first, events, request_id)
        content = await _unless_disconnected(
            request, serving.handler.complete(kind, body, request_id)
        )
        return Response(content, 200, {"x-request-id": request_id}, "application/json")
    except EngineInputError as exc:
        return APIError(400, str(exc), param=exc.param).response(request_id)
    except APIError as exc:
        return exc.response(request_id)
    except ClientGone:
        return Response(status_code=499)  # nobody reads it; uvicorn needs an answer all the same
    except Exception:
        log.exception("request %s failed", request_id)
        return APIError(
            500, f"The engine failed on request {request_id}.", error_type="server_error"
        ).response(request_id)


async def _json_body(request: Request) -> dict[str, Any]:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise APIError(413, f"The request body is larger than {MAX_BODY_BYTES} bytes.")
    parts, size = [], 0
    async for chunk in request.stream():
        parts.append(chunk)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise APIError(413, f"The request body is larger than {MAX_BODY_BYTES} bytes.")
    raw = b"".join(parts)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise APIError(
            400, f"The request body is not valid UTF-8 (byte {exc.start}).", code="invalid_json"
        ) from None
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        message = f"The request body is not valid JSON: {exc}"
        raise APIError(400, message, code="invalid_json") from None
    if not isinstance(body, dict):
        raise APIError(400, "The request body must be a JSON object.", code="invalid_body")
    return body


async def _unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """`await work`, cancelled (engine request aborted) if the client goes away meanwhile."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_disconnect(request.receive))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        watch.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise ClientGone
    return task.result()


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class EventStream:
    """An SSE answer; a client that disconnects closes the events, which aborts the request."""

    def __init__(self, first: bytes, events: AsyncGenerator[bytes, None], request_id: str) -> None:
        self.first, self.events, self.request_id = first, events, request_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        pump = asyncio.ensure_future(self._pump(send))
        watch = asyncio.ensure_future(_disconnect(receive))
        try:
            await asyncio.wait({pump, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watch.cancel()
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            await self.events.aclose()

    async def _pump(self, send: Send) -> None:
        headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-request-id", self.request_id.encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self.first, "more_body": True})
        try:
            async for events in self.events:
                await send({"type": "http.response.body", "body": events, "more_body": True})
        except Exception:
            log.exception("stream %s failed", self.request_id)
            error = APIError(500, "The engine failed mid-stream.", error_type="server_error")
            event = b"event: error\ndata: " + error.body() + b"\n\ndata: [DONE]\n\n"
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def models(request: Request) -> Response:
    serving: Serving = request.app.state.serving
    card = {
        "id": serving.model_name,
        "object": "model",
        "created": serving.created,
        "owned_by": "sluicegate",
        "max_model_len": serving.engine.max_model_len,
    }
    return Response(orjson.dumps({"object": "list", "data": [card]}), media_type="application/json")


async def health(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


async def metrics(request: Request) -> Response:
    serving: Serving = request.app.state.serving
    return Response(generate_latest(serving.registry), media_type=CONTENT_TYPE_LATEST)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}."
    else:
        message = f"Unknown path {request.method} {request.url.path}."
    code = "method_not_allowed" if exc.status_code == 405 else "not_found"
    return APIError(exc.status_code, message, code=code).response()
