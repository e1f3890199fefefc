"""The Redis stream sink: a batch of audit records becomes one MULTI/EXEC of XADDs, every call
bounded by a timeout; `sluice audit consume` turns the stream into one chained log.

The stream holds records as the pipeline made them (no seq, no prev): the consumer numbers
and chains them in stream order, which is what makes several replicas' records one log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway.audit.encryption import Keyring, stream_aad
from gateway.config.audit import AuditRedis

log = logging.getLogger("sluicegate.audit")
FIELD = b"r"  # each stream entry has one field: the record (or its envelope)


class StreamUnavailable(Exception):
    """Redis did not take the batch (down, refusing, or slower than the timeout)."""


class StreamSink:
    def __init__(self, config: AuditRedis, keys: Keyring | None) -> None:
        self.config = config
        self.keys = keys
        self._timeout_s = config.timeout_ms / 1000
        self._aad = stream_aad(config.stream)
        self._client = aioredis.Redis.from_url(
            config.url,
            socket_timeout=self._timeout_s,
            socket_connect_timeout=self._timeout_s,
            # A pooled connection that died with a restarted Redis fails its first command;
            # one immediate retry on a fresh connection keeps that from counting as an outage.
            retry=Retry(NoBackoff(), retries=1),
            retry_on_error=[aioredis.ConnectionError],
        )
        self._down_until = 0.0  # while Redis is considered down, batches skip it

    def available(self, now: float) -> bool:
        """Whether to try Redis now: always, except for retry_interval_s after a failure."""
        return now >= self._down_until

    def encode(self, batch: list[dict[str, Any]]) -> list[bytes]:
        """The stream payloads of `batch` (CPU work: the writer runs it in a worker thread)."""
        if self.keys is None:
            return [orjson.dumps(record) for record in batch]
        keys = self.keys
        return [keys.seal(orjson.dumps(record), self._aad)[:-1] for record in batch]

    async def send(self, payloads: list[bytes]) -> None:
        """XADD every payload, in order, as one transaction; StreamUnavailable if Redis does not
        confirm it in time (then the batch may or may not be in the stream)."""
        maxlen = self.config.maxlen or None
        try:
            async with asyncio.timeout(self._timeout_s):
                async with self._client.pipeline(transaction=True) as pipe:
                    for payload in payloads:
                        pipe.xadd(
                            self.config.stream,
                            {FIELD: payload},
                            maxlen=maxlen,
                            approximate=True,
                        )
                    await pipe.execute()
        except (TimeoutError, aioredis.RedisError, OSError) as exc:
            self._down_until = time.monotonic() + self.config.retry_interval_s
            raise StreamUnavailable(f"{type(exc).__name__}: {exc}") from None

    async def aclose(self) -> None:
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._client.aclose()
        except (TimeoutError, aioredis.RedisError, OSError):
            pass
