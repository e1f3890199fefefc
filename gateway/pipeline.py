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
from gateway.ratelimit.limiter import Admission, Limiter
from gateway.ratelimit.usage import StreamUsage, estimate_prompt_tokens, usage_of_body
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
        try:
            await self._forward(receive, send, head, request, route, body, (limiter, admission))
        except GatewayError as error:
            error.headers = {**admission.header_map(), **error.headers}
            raise
        finally:
            # Frees concurrency slots on every path: errors, timeouts, disconnects.
            await asyncio.shield(limiter.settle(admission, None))

    async def _forward(
        self,
        receive: Receive,
        send: Send,
        head: RequestHead,
        request: BaseModel,
        route: Route,
        body: bytes,
        limits: tuple[Limiter, Admission] | None,
    ) -> None:
        streaming = self.endpoint.streams and bool(getattr(request, "stream", False))
        usage: StreamUsage | None = None
        extra_headers: list[tuple[bytes, bytes]] = []
        if limits is not None:
            extra_headers = limits[1].headers
            if streaming and limits[1].counts_tokens:
                options = getattr(request, "stream_options", None)
                usage = StreamUsage(strip=not (options and options.include_usage))
        body = upstream_body(body, route, ask_usage=usage is not None and usage.strip)
        watch = ClientWatch(receive)
        try:
            reply = await route.upstream.open(self.endpoint.upstream_path, body, head.request_id)
            if streaming:
                headers = [*SSE_HEADERS, (b"x-request-id", head.request_id.encode())]
                headers += extra_headers
                settle = None
                if limits is not None:
                    limiter, admission = limits
                    charged = usage.estimate if usage is not None else None

                    async def settle() -> None:
                        total = charged(admission.prompt_tokens) if charged else None
                        await limiter.settle(admission, total)

                await relay_stream(reply, send, headers, route.upstream.name, usage, settle)
            else:
                content = await read_whole(reply, route.upstream.name)
                if limits is not None and limits[1].counts_tokens:
                    await limits[0].settle(limits[1], usage_of_body(content))
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
