"""An OpenAI-compatible server reached over HTTP: pooled connections, timeouts, one attempt.

Requests are httpx `Request`s handed straight to the aiohttp transport (URLs parsed once per
upstream); bench/README.md has the measurements behind that choice. Retries are the router's
(gateway.routing.router): a failure worth retrying is raised as `Retryable`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from gateway.config.schema import OpenAIBackend
from gateway.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from gateway.upstream.interface import Retryable
from gateway.upstream.status import RETRYABLE_STATUSES, error_for_status


@dataclass(slots=True)
class UpstreamReply:
    """A 2xx answer whose body has not been read yet."""

    response: httpx.Response
    deadline: float
    backend: str

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
    """One server of a `kind: openai` backend (its `base_url`, or one of its replicas)."""

    def __init__(
        self,
        name: str,
        config: OpenAIBackend,
        env: Mapping[str, str],
        base_url: str | None = None,
    ) -> None:
        self.name = name
        self.config = config
        url = base_url or config.base_url
        assert url is not None, "a replica needs a base_url"
        self.base_url = url
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

    def url(self, path: str) -> httpx.URL:
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = httpx.URL(self.base_url + path)
        return url

    async def open(
        self,
        path: str,
        body: bytes,
        request_id: str,
        traceparent: str | None = None,
        deadline: float | None = None,
    ) -> UpstreamReply:
        """POST `body`; returns once a 2xx status and headers arrived, else raises."""
        if deadline is None:
            deadline = asyncio.get_running_loop().time() + self.config.timeouts.total_s
        try:
            async with asyncio.timeout_at(deadline):
                response = await self._attempt(path, body, request_id, traceparent)
        except TimeoutError:
            raise UpstreamTimeout(
                f"Upstream '{self.name}' did not answer within "
                f"{self.config.timeouts.total_s:g} s (backends.{self.name}.timeouts.total_s)."
            ) from None
        return UpstreamReply(response, deadline, self.name)

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
            raise Retryable(error)
        raise error

    def _transport_error(self, exc: httpx.TransportError) -> Exception:
        cause = exc.__cause__
        where = f"Upstream '{self.name}' ({self.base_url})"
        if isinstance(cause, aiohttp.ClientConnectorError) or isinstance(exc, httpx.ConnectError):
            return Retryable(
                UpstreamUnavailable(f"{where} refused the connection or is unreachable.")
            )
        if isinstance(cause, aiohttp.ServerDisconnectedError):
            return Retryable(UpstreamError(f"{where} closed the connection before answering."))
        if isinstance(cause, aiohttp.SocketTimeoutError) or isinstance(exc, httpx.ReadTimeout):
            return UpstreamTimeout(
                f"{where} sent nothing for {self.config.timeouts.read_s:g} s "
                f"(backends.{self.name}.timeouts.read_s)."
            )
        if isinstance(exc, httpx.ConnectTimeout):
            return Retryable(
                UpstreamTimeout(
                    f"{where} did not accept a connection within "
                    f"{self.config.timeouts.connect_s:g} s."
                )
            )
        return UpstreamError(f"{where} failed: {type(cause or exc).__name__}: {cause or exc}")

    async def get(self, url: httpx.URL, timeout_s: float) -> tuple[int, bytes]:
        """GET `url` with this upstream's headers (health checks); raises on transport errors
        and TimeoutError."""
        request = httpx.Request(
            "GET",
            url,
            headers=self._headers,
            extensions={"timeout": {"connect": timeout_s, "read": timeout_s, "pool": timeout_s}},
        )
        async with asyncio.timeout(timeout_s):
            response = await self._transport.handle_async_request(request)
            try:
                return response.status_code, await response.aread()
            finally:
                await response.aclose()

    async def probe(self, timeout_s: float = 2.0, path: str = "/models") -> str | None:
        """None when the upstream answers `GET <path>` with anything below 500, else why not."""
        try:
            status, _ = await self.get(self.url(path), timeout_s)
        except TimeoutError:
            return f"no answer within {timeout_s:g} s"
        except httpx.TransportError as exc:
            return f"unreachable: {type(exc.__cause__ or exc).__name__}"
        if status >= 500:
            return f"HTTP {status}"
        return None

    async def aclose(self) -> None:
        await self._transport.aclose()
