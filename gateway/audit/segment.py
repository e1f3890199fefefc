"""What goes into a segment file: records numbered and chained, segment names, seal lines.

Pure: the writer (I/O) and the tests that build logs by hand share these functions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.audit.chain import GENESIS, digest, seal

# The first seq leads, so names sort in write order even if the wall clock steps back.
SEGMENT_NAME = re.compile(r"^audit-(?P<seq>\d{12})-(?P<started>\d{8}T\d{6}Z)\.jsonl$")


def segment_name(started: datetime, first_seq: int) -> str:
    return f"audit-{first_seq:012d}-{started.astimezone(UTC):%Y%m%dT%H%M%SZ}.jsonl"


@dataclass(slots=True)
class Chain:
    """Where the log stands: the next `seq` and the digest the next record must point to."""

    next_seq: int = 1
    prev: str = GENESIS

    def append(self, record: dict[str, Any]) -> bytes:
        """Number and link `record` (in place) and return its line, newline included."""
        record["seq"] = self.next_seq
        record["prev"] = self.prev
        self.prev = digest(record)
        self.next_seq += 1
        return orjson.dumps(record) + b"\n"


def seal_line(
    segment: str, first_seq: int, first_prev: str, chain: Chain, key: bytes | None
) -> bytes:
    """The seal of a segment whose records run from `first_seq` to the chain's last one."""
    body = seal(segment, first_seq, chain.next_seq - 1, first_prev, chain.prev, key)
    return orjson.dumps(body) + b"\n"
