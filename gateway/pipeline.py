"""The request path of the inference endpoints, top to bottom in one place.

auth → body → validate → route → upstream → relay (stream or not). Each step raises a
GatewayError that becomes one OpenAI-shaped error response here and nowhere else.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import partial

import httpx
import orjson
from pydantic import BaseModel

from gateway.api.schemas import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from gateway.api.validation import parse_request
from gateway.asgi import (
    Receive,
    RequestHead,
    Scope,
    Send,
    read_body,
    read_head,
    send_body,
    send_error,
)
from gateway.disconnect import ClientWatch
from gateway.errors import (
    GatewayError,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    UpstreamError,
    UpstreamTimeout,
)
from gateway.ratelimit.accounting import Accounting
from gateway.ratelimit.usage import estimate_prompt_tokens
from gateway.runtime import Route
from gateway.service import Gateway
from gateway.streaming import SSE_HEADERS, relay_stream
from gateway.upstream.openai import UpstreamReply

log = logging.getLogger("sluicegate")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One OpenAI inference endpoint: its path upstream and its request schema."""

    upstream_path: str
    schema: type[BaseModel]
    streams: bool


CHAT = Endpoint("/chat/completions", ChatCompletionRequest, streams=True)
COMPLETIONS = Endpoint("/completions", CompletionRequest, streams=True)
EMBEDDINGS = Endpoint("/embeddings", EmbeddingRequest, streams=False)


class InferencePipeline:
    """ASGI app for one inference endpoint."""

    def __init__(self, gateway: Gateway, endpoint: Endpoint) -> None:
        self.gateway = gateway
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        head = read_head(scope)
        try:
            if scope["method"] != "POST":
                raise MethodNotAllowed(
                    f"{scope['method']} is not allowed on {scope['path']}; use POST.",
                    headers={"allow": "POST"},
                )
            await self._handle(receive, send, head)
        except GatewayError as error:
            await send_error(send, error, head.request_id)
        except Exception:
            log.exception("internal error on request %s", head.request_id)
            await send_error(
                send,
                InternalError(f"Internal gateway error (request {head.request_id})."),
                head.request_id,
            )

    async def _handle(self, receive: Receive, send: Send, head: RequestHead) -> None:
        runtime = self.gateway.runtime
        principal = runtime.keyring.authenticate(head.authorization)
        body = await read_body(receive, head, runtime.policy.server.max_body_bytes)
        request = parse_request(self.endpoint.schema, body)
        model: str = request.model  # type: ignore[attr-defined]
        route = runtime.route(model)
        principal.check_model(model)
        limiter = runtime.limiter
        if limiter is None:
            await self._forward(receive, send, head, request, route, body, None)
            return
        estimate = partial(estimate_prompt_tokens, request)
        admission = await limiter.admit(principal, model, head.request_id, estimate)
        options = getattr(request, "stream_options", None)
        accounting = Accounting(
            limiter, admission, self._streams(request), bool(options and options.include_usage)
        )
        try:
            await self._forward(receive, send, head, request, route, body, accounting)
        except GatewayError as error:
            error.headers = {**admission.header_map(), **error.headers}
            raise
        finally:
            # Frees concurrency slots on every path: errors, timeouts, disconnects.
            await asyncio.shield(accounting.settle_unused())

    def _streams(self, request: BaseModel) -> bool:
        return self.endpoint.streams and bool(getattr(request, "stream", False))

    async def _forward(
        self,
        receive: Receive,
        send: Send,
        head: RequestHead,
        request: BaseModel,
        route: Route,
        body: bytes,
        accounting: Accounting | None,
    ) -> None:
        asks_usage = accounting is not None and accounting.asks_upstream_for_usage
        body = upstream_body(body, route, ask_usage=asks_usage)
        extra_headers = accounting.headers if accounting is not None else []
        watch = ClientWatch(receive)
        try:
            reply = await route.upstream.open(self.endpoint.upstream_path, body, head.request_id)
            if self._streams(request):
                headers = [*SSE_HEADERS, (b"x-request-id", head.request_id.encode())]
                headers += extra_headers
                usage = accounting.usage if accounting is not None else None
                settle = accounting.settle_stream if accounting is not None else None
                await relay_stream(reply, send, headers, route.upstream.name, usage, settle)
            else:
                content = await read_whole(reply, route.upstream.name)
                if accounting is not None:
                    await accounting.settle_body(content)
                content_type = reply.content_type.encode()
                await send_body(send, 200, content, head.request_id, content_type, extra_headers)
        except asyncio.CancelledError:
            if not watch.absorb_cancel():
                raise
            log.debug("client went away; request %s cancelled upstream", head.request_id)
        finally:
            watch.stop()


def upstream_body(body: bytes, route: Route, ask_usage: bool = False) -> bytes:
    """The body to send upstream: the client's bytes, unless the model is renamed or the gateway
    needs the upstream to report a stream's usage (`stream_options.include_usage`)."""
    if not route.renames_model and not ask_usage:
        return body
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        # pydantic-core accepted it, orjson cannot carry it: NaN, Infinity (not JSON at
        # all, RFC 8259) or a number beyond a double somewhere. The client's mistake.
        raise InvalidRequest(
            "The request body is not strict JSON: it holds NaN, Infinity or a number "
            "too large for a double.",
            code="invalid_json",
        ) from None
    data["model"] = route.upstream_model
    if ask_usage:
        options = data.get("stream_options")
        data["stream_options"] = {
            **(options if isinstance(options, dict) else {}),
            "include_usage": True,
        }
    return orjson.dumps(data)


async def read_whole(reply: UpstreamReply, backend: str) -> bytes:
    try:
        async with asyncio.timeout_at(reply.deadline):
            return await reply.read()
    except (TimeoutError, httpx.TimeoutException):
        raise UpstreamTimeout(f"Upstream '{backend}' did not finish its answer in time.") from None
    except httpx.TransportError as exc:
        raise UpstreamError(
            f"Upstream '{backend}' broke off its answer: {exc.__cause__ or exc}"
        ) from None
    finally:
        await reply.aclose()
