"""The few ASGI primitives the hot path needs: header scan, bounded body read, plain responses.

Endpoints on the request path are raw ASGI callables; these keep them short and allocation-light.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import GatewayError, InvalidRequest, PayloadTooLarge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
JSON = b"application/json"


@dataclass(slots=True)
class RequestHead:
    request_id: str
    authorization: bytes | None
    content_length: int | None
    # W3C trace context of the caller, read only when tracing is on.
    traceparent: str | None = None


def read_head(scope: Scope) -> RequestHead:
    """One pass over the headers for what every endpoint needs."""
    authorization = request_id = length = traceparent = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value
        elif name == b"x-request-id":
            request_id = value
        elif name == b"content-length":
            length = value
        elif name == b"traceparent":
            traceparent = value
    if request_id is not None and _SANE_REQUEST_ID.fullmatch(request_id):
        rid = request_id.decode("ascii")
    else:
        rid = "req_" + secrets.token_hex(12)
    content_length = int(length) if length is not None and length.isdigit() else None
    parent = traceparent.decode("latin-1") if traceparent is not None else None
    return RequestHead(rid, authorization, content_length, parent)


async def read_body(receive: Receive, head: RequestHead, limit_bytes: int) -> bytes:
    if head.content_length is not None and head.content_length > limit_bytes:
        raise _too_large(limit_bytes)
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit_bytes:
            raise _too_large(limit_bytes)
        return body
    parts = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InvalidRequest("The client disconnected while sending the body.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit_bytes:
            raise _too_large(limit_bytes)
        parts.append(chunk)
    return b"".join(parts)


def _too_large(limit_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The request body is larger than this gateway accepts ({limit_bytes} bytes; "
        "server.max_body_bytes in the policy)."
    )


async def send_body(
    send: Send,
    status: int,
    body: bytes,
    request_id: str,
    content_type: bytes = JSON,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    if extra_headers:
        headers.extend(extra_headers)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_error(send: Send, error: GatewayError, request_id: str) -> None:
    extra = [(k.encode(), v.encode()) for k, v in error.headers.items()] if error.headers else None
    await send_body(send, error.status_code, error.body(), request_id, JSON, extra)
