"""One admitted request's bill: the rate-limit headers it answers with, and how to settle the
tokens it really used (from the response body, or from the stream's usage event)."""

from __future__ import annotations

from gateway.ratelimit.limiter import Admission, Limiter
from gateway.usage import StreamUsage, usage_total


class Accounting:
    __slots__ = ("admission", "limiter", "usage")

    def __init__(
        self, limiter: Limiter, admission: Admission, streaming: bool, client_wants_usage: bool
    ) -> None:
        self.limiter = limiter
        self.admission = admission
        self.usage: StreamUsage | None = None
        if streaming and admission.counts_tokens:
            self.usage = StreamUsage(strip=not client_wants_usage)

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return self.admission.headers

    @property
    def asks_upstream_for_usage(self) -> bool:
        """True when the gateway, not the client, needs `stream_options.include_usage`."""
        return self.usage is not None and self.usage.strip

    async def settle_stream(self) -> None:
        total = self.usage.estimate(self.admission.prompt_tokens) if self.usage else None
        await self.limiter.settle(self.admission, total)

    async def settle_usage(self, usage: dict[str, int] | None) -> None:
        """Settle a whole answer with the usage its body reported."""
        await self.limiter.settle(self.admission, usage_total(usage))

    async def settle_unused(self) -> None:
        """Free what the request holds when it ended without an answer (safe to repeat)."""
        await self.limiter.settle(self.admission, None)
