"""Audit logs built by hand for the export and purge tests, and a chain check of their own.

The check recomputes every `seq`, `prev`, `personal_sha256` and seal from the format spec
(docs/audit.md) with the pure helpers, so these tests do not lean on the verifier.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from gateway.audit.chain import GENESIS, digest, personal_ok, personal_part
from gateway.audit.segment import SEGMENT_NAME, Chain, seal_line, segment_name

START = datetime(2026, 11, 25, 19, 50, tzinfo=UTC)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_record(
    at: datetime,
    tenant: str | None = "acme",
    model: str | None = "gpt-echo",
    user: str | None = "alice@example.com",
    **fields: Any,
) -> dict[str, Any]:
    """A record shaped like the gateway's (gateway/audit/trail.py), before the chain numbers it."""
    personal, personal_sha256 = personal_part(
        {"user": user, "client_ip": "203.0.113.0", "content": None}
    )
    record: dict[str, Any] = {
        "v": 1,
        "ts": rfc3339(at),
        "request_id": f"req-{at.timestamp():.3f}",
        "method": "POST",
        "path": "/v1/chat/completions",
        "tenant": tenant,
        "key_id": f"{tenant}-key" if tenant else None,
        "model": model,
        "route": {"backend": "mock", "upstream_model": "echo"} if model else None,
        "arm": None,
        "stream": False,
        "status": 200,
        "outcome": "ok",
        "error": None,
        "guards": [],
        "ratelimit": "admitted",
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
        "latency_ms": 41.25,
        "ttft_ms": None,
        "personal_sha256": personal_sha256,
        "personal": personal,
    }
    record.update(fields)
    return record


def minutes(n: int) -> datetime:
    return START + timedelta(minutes=n)


def write_segment(
    directory: Path, chain: Chain, records: Iterable[dict[str, Any]], sealed: bool = True
) -> Path:
    """Append `records` to the chain as one segment file, sealed unless it is the open one."""
    first_seq, first_prev = chain.next_seq, chain.prev
    path: Path | None = None
    file = None
    try:
        for record in records:
            if file is None:
                started = datetime.fromisoformat(record["ts"])
                path = directory / segment_name(started, first_seq)
                file = path.open("wb")
            file.write(chain.append(record))
        assert file is not None and path is not None, "a segment needs a record"
        if sealed:
            file.write(seal_line(path.name, first_seq, first_prev, chain, key=None))
    finally:
        if file is not None:
            file.close()
    return path


def write_log(
    directory: Path, segments: list[list[dict[str, Any]]], open_last: bool = False
) -> list[Path]:
    """Segments in order (the records numbered and linked in place); the last one is left
    unsealed, as a running gateway's, when `open_last`."""
    chain = Chain()
    return [
        write_segment(directory, chain, records, sealed=not (open_last and i == len(segments) - 1))
        for i, records in enumerate(segments)
    ]


def record_lines(directory: Path) -> list[bytes]:
    """Every complete record line of the log, in order, seals left out."""
    lines: list[bytes] = []
    for path in sorted(p for p in directory.iterdir() if SEGMENT_NAME.match(p.name)):
        for raw in path.read_bytes().splitlines(keepends=True):
            if raw.endswith(b"\n") and orjson.loads(raw).get("type") != "seal":
                lines.append(raw)
    return lines


def chain_problems(directory: Path) -> list[str]:
    """What is wrong with the log's chain and seals, recomputed from scratch ([] when sound)."""
    problems: list[str] = []
    prev, seq = GENESIS, 1
    for path in sorted(p for p in directory.iterdir() if SEGMENT_NAME.match(p.name)):
        first_seq, first_prev = seq, prev
        lines = path.read_bytes().splitlines()
        for number, raw in enumerate(lines, start=1):
            value = orjson.loads(raw)
            where = f"{path.name}:{number}"
            if value.get("type") == "seal":
                expected = {
                    "first_seq": first_seq,
                    "last_seq": seq - 1,
                    "records": seq - first_seq,
                    "first_prev": first_prev,
                    "last_digest": prev,
                    "segment": path.name,
                }
                wrong = {k: v for k, v in expected.items() if value.get(k) != v}
                if wrong or number != len(lines):
                    problems.append(f"{where}: seal does not match ({wrong})")
                continue
            if value.get("seq") != seq:
                problems.append(f"{where}: seq {value.get('seq')}, expected {seq}")
            if value.get("prev") != prev:
                problems.append(f"{where}: prev does not link to the record before")
            if not personal_ok(value):
                problems.append(f"{where}: personal_sha256 does not match personal")
            prev, seq = digest(value), seq + 1
    return problems
