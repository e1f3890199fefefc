"""Relays an upstream SSE stream to the client chunk by chunk, ending it cleanly on every failure.

Only whole events are forwarded, so a failure mid-event never leaves the client half a JSON
object: it gets an `error` event and `data: [DONE]`. A client disconnect cancels the upstream.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import httpx

from gateway.asgi import Send
from gateway.errors import GatewayError, UpstreamError, UpstreamTimeout, error_body
from gateway.guards.stream import StreamBlocked
from gateway.upstream.interface import Reply
from gateway.usage import StreamUsage

log = logging.getLogger("sluicegate.streaming")

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
DONE_EVENT = b"data: [DONE]\n\n"
# An upstream that never ends an event is not speaking SSE; stop holding its bytes back.
MAX_PENDING_BYTES = 1 << 20


class StreamObserver(Protocol):
    def stream_chunk(self, data: bytes) -> None: ...


class StreamTransform(Protocol):
    """Rewrites whole events on their way out (output guards); may end the stream early by
    raising StreamBlocked with the last bytes to send."""

    async def events(self, data: bytes) -> bytes: ...

    async def finish(self) -> bytes: ...


class StreamOutcome(enum.Enum):
    COMPLETED = "completed"
    UPSTREAM_FAILED = "upstream_failed"
    BLOCKED = "content_filter"


def split_events(data: bytes) -> int:
    """Index just past the last complete SSE event in `data` (0 if none is complete)."""
    end = data.rfind(b"\n\n")
    end = end + 2 if end >= 0 else 0
    crlf = data.rfind(b"\r\n\r\n")
    if crlf >= 0 and crlf + 4 > end:
        end = crlf + 4
    return end


def error_event(error: GatewayError) -> bytes:
    payload = error_body(error.message, error.error_type, error.param, error.code)
    return b"event: error\ndata: " + payload + b"\n\n" + DONE_EVENT


async def relay_stream(
    reply: Reply,
    send: Send,
    headers: list[tuple[bytes, bytes]],
    backend: str,
    usage: StreamUsage | None = None,
    before_done: Callable[[], Awaitable[None]] | None = None,
    observer: StreamObserver | None = None,
    transform: StreamTransform | None = None,
) -> StreamOutcome:
    """Relay until the upstream ends or fails; a client disconnect arrives as a cancellation.

    The upstream's `[DONE]` is held back and sent last, after `before_done` (which settles the
    request's token usage), so the client's next request already sees the charge. A
    `transform` (output guards) rewrites events first and may end the stream as blocked.
    """
    blocked = False
    try:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        failure = await _pump(reply, send, backend, usage, observer, transform)
    except StreamBlocked as stop:
        failure, blocked = None, True
        await _send_out(send, stop.tail, usage, observer)
    except Exception:
        # The response has started: the only honest way left to fail is inside the stream.
        log.exception("stream relay from %s failed", backend)
        failure = UpstreamError(f"The gateway failed while relaying the stream from '{backend}'.")
    finally:
        await reply.aclose()
    if failure is not None:
        log.warning("stream from %s ended early: %s", backend, failure.message)
        await send({"type": "http.response.body", "body": error_event(failure), "more_body": False})
        return StreamOutcome.UPSTREAM_FAILED
    if before_done is not None:
        await before_done()
    await send({"type": "http.response.body", "body": DONE_EVENT, "more_body": False})
    return StreamOutcome.BLOCKED if blocked else StreamOutcome.COMPLETED


async def _send_out(
    send: Send, out: bytes, usage: StreamUsage | None, observer: StreamObserver | None
) -> None:
    if usage is not None:
        out = usage.feed(out)
    if out:
        await send({"type": "http.response.body", "body": out, "more_body": True})
        if observer is not None:
            observer.stream_chunk(out)


async def _pump(
    reply: Reply,
    send: Send,
    backend: str,
    usage: StreamUsage | None,
    observer: StreamObserver | None,
    transform: StreamTransform | None = None,
) -> GatewayError | None:
    """Forward whole events up to `[DONE]`; returns why the stream failed, or None.

    StreamBlocked from `transform` propagates: the caller ends the stream."""
    pending = b""
    try:
        async with asyncio.timeout_at(reply.deadline):
            async for chunk in reply.aiter_raw():
                data = pending + chunk if pending else chunk
                end = split_events(data)
                if end == 0 and len(data) < MAX_PENDING_BYTES:
                    pending = data
                    continue
                if end == 0:
                    end = len(data)
                out, pending = data[:end], data[end:]
                done_at = done_event_at(out) if b"[DONE]" in out else -1
                if done_at >= 0:
                    out = out[:done_at]
                if transform is not None:
                    out = await transform.events(out)
                    if done_at >= 0:
                        out += await transform.finish()
                await _send_out(send, out, usage, observer)
                if done_at >= 0:
                    return None
    except GatewayError as error:  # an in-process backend names its own failure
        return error
    except TimeoutError:
        return UpstreamTimeout(f"Upstream '{backend}' did not finish the stream in time.")
    except httpx.TimeoutException:
        return UpstreamTimeout(f"Upstream '{backend}' stopped sending mid-stream.")
    except httpx.TransportError as exc:
        return UpstreamError(f"Upstream '{backend}' broke the stream: {exc.__cause__ or exc}")
    if pending.lstrip().startswith(b"data: [DONE]"):
        # Some servers omit the blank line after the last event.
        if transform is not None:
            await _send_out(send, await transform.finish(), usage, observer)
        return None
    if pending.strip():
        return UpstreamError(f"Upstream '{backend}' ended the stream in the middle of an event.")
    return UpstreamError(f"Upstream '{backend}' ended the stream without [DONE].")


def done_event_at(out: bytes) -> int:
    """Where the `[DONE]` event starts in whole events `out`, or -1.

    Only at an event boundary: a model may well write the text "data: [DONE]" itself, and
    inside a JSON payload it can never follow a blank line (JSON escapes newlines).
    """
    if out.startswith(b"data: [DONE]"):
        return 0
    at = out.find(b"\n\ndata: [DONE]")
    if at >= 0:
        return at + 2
    at = out.find(b"\r\n\r\ndata: [DONE]")
    return at + 4 if at >= 0 else -1
