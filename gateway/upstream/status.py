"""What an upstream's HTTP status means for the client: relay it, retry it, or report a 5xx.

Pure functions over status codes and bodies, so the mapping is testable without a server.
"""

from __future__ import annotations

import orjson

from gateway.errors import (
    GatewayError,
    RelayedError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
    error_body,
)

RETRYABLE_STATUSES = frozenset({502, 503, 504})
# Client mistakes the upstream caught (context too long, unknown parameter...): the client
# should see them as they are, OpenAI body included.
RELAYED_STATUSES = frozenset({400, 404, 409, 413, 415, 422, 429})


def upstream_message(body: bytes, limit: int = 500) -> str:
    """The upstream's own error message if it sent an OpenAI-shaped body, else its text."""
    try:
        data = orjson.loads(body)
        message = data["error"]["message"]
        if isinstance(message, str):
            return message[:limit]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        pass
    return body[:limit].decode("utf-8", "replace").strip() or "(empty body)"


def is_openai_error_body(body: bytes) -> bool:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(data, dict) and isinstance(data.get("error"), dict)


def error_for_status(
    backend: str, status: int, body: bytes, retry_after: str | None = None
) -> GatewayError:
    """The error the client gets for a non-2xx upstream answer."""
    if status in RELAYED_STATUSES:
        headers = {"retry-after": retry_after} if retry_after else None
        if is_openai_error_body(body):
            return RelayedError(status, body, headers)
        message = (
            f"Upstream '{backend}' rejected the request (HTTP {status}): {upstream_message(body)}"
        )
        return RelayedError(
            status, error_body(message, "invalid_request_error", None, "upstream_rejected"), headers
        )
    message = upstream_message(body)
    if status in (401, 403):
        return UpstreamError(
            f"Upstream '{backend}' rejected the gateway's credentials (HTTP {status}); "
            f"check backends.{backend}.api_key_env. Upstream said: {message}",
            code="upstream_auth_failed",
        )
    if status == 503:
        return UpstreamUnavailable(f"Upstream '{backend}' is unavailable (HTTP 503): {message}")
    if status == 504:
        return UpstreamTimeout(f"Upstream '{backend}' timed out (HTTP 504): {message}")
    return UpstreamError(f"Upstream '{backend}' failed (HTTP {status}): {message}")
