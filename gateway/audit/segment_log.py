"""The audit log as segment files in one directory: appending chained batches, rotation,
retention, a clean seal at close and recovery of a segment a crash left open. One process
writes a directory at a time (folder_lock.py), so the chain it continues is its own.

Blocking file I/O: the writer calls it from a worker thread, the stream consumer directly.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from gateway.audit.chain import digest
from gateway.audit.encryption import Keyring, open_record, record_aad
from gateway.audit.folder_lock import FolderLock
from gateway.audit.segment import SEGMENT_NAME, Chain, seal_line, segment_name
from gateway.config.audit import AuditConfig

log = logging.getLogger("sluicegate.audit")


class SegmentLog:
    """The open segment and where the chain stands; records are encrypted when `keys` is set."""

    def __init__(self, config: AuditConfig, key: bytes | None, keys: Keyring | None) -> None:
        self.config = config
        self.key = key
        self.keys = keys
        # `sluice serve --workers N` points each worker at its own subfolder before start.
        self.dir = Path(config.dir)
        self.chain = Chain()
        self._lock: FolderLock | None = None
        self._file: IO[bytes] | None = None
        self._segment = ""
        self._first_seq = 1
        self._first_prev = self.chain.prev
        self._opened_at = 0.0
        self._bytes = 0

    @property
    def last_seq(self) -> int:
        return self.chain.next_seq - 1

    def start(self) -> None:
        """Take the directory (FolderBusy if another process writes it), continue the chain
        from what is on disk and open a new segment."""
        self._lock = FolderLock(self.dir)
        self._lock.acquire()
        try:
            self.recover()
            self.open()
        except BaseException:
            self._lock.release()
            raise

    def seconds_until_rotation(self) -> float:
        return self.config.max_segment_age_s - (time.time() - self._opened_at)

    def rotate_if_due(self) -> None:
        """Rotate by age, if the open segment has records."""
        if self.seconds_until_rotation() <= 0 and self.chain.next_seq > self._first_seq:
            self.rotate()

    def append(self, batch: list[dict[str, Any]]) -> None:
        """Number, link (in place) and write `batch`, then sync and rotate as configured."""
        assert self._file is not None, "append before start"
        data = b"".join(self._line(record) for record in batch)
        self._file.write(data)
        self._file.flush()
        if self.config.fsync == "batch":
            os.fsync(self._file.fileno())
        self._bytes += len(data)
        too_old = time.time() - self._opened_at >= self.config.max_segment_age_s
        if self._bytes >= self.config.max_segment_bytes or too_old:
            self.rotate()

    def _line(self, record: dict[str, Any]) -> bytes:
        line = self.chain.append(record)
        if self.keys is None:
            return line
        seq = self.chain.next_seq - 1
        return self.keys.seal(line[:-1], record_aad(self._segment, seq), seq)

    def rotate(self) -> None:
        self.seal()
        self.open()
        self._apply_retention()

    def open(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        now = datetime.now(UTC)
        self._segment = segment_name(now, self.chain.next_seq)
        self._file = open(self.dir / self._segment, "ab")
        self._first_seq, self._first_prev = self.chain.next_seq, self.chain.prev
        self._opened_at, self._bytes = now.timestamp(), 0

    def close(self) -> None:
        """Seal the open segment and let the directory go."""
        self.seal()
        if self._lock is not None:
            self._lock.release()

    def seal(self) -> None:
        """Seal the open segment (or remove it, if nothing was written to it)."""
        if self._file is None:
            return
        path = self.dir / self._segment
        if self.chain.next_seq == self._first_seq:
            self._file.close()
            path.unlink(missing_ok=True)  # nothing was written: no empty segments
        else:
            self._file.write(
                seal_line(self._segment, self._first_seq, self._first_prev, self.chain, self.key)
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

    def recover(self) -> None:
        """Continue the chain from what is on disk; seal a segment a crash left open.

        Raises KeyProblem when that segment is encrypted with a key not at hand.
        """
        if not self.dir.is_dir():
            return
        segments = sorted(p for p in self.dir.iterdir() if SEGMENT_NAME.match(p.name))
        if not segments:
            return
        newest = segments[-1]
        first, last, seal, good_bytes, damaged = _scan(newest)
        if seal is not None:
            self.chain = Chain(seal["last_seq"] + 1, seal["last_digest"])
            return
        if first is None or last is None:
            newest.unlink()  # crashed before its first record was written
            return self.recover()
        first_record = open_record(first, self.keys, newest.name)
        last_record = open_record(last, self.keys, newest.name)
        self.chain = Chain(last_record["seq"] + 1, digest(last_record))
        if damaged:
            # Not a cut write: something broke the middle of the file. Leave it for
            # `sluice audit verify` to point at, and chain on from its last good record.
            log.error("audit: %s is damaged after byte %d; left unsealed", newest.name, good_bytes)
            return
        with open(newest, "r+b") as handle:
            handle.truncate(good_bytes)  # a partial last line died with the process
        with open(newest, "ab") as handle:
            handle.write(
                seal_line(
                    newest.name, first_record["seq"], first_record["prev"], self.chain, self.key
                )
            )
            os.fsync(handle.fileno())
        log.warning("audit: sealed %s left open by an unclean stop", newest.name)


def _scan(path: Path) -> tuple[Any, Any, Any, int, bool]:
    """(first entry, last entry, seal, bytes of good lines, damaged mid-file) of a segment;
    the entries as stored (encrypted ones still envelopes)."""
    last = first = seal = None
    good = 0
    with open(path, "rb") as handle:
        lines = iter(handle)
        for line in lines:
            try:
                entry = orjson.loads(line) if line.endswith(b"\n") else None
            except orjson.JSONDecodeError:
                entry = None
            if not isinstance(entry, dict):
                # Only the very last line may be bad: a write the crash cut short.
                return first, last, seal, good, next(lines, None) is not None
            good += len(line)
            if entry.get("type") == "seal":
                seal = entry
            else:
                first = first or entry
                last = entry
    return first, last, seal, good, False
