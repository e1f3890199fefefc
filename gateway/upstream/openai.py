"""An OpenAI-compatible upstream reached over HTTP: pooled connections, timeouts, retries.

Requests are httpx `Request`s handed straight to the aiohttp transport (URLs parsed once per
upstream); bench/README.md has the measurements behind that choice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from gateway.config.schema import OpenAIBackend
from gateway.errors import GatewayError, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from gateway.upstream.status import RETRYABLE_STATUSES, error_for_status


class _Retryable(Exception):
    """Raised inside an attempt that may be tried again; carries the error to give up with."""

    def __init__(self, error: GatewayError) -> None:
        self.error = error


@dataclass(slots=True)
class UpstreamReply:
    """A 2xx answer whose body has not been read yet."""

    response: httpx.Response
    deadline: float

    @property
    def content_type(self) -> str:
        return self.response.headers.get("content-type", "application/json")

    async def read(self) -> bytes:
        return await self.response.aread()

    def aiter_raw(self) -> AsyncIterator[bytes]:
        return self.response.aiter_raw()

    async def aclose(self) -> None:
        await self.response.aclose()


class OpenAIUpstream:
    def __init__(self, name: str, config: OpenAIBackend, env: Mapping[str, str]) -> None:
        self.name = name
        self.config = config
        self._urls: dict[str, httpx.URL] = {}
        headers = {"content-type": "application/json", "accept-encoding": "identity"}
        headers.update({k.lower(): v for k, v in config.headers.items()})
        self.api_key = env[config.api_key_env] if config.api_key_env else None
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        self._headers = headers
        t = config.timeouts
        self._timeouts = {
            "connect": t.connect_s,
            "read": t.read_s,
            "write": t.read_s,
            "pool": t.connect_s,
        }
        self._transport = AiohttpTransport(
            limits=httpx.Limits(max_connections=config.max_connections, keepalive_expiry=60.0)
        )
        self._wait = wait_random_exponential(
            multiplier=config.retries.backoff_initial_s, max=config.retries.backoff_max_s
        )

    def url(self, path: str) -> httpx.URL:
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = httpx.URL(self.config.base_url + path)
        return url

    async def open(
        self, path: str, body: bytes, request_id: str, traceparent: str | None = None
    ) -> UpstreamReply:
        """POST `body`; returns once a 2xx status and headers arrived, else raises GatewayError."""
        deadline = asyncio.get_running_loop().time() + self.config.timeouts.total_s
        try:
            async with asyncio.timeout_at(deadline):
                try:
                    response = await self._attempt(path, body, request_id, traceparent)
                except _Retryable as failure:
                    if self.config.retries.attempts == 1:
                        raise failure.error from None
                    response = await self._retry(path, body, request_id, traceparent)
        except TimeoutError:
            raise UpstreamTimeout(
                f"Upstream '{self.name}' did not answer within "
                f"{self.config.timeouts.total_s:g} s (backends.{self.name}.timeouts.total_s)."
            ) from None
        return UpstreamReply(response, deadline)

    async def _retry(
        self, path: str, body: bytes, request_id: str, traceparent: str | None
    ) -> httpx.Response:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.config.retries.attempts - 1),
            wait=self._wait,
            retry=retry_if_exception_type(_Retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    # The first attempt failed outside this loop: back off before this one too.
                    if attempt.retry_state.attempt_number == 1:
                        await asyncio.sleep(self._wait(attempt.retry_state))
                    return await self._attempt(path, body, request_id, traceparent)
        except _Retryable as failure:
            raise failure.error from None
        raise AssertionError("unreachable: tenacity either returns or reraises")

    async def _attempt(
        self, path: str, body: bytes, request_id: str, traceparent: str | None
    ) -> httpx.Response:
        headers = dict(self._headers)
        headers["x-request-id"] = request_id
        if traceparent is not None:
            headers["traceparent"] = traceparent
        request = httpx.Request(
            "POST",
            self.url(path),
            headers=headers,
            content=body,
            extensions={"timeout": self._timeouts},
        )
        try:
            response = await self._transport.handle_async_request(request)
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from None
        if response.status_code < 300:
            return response
        error_body = await response.aread()
        await response.aclose()
        error = error_for_status(
            self.name, response.status_code, error_body, response.headers.get("retry-after")
        )
        if response.status_code in RETRYABLE_STATUSES:
            raise _Retryable(error)
        raise error

    def _transport_error(self, exc: httpx.TransportError) -> Exception:
        cause = exc.__cause__
        where = f"Upstream '{self.name}' ({self.config.base_url})"
        if isinstance(cause, aiohttp.ClientConnectorError) or isinstance(exc, httpx.ConnectError):
            return _Retryable(
                UpstreamUnavailable(f"{where} refused the connection or is unreachable.")
            )
        if isinstance(cause, aiohttp.ServerDisconnectedError):
            return _Retryable(UpstreamError(f"{where} closed the connection before answering."))
        if isinstance(cause, aiohttp.SocketTimeoutError) or isinstance(exc, httpx.ReadTimeout):
            return UpstreamTimeout(
                f"{where} sent nothing for {self.config.timeouts.read_s:g} s "
                f"(backends.{self.name}.timeouts.read_s)."
            )
        if isinstance(exc, httpx.ConnectTimeout):
            return _Retryable(
                UpstreamTimeout(
                    f"{where} did not accept a connection within "
                    f"{self.config.timeouts.connect_s:g} s."
                )
            )
        return UpstreamError(f"{where} failed: {type(cause or exc).__name__}: {cause or exc}")

    async def probe(self, timeout_s: float = 2.0) -> str | None:
        """None when the upstream answers `GET /models` with anything below 500, else why not."""
        request = httpx.Request(
            "GET",
            self.url("/models"),
            headers=self._headers,
            extensions={"timeout": {"connect": timeout_s, "read": timeout_s, "pool": timeout_s}},
        )
        try:
            async with asyncio.timeout(timeout_s):
                response = await self._transport.handle_async_request(request)
                await response.aread()
                await response.aclose()
        except (httpx.TransportError, TimeoutError) as exc:
            return f"unreachable: {type(exc.__cause__ or exc).__name__}"
        if response.status_code >= 500:
            return f"HTTP {response.status_code}"
        return None

    async def aclose(self) -> None:
        await self._transport.aclose()
