"""Writes audit records off the request path: a bounded queue, one task, batched appends to the
open segment, rotation and retention, crash recovery at start and a clean seal at shutdown."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from gateway.audit.chain import digest
from gateway.audit.segment import SEGMENT_NAME, Chain, seal_line, segment_name
from gateway.config.audit import AuditConfig

log = logging.getLogger("sluicegate.audit")
BATCH = 1024
_STOP: dict[str, Any] = {}  # queued by aclose(): everything before it is written, then stop


class AuditWriter:
    def __init__(self, config: AuditConfig, key: bytes | None) -> None:
        self.config = config
        self.key = key
        self.dir = Path(config.dir)
        self.dropped = 0
        self.written = 0
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(config.queue_size)
        self._chain = Chain()
        self._task: asyncio.Task[None] | None = None
        self._file: Any = None
        self._segment = ""
        self._first_seq = 1
        self._first_prev = self._chain.prev
        self._opened_at = 0.0
        self._bytes = 0
        self._idle = asyncio.Event()
        self._idle.set()

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
        """Wait until every record submitted so far is in the file."""
        await self._idle.wait()

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        await asyncio.to_thread(self._recover)
        await asyncio.to_thread(self._open_segment)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def aclose(self) -> None:
        """Write everything queued, seal the open segment, stop."""
        if self._task is None:
            return
        # Behind every record already queued: the writer finishes those, then stops.
        await self._queue.put(_STOP)
        await self._task
        self._task = None
        await asyncio.to_thread(self._close_segment)

    async def _run(self) -> None:
        while True:
            timeout = self.config.max_segment_age_s - (time.time() - self._opened_at)
            try:
                first = await asyncio.wait_for(self._queue.get(), max(0.01, timeout))
            except TimeoutError:
                if self._chain.next_seq > self._first_seq:
                    await asyncio.to_thread(self._rotate)
                continue
            if self.config.flush_interval_ms and first is not _STOP:
                await asyncio.sleep(self.config.flush_interval_ms / 1000)
            batch = [first, *self._drain()]
            stop = any(record is _STOP for record in batch)
            batch = [record for record in batch if record is not _STOP]
            if batch:
                await asyncio.to_thread(self._append, batch)
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

    # -- file work, in a worker thread -----------------------------------------------------
    def _append(self, batch: list[dict[str, Any]]) -> None:
        data = b"".join(self._chain.append(record) for record in batch)
        self._file.write(data)
        self._file.flush()
        if self.config.fsync == "batch":
            os.fsync(self._file.fileno())
        self._bytes += len(data)
        self.written += len(batch)
        too_old = time.time() - self._opened_at >= self.config.max_segment_age_s
        if self._bytes >= self.config.max_segment_bytes or too_old:
            self._rotate()

    def _rotate(self) -> None:
        self._close_segment()
        self._open_segment()
        self._apply_retention()

    def _open_segment(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        now = datetime.now(UTC)
        self._segment = segment_name(now, self._chain.next_seq)
        self._file = open(self.dir / self._segment, "ab")
        self._first_seq, self._first_prev = self._chain.next_seq, self._chain.prev
        self._opened_at, self._bytes = now.timestamp(), 0

    def _close_segment(self) -> None:
        if self._file is None:
            return
        path = self.dir / self._segment
        if self._chain.next_seq == self._first_seq:
            self._file.close()
            path.unlink(missing_ok=True)  # nothing was written: no empty segments
        else:
            self._file.write(
                seal_line(self._segment, self._first_seq, self._first_prev, self._chain, self.key)
            )
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        self._file = None

    def _apply_retention(self) -> None:
        if not self.config.retention_days:
            return
        cutoff = time.time() - self.config.retention_days * 86400
        segments = sorted(p for p in self.dir.iterdir() if SEGMENT_NAME.match(p.name))
        # Never the open segment, nor the newest sealed one: its seal anchors the chain.
        for path in segments[:-2]:
            match = SEGMENT_NAME.match(path.name)
            assert match is not None
            started = datetime.strptime(match.group("started"), "%Y%m%dT%H%M%SZ").replace(
                tzinfo=UTC
            )
            if started.timestamp() < cutoff:
                path.unlink(missing_ok=True)
                log.info("audit retention: removed %s", path.name)

    def _recover(self) -> None:
        """Continue the chain from what is on disk; seal a segment a crash left open."""
        if not self.dir.is_dir():
            return
        segments = sorted(p for p in self.dir.iterdir() if SEGMENT_NAME.match(p.name))
        if not segments:
            return
        newest = segments[-1]
        last_record, first_record, seal, good_bytes, damaged = _scan(newest)
        if seal is not None:
            self._chain = Chain(seal["last_seq"] + 1, seal["last_digest"])
            return
        if first_record is None:
            newest.unlink()  # crashed before its first record was written
            return self._recover()
        if damaged:
            # Not a cut write: something broke the middle of the file. Leave it for
            # `sluice audit verify` to point at, and chain on from its last good record.
            log.error("audit: %s is damaged after byte %d; left unsealed", newest.name, good_bytes)
            self._chain = Chain(last_record["seq"] + 1, digest(last_record))
            return
        with open(newest, "r+b") as handle:
            handle.truncate(good_bytes)  # a partial last line died with the process
        self._chain = Chain(last_record["seq"] + 1, digest(last_record))
        with open(newest, "ab") as handle:
            handle.write(
                seal_line(
                    newest.name, first_record["seq"], first_record["prev"], self._chain, self.key
                )
            )
            os.fsync(handle.fileno())
        log.warning("audit: sealed %s left open by an unclean stop", newest.name)


def _scan(path: Path) -> tuple[Any, Any, Any, int, bool]:
    """(last record, first record, seal, bytes of good lines, damaged mid-file) of a segment."""
    last = first = seal = None
    good = 0
    with open(path, "rb") as handle:
        lines = iter(handle)
        for line in lines:
            try:
                entry = orjson.loads(line) if line.endswith(b"\n") else None
            except orjson.JSONDecodeError:
                entry = None
            if entry is None:
                # Only the very last line may be bad: a write the crash cut short.
                return last, first, seal, good, next(lines, None) is not None
            good += len(line)
            if entry.get("type") == "seal":
                seal = entry
            else:
                first = first or entry
                last = entry
    return last, first, seal, good, False
