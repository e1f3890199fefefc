"""The request path of the inference endpoints, top to bottom in one place.

auth → body → validate → route → rate limit → input guards → upstream → output guards → relay
(stream or not); the guard stages are in guard_stages.py. Each step raises a GatewayError that
becomes one OpenAI-shaped error response here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
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
from gateway.audit.trail import Trail
from gateway.disconnect import ClientWatch
from gateway.errors import (
    GatewayError,
    InternalError,
    MethodNotAllowed,
    RateLimited,
    RateLimitStoreDown,
    UpstreamError,
    UpstreamTimeout,
)
from gateway.guard_stages import guard_input, guard_output, record_stream_decisions, stream_guard
from gateway.guards.runner import GuardSet
from gateway.ratelimit.accounting import Accounting
from gateway.runtime import Route
from gateway.service import Gateway
from gateway.streaming import SSE_HEADERS, StreamOutcome, relay_stream
from gateway.telemetry.logs import request_context
from gateway.telemetry.tracing import SpanKind, end_request_span, traceparent
from gateway.upstream.interface import Reply
from gateway.usage import StreamUsage, estimate_prompt_tokens, usage_of_body

log = logging.getLogger("sluicegate")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One OpenAI inference endpoint: its path upstream and its request schema."""

    upstream_path: str
    schema: type[BaseModel]
    streams: bool
    name: str


CHAT = Endpoint("/chat/completions", ChatCompletionRequest, True, "chat.completions")
COMPLETIONS = Endpoint("/completions", CompletionRequest, True, "completions")
EMBEDDINGS = Endpoint("/embeddings", EmbeddingRequest, False, "embeddings")


@dataclass(slots=True)
class Call:
    """One request on its way through the pipeline."""

    head: RequestHead
    trail: Trail
    body: bytes = b""
    request: BaseModel | None = None
    route: Route | None = None
    streaming: bool = False
    accounting: Accounting | None = None
    # The request's server span when tracing is on.
    span: Any = None
    # The request's headers (an experiment may be sticky by one of them).
    headers: list[tuple[bytes, bytes]] | None = None
    # The policy's guards (None: no guards) and the request's pseudonyms, if any were made.
    guards: GuardSet | None = None
    pseudonyms: Any = None


# Tracing off: every stage enters this one reusable no-op.
_NO_SPAN: AbstractContextManager[Any] = contextlib.nullcontext()


class InferencePipeline:
    """ASGI app for one inference endpoint."""

    def __init__(self, gateway: Gateway, endpoint: Endpoint) -> None:
        self.gateway = gateway
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        head = read_head(scope)
        audit = self.gateway.audit
        call = Call(head, Trail(audit.config if audit else None, scope, head.request_id))
        call.headers = scope["headers"]
        tracing = self.gateway.tracing
        trace_id = ""
        if tracing is not None:
            parent = {"traceparent": head.traceparent} if head.traceparent else {}
            call.span = tracing.request_span(
                f"{scope['method']} {scope['path']}",
                parent,
                **{"sluice.request_id": head.request_id},
            )
            trace_id = format(call.span.get_span_context().trace_id, "032x")
        context = request_context.set((head.request_id, trace_id))
        try:
            if scope["method"] != "POST":
                raise MethodNotAllowed(
                    f"{scope['method']} is not allowed on {scope['path']}; use POST.",
                    headers={"allow": "POST"},
                )
            await self._handle(call, receive, send)
        except GatewayError as error:
            call.trail.failed(error)
            await send_error(send, error, head.request_id)
        except Exception:
            log.exception("internal error on request %s", head.request_id)
            internal = InternalError(f"Internal gateway error (request {head.request_id}).")
            call.trail.failed(internal)
            await send_error(send, internal, head.request_id)
        finally:
            self.gateway.metrics.observe(call.trail, self.endpoint.name)
            if audit is not None:
                record = call.trail.record()
                if call.trail.shadow is not None:
                    # The answer is out; the record waits for the shadow copy (its timeout).
                    await call.trail.shadow.settle(record)
                audit.submit(record)
            if call.span is not None:
                self._end_span(call)
            request_context.reset(context)

    def _stage(self, call: Call, name: str, kind: SpanKind = SpanKind.INTERNAL) -> Any:
        tracing = self.gateway.tracing
        if call.span is None or tracing is None:
            return _NO_SPAN
        return tracing.stage(call.span, name, kind)

    def _end_span(self, call: Call) -> None:
        trail = call.trail
        usage = trail.usage or {}
        route = call.route
        end_request_span(
            call.span,
            trail.status or 200,
            {
                "gen_ai.request.model": trail.model,
                "sluice.backend": route.upstream.name if route is not None else None,
                "sluice.outcome": trail.outcome,
                "sluice.stream": call.streaming,
                "gen_ai.usage.input_tokens": usage.get("prompt_tokens"),
                "gen_ai.usage.output_tokens": usage.get("completion_tokens"),
            },
        )

    async def _handle(self, call: Call, receive: Receive, send: Send) -> None:
        runtime = self.gateway.runtime
        trail = call.trail
        call.guards = runtime.guards
        with self._stage(call, "auth"):
            principal = runtime.keyring.authenticate(call.head.authorization)
        with self._stage(call, "parse"):
            call.body = await read_body(receive, call.head, runtime.policy.server.max_body_bytes)
            call.request = request = parse_request(self.endpoint.schema, call.body)
        model: str = request.model  # type: ignore[attr-defined]
        call.streaming = self.endpoint.streams and bool(getattr(request, "stream", False))
        trail.principal, trail.model, trail.stream = principal, model, call.streaming
        trail.request_body(call.body, getattr(request, "user", None))
        with self._stage(call, "route"):
            call.route = route = runtime.route(model)
            principal.check_model(model)
        trail.route = {"backend": route.upstream.name, "upstream_model": route.upstream_model}
        limiter = runtime.limiter
        if limiter is None:
            await self._guard_input(call)
            await self._forward(call, receive, send)
            return
        estimate = partial(estimate_prompt_tokens, request)
        try:
            with self._stage(call, "ratelimit"):
                admission = await limiter.admit(principal, model, call.head.request_id, estimate)
        except (RateLimited, RateLimitStoreDown):
            trail.ratelimit = "refused"
            raise
        trail.ratelimit = "store_failed" if admission.store_failed else "admitted"
        options = getattr(request, "stream_options", None)
        call.accounting = Accounting(
            limiter, admission, call.streaming, bool(options and options.include_usage)
        )
        try:
            await self._guard_input(call)
            await self._forward(call, receive, send)
        except GatewayError as error:
            error.headers = {**admission.header_map(), **error.headers}
            raise
        finally:
            # Frees concurrency slots on every path: errors, timeouts, disconnects.
            await asyncio.shield(call.accounting.settle_unused())

    async def _forward(self, call: Call, receive: Receive, send: Send) -> None:
        route, accounting, trail, head = call.route, call.accounting, call.trail, call.head
        assert route is not None
        asks_usage = accounting is not None and accounting.asks_upstream_for_usage
        extra_headers = accounting.headers if accounting is not None else []
        router = route.router
        principal = trail.principal
        selection = router.select(
            trail.user, principal.key_id if principal else None, call.headers, head.request_id
        )
        if selection.arm_header is not None:
            trail.experiment, trail.arm = selection.experiment, selection.arm
            extra_headers = [*extra_headers, selection.arm_header]
        watch = ClientWatch(receive)
        try:
            # The client span lasts until the upstream's answer is complete (streams: relayed).
            with self._stage(call, "upstream", SpanKind.CLIENT) as span:
                parent = traceparent(span) if span is not None else None
                reply = await router.open(
                    self.endpoint.upstream_path,
                    call.body,
                    head.request_id,
                    parent,
                    trail,
                    selection,
                    ask_usage=asks_usage,
                    streaming=call.streaming,
                )
                if call.streaming:
                    await self._relay(call, reply, send, extra_headers)
                    return
                content = await read_whole(reply, reply.backend)
            usage = usage_of_body(content)
            if accounting is not None:
                await accounting.settle_usage(usage)
            if call.guards is not None:
                metrics, stage = self.gateway.metrics, partial(self._stage, call)
                content, reply_body = await guard_output(call, content, metrics, stage)
                trail.answered(content, usage)
                content = reply_body
            else:
                trail.answered(content, usage)
            content_type = reply.content_type.encode()
            await send_body(send, 200, content, head.request_id, content_type, extra_headers)
        except GatewayError as error:
            if selection.arm is not None:
                error.headers = {**error.headers, "x-sluice-arm": selection.arm}
            raise
        except asyncio.CancelledError:
            if not watch.absorb_cancel():
                raise
            trail.outcome = "client_disconnected"
            trail.status = trail.status or 499
            log.debug("client went away; request %s cancelled upstream", head.request_id)
        finally:
            watch.stop()

    async def _relay(
        self, call: Call, reply: Reply, send: Send, extra: list[tuple[bytes, bytes]]
    ) -> None:
        accounting, trail = call.accounting, call.trail
        assert call.route is not None
        headers = [*SSE_HEADERS, (b"x-request-id", call.head.request_id.encode()), *extra]
        usage = accounting.usage if accounting is not None else None
        if usage is None:
            usage = StreamUsage(strip=False)  # only to read what the upstream reports
        settle = accounting.settle_stream if accounting is not None else None
        trail.status = 200
        guarded = stream_guard(call) if call.guards is not None else None
        try:
            outcome = await relay_stream(
                reply, send, headers, reply.backend, usage, settle, trail, guarded
            )
        finally:
            if guarded is not None:
                record_stream_decisions(call, guarded, self.gateway.metrics)
        trail.usage = usage.usage
        if outcome is StreamOutcome.UPSTREAM_FAILED:
            trail.outcome = "upstream_failed"
        elif outcome is StreamOutcome.BLOCKED:
            trail.outcome = "content_filter"

    async def _guard_input(self, call: Call) -> None:
        if call.guards is not None:
            await guard_input(call, self.gateway.metrics, partial(self._stage, call))


async def read_whole(reply: Reply, backend: str) -> bytes:
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
