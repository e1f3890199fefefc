"""Turning the Redis stream the gateways feed into one log: entries read in stream order from a
checkpointed last id are numbered, chained, sealed (and encrypted) like a gateway's own segments.

The checkpoint records the last stream id written and the log's last seq at that point, so a
restart after a crash between the two writes skips the entries the log already holds.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
import redis

from gateway.audit.encryption import Keyring, RecordTampered, open_stream_entry
from gateway.audit.folder_lock import FolderBusy
from gateway.audit.segment_log import SegmentLog
from gateway.audit.stream_sink import FIELD

CHECKPOINT_NAME = ".consume-checkpoint.json"
START_ID = "0-0"


class ConsumeError(Exception):
    """The consumer cannot go on; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Everything up to stream entry `last_id` is in the log, which then ended at `seq`."""

    stream: str
    last_id: str
    seq: int


def read_checkpoint(path: Path) -> Checkpoint | None:
    try:
        data = orjson.loads(path.read_bytes())
        return Checkpoint(str(data["stream"]), str(data["last_id"]), int(data["seq"]))
    except FileNotFoundError:
        return None
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise ConsumeError(f"{path} is not a consumer checkpoint") from None


def write_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Replace the checkpoint atomically: a crash leaves the old one or the new one."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(orjson.dumps(asdict(checkpoint)))
            out.flush()
            os.fsync(out.fileno())
        os.replace(name, path)
    finally:
        Path(name).unlink(missing_ok=True)


class StreamConsumer:
    """One stream into one directory; `start`, then `step` until done, then `close` (seal)."""

    def __init__(
        self,
        client: redis.Redis,
        stream: str,
        files: SegmentLog,
        keys: Keyring | None,
        checkpoint: Path | None = None,
        batch: int = 1000,
        block_ms: int = 1000,
    ) -> None:
        self.client = client
        self.stream = stream
        self.files = files
        self.keys = keys
        self.checkpoint_path = checkpoint or files.dir / CHECKPOINT_NAME
        self.batch = batch
        self.block_ms = block_ms
        self.written = 0
        self._last_id = START_ID
        self._skip = 0

    def start(self) -> None:
        """Take the directory (the log's own lock: one consumer, and no gateway, writes it),
        recover the log, and find where in the stream to go on."""
        try:
            self.files.start()
        except FolderBusy as exc:
            raise ConsumeError(str(exc)) from None
        checkpoint = read_checkpoint(self.checkpoint_path)
        if checkpoint is None:
            if self.files.last_seq:
                raise ConsumeError(
                    f"{self.files.dir} holds a log but no checkpoint ({self.checkpoint_path}): "
                    "consume into an empty directory, or pass --checkpoint"
                )
            checkpoint = Checkpoint(self.stream, START_ID, 0)
            write_checkpoint(self.checkpoint_path, checkpoint)
        if checkpoint.stream != self.stream:
            raise ConsumeError(
                f"{self.checkpoint_path} is for stream {checkpoint.stream}, not {self.stream}"
            )
        # Records written after the last checkpoint (a crash in between) are not read twice.
        self._skip = self.files.last_seq - checkpoint.seq
        if self._skip < 0:
            raise ConsumeError(
                f"the checkpoint says the log reaches seq {checkpoint.seq}, but it ends at seq "
                f"{self.files.last_seq}: segments were removed"
            )
        self._last_id = checkpoint.last_id

    def step(self) -> int:
        """Read one batch (waiting up to block_ms for one) and write it; entries read."""
        self.files.rotate_if_due()
        reply = self.client.xread(
            {self.stream: self._last_id}, count=self.batch, block=self.block_ms
        )
        entries = _entries(reply)
        if not entries:
            return 0
        records = []
        for raw_id, fields in entries:
            entry_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
            if self._skip:
                self._skip -= 1
            else:
                records.append(self._record(entry_id, fields))
        if records:
            self.files.append(records)
            self.written += len(records)
        last = entries[-1][0]
        self._last_id = last.decode() if isinstance(last, bytes) else str(last)
        write_checkpoint(
            self.checkpoint_path, Checkpoint(self.stream, self._last_id, self.files.last_seq)
        )
        return len(entries)

    def _record(self, entry_id: str, fields: dict[Any, Any]) -> dict[str, Any]:
        payload = fields.get(FIELD, fields.get(FIELD.decode()))
        if not isinstance(payload, bytes | str):
            raise RecordTampered(f"stream entry {entry_id} of {self.stream} has no record field")
        value = open_stream_entry(
            payload.encode() if isinstance(payload, str) else payload,
            self.keys,
            self.stream,
            entry_id,
        )
        if not isinstance(value, dict) or "type" in value:
            raise RecordTampered(f"stream entry {entry_id} of {self.stream} is not a record")
        return value

    def close(self) -> None:
        """Seal the open segment and let the directory go."""
        self.files.close()


def _entries(reply: Any) -> list[tuple[Any, dict[Any, Any]]]:
    """The entries of the one stream in an XREAD reply (RESP2, the client's default)."""
    return list(reply[0][1]) if reply else []
