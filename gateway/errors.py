"""The gateway's exception hierarchy and its one mapping to OpenAI error bodies.

Every failure a client can see is a `GatewayError`; `error_body` renders it the way OpenAI does.
"""

from __future__ import annotations

import orjson


class GatewayError(Exception):
    """A failure with an HTTP status and an OpenAI-shaped error body."""

    status_code: int = 500
    error_type: str = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def body(self) -> bytes:
        return error_body(self.message, self.error_type, self.param, self.code)


class InvalidRequest(GatewayError):
    status_code = 400
    error_type = "invalid_request_error"


class AuthenticationFailed(GatewayError):
    status_code = 401
    error_type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status_code = 403
    error_type = "permission_error"
    code = "model_not_allowed"


class NotFound(GatewayError):
    status_code = 404
    error_type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class MethodNotAllowed(GatewayError):
    status_code = 405
    error_type = "invalid_request_error"
    code = "method_not_allowed"


class PayloadTooLarge(GatewayError):
    status_code = 413
    error_type = "invalid_request_error"
    code = "request_too_large"


class RateLimited(GatewayError):
    status_code = 429
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"


class RateLimitStoreDown(GatewayError):
    """The rate-limit store cannot answer and the policy says to fail closed."""

    status_code = 503
    error_type = "server_error"
    code = "rate_limit_store_unavailable"


class ContentFiltered(GatewayError):
    """A guard blocked the request or the answer (the guard and the reason are in the message)."""

    status_code = 400
    error_type = "invalid_request_error"
    code = "content_filter"


class GuardUnavailable(GatewayError):
    """A guard failed or timed out and the policy says to fail closed."""

    status_code = 503
    error_type = "server_error"
    code = "guard_unavailable"


class UnsupportedMediaType(GatewayError):
    status_code = 415
    error_type = "invalid_request_error"
    code = "unsupported_media_type"


class UpstreamError(GatewayError):
    """The upstream failed or answered something we cannot relay as-is."""

    status_code = 502
    error_type = "upstream_error"
    code = "upstream_error"


class UpstreamUnavailable(UpstreamError):
    status_code = 503
    code = "upstream_unavailable"


class UpstreamTimeout(UpstreamError):
    status_code = 504
    code = "upstream_timeout"


class RelayedError(GatewayError):
    """An upstream's own client-side error (400, 404, 422, 429...), relayed with its body."""

    error_type = "invalid_request_error"

    def __init__(
        self, status_code: int, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"upstream answered HTTP {status_code}", headers=headers)
        self.status_code = status_code
        self._body = body

    def body(self) -> bytes:
        return self._body


class InternalError(GatewayError):
    status_code = 500
    error_type = "server_error"
    code = "internal_error"


def error_body(
    message: str, error_type: str, param: str | None = None, code: str | None = None
) -> bytes:
    return orjson.dumps(
        {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    )
