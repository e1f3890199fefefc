"""Seeded synthetic experiments written as real audit logs (chained, sealed segments), with
effects injected per arm, for the report tests to find (or not find)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from gateway.audit.chain import personal_part
from gateway.audit.segment import Chain, seal_line, segment_name

START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SEGMENT_RECORDS = 4000


@dataclass(frozen=True)
class Arm:
    name: str
    weight: float = 1.0
    latency_scale: float = 1.0  # multiplies every latency and TTFT
    error_rate: float = 0.02


def rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def request_record(
    n: int,
    arm: str | None,
    latency_ms: float,
    *,
    experiment: str | None = "checkout",
    error: bool = False,
    stream: bool = False,
    ttft_ms: float | None = None,
    tenant: str = "acme",
    user: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A request record shaped like gateway/audit/trail.py's, before the chain numbers it."""
    personal, personal_sha256 = personal_part(
        {"user": user or f"user-{n % 97}", "client_ip": "203.0.113.0", "content": None}
    )
    record: dict[str, Any] = {
        "v": 1,
        "ts": rfc3339(START + timedelta(seconds=n)),
        "request_id": f"req-{n:07d}",
        "method": "POST",
        "path": "/v1/chat/completions",
        "tenant": tenant,
        "key_id": "alice",
        "model": "gpt-echo",
        "route": {"backend": f"backend-{arm}", "upstream_model": "echo"},
        "arm": arm,
        "experiment": experiment,
        "stream": stream,
        "status": 502 if error else 200,
        "outcome": "error" if error else "ok",
        "error": {"type": "upstream_error", "code": "upstream_error"} if error else None,
        "guards": [],
        "ratelimit": None,
        "usage": None
        if error
        else {"prompt_tokens": 12, "completion_tokens": 30 + n % 7, "total_tokens": 42 + n % 7},
        "latency_ms": round(float(latency_ms), 3),
        "ttft_ms": round(float(ttft_ms), 3) if ttft_ms is not None else None,
        "personal_sha256": personal_sha256,
        "personal": personal,
    }
    record.update(fields)
    return record


def feedback_record(
    n: int, request_id: str, score: float, tenant: str = "acme", label: str | None = None
) -> dict[str, Any]:
    """A feedback record shaped like gateway/feedback.py's."""
    personal, personal_sha256 = personal_part({"user": None, "client_ip": None, "content": None})
    return {
        "v": 1,
        "kind": "feedback",
        "ts": rfc3339(START + timedelta(seconds=n, milliseconds=500)),
        "request_id": request_id,
        "feedback_id": f"fb-{n:07d}",
        "tenant": tenant,
        "key_id": "alice",
        "score": score,
        "label": label,
        "personal_sha256": personal_sha256,
        "personal": personal,
    }


def experiment_records(
    seed: int, requests: int, arms: list[Arm], assignment: list[str] | None = None
) -> Iterator[dict[str, Any]]:
    """`requests` request records split across `arms` by weight (or by `assignment`, one arm
    name per request): lognormal latencies around 200 ms, every other request a stream."""
    rng = np.random.default_rng(seed)
    by_name = {arm.name: arm for arm in arms}
    if assignment is None:
        weights = np.array([arm.weight for arm in arms])
        picks = rng.choice(len(arms), size=requests, p=weights / weights.sum())
        assignment = [arms[i].name for i in picks]
    latencies = rng.lognormal(np.log(200.0), 0.5, size=requests)
    ttfts = rng.lognormal(np.log(40.0), 0.4, size=requests)
    failures = rng.random(requests)
    for n, name in enumerate(assignment):
        arm = by_name[name]
        stream = n % 2 == 0
        yield request_record(
            n,
            name,
            latencies[n] * arm.latency_scale,
            error=bool(failures[n] < arm.error_rate),
            stream=stream,
            ttft_ms=ttfts[n] * arm.latency_scale if stream else None,
        )


def write_log(directory: Path, records: Iterable[dict[str, Any]]) -> None:
    """The records as a chained log, SEGMENT_RECORDS per segment, the last one left open."""
    chain = Chain()
    lines: list[bytes] = []
    first_seq, first_prev, started = chain.next_seq, chain.prev, START

    def flush(sealed: bool) -> None:
        name = segment_name(started, first_seq)
        if sealed:
            lines.append(seal_line(name, first_seq, first_prev, chain, key=None))
        (directory / name).write_bytes(b"".join(lines))

    for record in records:
        if len(lines) == SEGMENT_RECORDS:
            flush(sealed=True)
            lines.clear()
            first_seq, first_prev = chain.next_seq, chain.prev
            started = datetime.fromisoformat(record["ts"])
        lines.append(chain.append(record))
    flush(sealed=False)
