"""The request path of the inference endpoints, top to bottom in one place.

auth → body → validate → route → upstream → relay (stream or not). Each step raises a
GatewayError that becomes one OpenAI-shaped error response here and nowhere else.
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
import orjson
from pydantic import BaseModel

from gateway.api.schemas import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from gateway.api.validation import parse_request, strict_json
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
    ContentFiltered,
    GatewayError,
    InternalError,
    MethodNotAllowed,
    RateLimited,
    RateLimitStoreDown,
    UpstreamError,
    UpstreamTimeout,
)
from gateway.guards.base import GuardContext, Stage, TextSlot
from gateway.guards.pseudonyms import Pseudonyms
from gateway.guards.runner import GuardSet
from gateway.guards.stream import GuardedStream, merged_decisions
from gateway.guards.texts import request_slots, response_slots
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
                content, reply_body = await self._guard_output(call, content)
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
        guarded = self._stream_guard(call)
        try:
            outcome = await relay_stream(
                reply, send, headers, reply.backend, usage, settle, trail, guarded
            )
        finally:
            if guarded is not None:
                self._stream_decisions(call, guarded)
        trail.usage = usage.usage
        if outcome is StreamOutcome.UPSTREAM_FAILED:
            trail.outcome = "upstream_failed"
        elif outcome is StreamOutcome.BLOCKED:
            trail.outcome = "content_filter"

    # -- guards ----------------------------------------------------------------------------
    def _guard_span(self, call: Call) -> Any:
        if call.span is None:
            return None
        return lambda name: self._stage(call, f"guard.{name}")

    async def _guard_input(self, call: Call) -> None:
        """Run the input guards; a modified request goes upstream (and to the audit) rewritten."""
        guards = call.guards
        if guards is None:
            return
        call.pseudonyms = Pseudonyms()
        if not guards.input:
            return
        trail = call.trail
        data = strict_json(call.body)
        ctx = self._guard_context(call, "input", request_slots(data))
        ctx.metadata["request"] = data
        records = trail.guards = trail.guards or []
        try:
            with self._stage(call, "guards.input"):
                await guards.run(ctx, records, self.gateway.metrics.guard, self._guard_span(call))
        except ContentFiltered:
            trail.withhold_prompt()
            raise
        if ctx.modified:
            call.body = orjson.dumps(data)
            trail.request_body(call.body, trail.user)

    async def _guard_output(self, call: Call, content: bytes) -> tuple[bytes, bytes]:
        """Output guards on a whole answer: (the answer for the audit, the answer for the client:
        the same with pseudonyms restored)."""
        guards, pseudonyms = call.guards, call.pseudonyms
        assert guards is not None
        restore = guards.restores and pseudonyms is not None and len(pseudonyms) > 0
        if not guards.output and not restore:
            return content, content
        try:
            data = orjson.loads(content)
        except orjson.JSONDecodeError:
            return content, content
        if not isinstance(data, dict):
            return content, content
        slots = response_slots(data)
        if guards.output:
            ctx = self._guard_context(call, "output", slots)
            records = call.trail.guards = call.trail.guards or []
            with self._stage(call, "guards.output"):
                await guards.run(ctx, records, self.gateway.metrics.guard, self._guard_span(call))
            if ctx.modified:
                content = orjson.dumps(data)
        if not restore:
            return content, content
        changed = False
        for slot in slots:
            restored = pseudonyms.restore(slot.text)
            if restored != slot.text:
                slot.write(restored)
                changed = True
        return content, (orjson.dumps(data) if changed else content)

    def _stream_guard(self, call: Call) -> GuardedStream | None:
        guards, pseudonyms = call.guards, call.pseudonyms
        if guards is None:
            return None
        restore = guards.restores and pseudonyms is not None and len(pseudonyms) > 0
        if not guards.output and not restore:
            return None
        call.trail.text_from_guards()
        ctx = self._guard_context(call, "output", [])
        restorer = pseudonyms.restorer if restore else None
        return GuardedStream(guards.output, ctx, restorer, call.trail.response_text)

    def _stream_decisions(self, call: Call, guarded: GuardedStream) -> None:
        records = call.trail.guards = call.trail.guards or []
        metrics = self.gateway.metrics
        for decision in merged_decisions(guarded.guards, guarded.ctx.decisions):
            records.append(decision.record("output"))
            metrics.guard_decisions.labels(decision.guard, "output", decision.action).inc()

    def _guard_context(self, call: Call, stage: Stage, slots: list[TextSlot]) -> GuardContext:
        trail = call.trail
        return GuardContext(
            stage,
            slots,
            model=trail.model,
            principal=trail.principal,
            request_id=call.head.request_id,
            pseudonyms=call.pseudonyms,
        )


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
