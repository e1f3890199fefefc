"""Writes audit records off the request path: a bounded queue and one task that hands batches
to the sink: the segment files, or a Redis stream that spills to them while Redis is down."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from gateway.audit.chains import worker_folder
from gateway.audit.encryption import Keyring
from gateway.audit.segment_log import SegmentLog
from gateway.audit.stream_sink import StreamSink, StreamUnavailable
from gateway.config.audit import AuditConfig

log = logging.getLogger("sluicegate.audit")
BATCH = 1024
_STOP: dict[str, Any] = {}  # queued by aclose(): everything before it is written, then stop


class AuditWriter:
    def __init__(self, config: AuditConfig, key: bytes | None, keys: Keyring | None = None) -> None:
        self.config = config
        self.key = key
        self.dropped = 0
        self.written = 0
        # Records that went to the file log because the Redis stream did not take them.
        self.spilled = 0
        self.files = SegmentLog(config, key, keys)
        self.stream = StreamSink(config.redis, keys) if config.sink == "redis_stream" else None
        self._spilling = False
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(config.queue_size)
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    def write_as_worker(self, index: int) -> None:
        """Before `start`: write (and spill) to worker `index`'s own chain in its subfolder of
        audit.dir, so that the workers of one `sluice serve --workers N` never share a chain."""
        assert self._task is None, "the folder is chosen before the writer starts"
        self.files.dir = worker_folder(Path(self.config.dir), index)

    # -- the request path: never blocks ------------------------------------------------------
    def submit(self, record: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait(record)
            self._idle.clear()
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                log.error(
                    "audit queue full (%d records waiting): %d records dropped so far",
                    self._queue.qsize(),
                    self.dropped,
                )

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    async def written_out(self) -> None:
        """Wait until every record submitted so far is in the file (or the stream)."""
        await self._idle.wait()

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        await asyncio.to_thread(self.files.start)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def aclose(self) -> None:
        """Write everything queued, seal the open segment, stop."""
        if self._task is None:
            return
        # Behind every record already queued: the writer finishes those, then stops.
        await self._queue.put(_STOP)
        await self._task
        self._task = None
        await asyncio.to_thread(self.files.close)
        if self.stream is not None:
            await self.stream.aclose()

    async def _run(self) -> None:
        while True:
            timeout = self.files.seconds_until_rotation()
            try:
                first = await asyncio.wait_for(self._queue.get(), max(0.01, timeout))
            except TimeoutError:
                await asyncio.to_thread(self.files.rotate_if_due)
                continue
            if self.config.flush_interval_ms and first is not _STOP:
                await asyncio.sleep(self.config.flush_interval_ms / 1000)
            batch = [first, *self._drain()]
            stop = any(record is _STOP for record in batch)
            batch = [record for record in batch if record is not _STOP]
            if batch:
                await self._write(batch)
                self.written += len(batch)
            if self._queue.empty():
                self._idle.set()
            if stop:
                return

    def _drain(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while len(out) < BATCH:
            try:
                out.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        return out

    async def _write(self, batch: list[dict[str, Any]]) -> None:
        stream = self.stream
        if stream is not None and stream.available(time.monotonic()):
            try:
                await stream.send(await asyncio.to_thread(stream.encode, batch))
            except StreamUnavailable as exc:
                if not self._spilling:
                    log.error(
                        "audit: the Redis stream %s did not take a batch (%s); spilling "
                        "records to %s until it does",
                        stream.config.stream,
                        exc,
                        self.files.dir,
                    )
                self._spilling = True
            else:
                if self._spilling:
                    log.warning(
                        "audit: the Redis stream %s takes records again; %d spilled to %s so far",
                        stream.config.stream,
                        self.spilled,
                        self.files.dir,
                    )
                self._spilling = False
                return
        await asyncio.to_thread(self.files.append, batch)
        if stream is not None:
            self.spilled += len(batch)
