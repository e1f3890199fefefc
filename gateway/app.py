"""Builds the ASGI application: routes, the small JSON endpoints, start-up and shutdown.

The inference endpoints live in gateway.pipeline; this module only wires things together.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import orjson
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.routing import Route, Router
from starlette.types import ASGIApp

from gateway.api.openapi import openapi_document
from gateway.asgi import Receive, Scope, Send, read_head, send_body, send_error
from gateway.config.schema import Policy
from gateway.errors import GatewayError, MethodNotAllowed, NotFound
from gateway.feedback import Feedback
from gateway.guards.moderation.endpoint import ModerationsEndpoint
from gateway.pipeline import CHAT, COMPLETIONS, EMBEDDINGS, InferencePipeline
from gateway.reload import PolicyReloader
from gateway.routing.admin import ExperimentAdmin
from gateway.routing.readiness import readiness
from gateway.service import Gateway


class JSONEndpoint:
    """A small GET endpoint answering JSON; `render` may raise GatewayError."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        head = read_head(scope)
        try:
            if scope["method"] not in ("GET", "HEAD"):
                raise MethodNotAllowed(
                    f"{scope['method']} is not allowed on {scope['path']}; use GET.",
                    headers={"allow": "GET"},
                )
            status, payload = await self.render(head.authorization)
        except GatewayError as error:
            await send_error(send, error, head.request_id)
            return
        await send_body(send, status, orjson.dumps(payload), head.request_id)

    async def render(self, authorization: bytes | None) -> tuple[int, object]:
        raise NotImplementedError


class Models(JSONEndpoint):
    async def render(self, authorization: bytes | None) -> tuple[int, object]:
        runtime = self.gateway.runtime
        principal = runtime.keyring.authenticate(authorization)
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "sluicegate"}
            for name in runtime.routes
            if principal.all_models or name in principal.models
        ]
        return 200, {"object": "list", "data": data}


class Health(JSONEndpoint):
    async def render(self, authorization: bytes | None) -> tuple[int, object]:
        return 200, {"status": "ok"}


class Ready(JSONEndpoint):
    """Backends reachable, circuits and health checks per replica (gateway.routing.readiness)."""

    async def render(self, authorization: bytes | None) -> tuple[int, object]:
        runtime = self.gateway.runtime
        ready, payload = await readiness(runtime.upstreams, runtime.routes)
        return (200 if ready else 503), payload


class OpenAPI(JSONEndpoint):
    async def render(self, authorization: bytes | None) -> tuple[int, object]:
        return 200, openapi_document()


class MetricsEndpoint:
    """`GET /metrics` in Prometheus's text format (no key: expose it where only scrapers reach)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        head = read_head(scope)
        if scope["method"] not in ("GET", "HEAD"):
            error = MethodNotAllowed(f"{scope['method']} is not allowed on /metrics; use GET.")
            await send_error(send, error, head.request_id)
            return
        body = self.gateway.metrics.exposition()
        await send_body(send, 200, body, head.request_id, CONTENT_TYPE_LATEST.encode())


async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
    head = read_head(scope)
    error = NotFound(f"Unknown path {scope['method']} {scope.get('path', '')}.")
    await send_error(send, error, head.request_id)


def create_app(
    policy: Policy,
    *,
    policy_path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    bind_host: str | None = None,
) -> ASGIApp:
    """The gateway as an ASGI app; with `policy_path` it reloads on SIGHUP and file changes."""
    gateway = Gateway(policy, env, bind_host)

    @contextlib.asynccontextmanager
    async def lifespan(app: object) -> AsyncIterator[None]:
        reloader = PolicyReloader(gateway, Path(policy_path)) if policy_path else None
        await gateway.start()
        if reloader:
            reloader.start()
        try:
            yield
        finally:
            if reloader:
                await reloader.stop()
            await gateway.aclose()

    routes = [
        Route("/v1/chat/completions", InferencePipeline(gateway, CHAT)),
        Route("/v1/completions", InferencePipeline(gateway, COMPLETIONS)),
        Route("/v1/embeddings", InferencePipeline(gateway, EMBEDDINGS)),
        Route("/v1/models", Models(gateway)),
        Route("/v1/feedback", Feedback(gateway)),
        Route("/v1/moderations", ModerationsEndpoint(gateway)),
        Route("/healthz", Health(gateway)),
        Route("/readyz", Ready(gateway)),
        Route("/admin/experiments/{name}", ExperimentAdmin(gateway)),
        Route("/openapi.json", OpenAPI(gateway)),
        Route("/metrics", MetricsEndpoint(gateway)),
    ]
    router = Router(routes=routes, default=not_found, lifespan=lifespan)
    router.state = gateway  # type: ignore[attr-defined]
    return router


__all__ = ["create_app"]
