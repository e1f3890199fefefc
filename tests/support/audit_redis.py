"""The real Redis the audit stream tests use (DB 10, a stream name of their own per test), and a
TCP proxy in front of it that a test can take down and bring back to play a Redis outage."""

from __future__ import annotations

import asyncio
import contextlib

REDIS_DB = 10
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"


class RedisProxy:
    """Forwards 127.0.0.1:`port` to the real Redis; `stop` refuses new connections and cuts
    the open ones, as a Redis that went away; `start` again brings it back on the same port."""

    def __init__(self, port: int, upstream_port: int = 6379) -> None:
        self.port = port
        self.upstream_port = upstream_port
        self.url = f"redis://127.0.0.1:{port}/{REDIS_DB}"
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> RedisProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            redis_r, redis_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_w.transport.abort()
            return
        self._writers.update((client_w, redis_w))
        await asyncio.gather(_pipe(client_r, redis_w), _pipe(redis_r, client_w))
        self._writers.difference_update((client_w, redis_w))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()
