"""Audit logs built by hand for tests: valid multi-segment logs from the same pure helpers the
writer uses, and the line-level edits that tampering (or a crash) makes to them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from gateway.audit.chain import digest, personal_part
from gateway.audit.encryption import Keyring, record_aad
from gateway.audit.segment import Chain, seal_line, segment_name

STARTED = datetime(2026, 11, 25, 19, 50, tzinfo=UTC)

Entry = dict[str, Any]


def make_record(n: int) -> Entry:
    """A plausible record for the `n`th request, before the chain numbers and links it."""
    personal, personal_sha256 = personal_part(
        {"user": f"user-{n}", "client_ip": "203.0.113.0", "content": None}
    )
    return {
        "v": 1,
        "ts": (STARTED + timedelta(seconds=n)).isoformat(timespec="milliseconds"),
        "request_id": f"req-{n:06d}",
        "method": "POST",
        "path": "/v1/chat/completions",
        "tenant": "acme",
        "key_id": "alice",
        "model": "gpt-echo",
        "route": {"backend": "mock", "upstream_model": "echo"},
        "arm": None,
        "stream": n % 2 == 0,
        "status": 200,
        "outcome": "ok",
        "error": None,
        "guards": [],
        "ratelimit": "admitted",
        "usage": {"prompt_tokens": 12, "completion_tokens": n, "total_tokens": 12 + n},
        "latency_ms": 40.5 + n,
        "ttft_ms": 3.25 if n % 2 == 0 else None,
        "personal_sha256": personal_sha256,
        "personal": personal,
    }


def write_log(
    directory: Path,
    segments: list[int],
    key: bytes | None = None,
    seal_last: bool = False,
    keys: Keyring | None = None,
) -> list[Path]:
    """Segments holding `segments[i]` records each, all sealed but the newest (unless
    `seal_last`), encrypted with `keys` if given; returns their paths, oldest first."""
    chain = Chain()
    paths = []
    for index, count in enumerate(segments):
        name = segment_name(STARTED + timedelta(minutes=index), chain.next_seq)
        first_seq, first_prev = chain.next_seq, chain.prev
        lines = [_encrypted(chain, name, keys) for _ in range(count)]
        if seal_last or index < len(segments) - 1:
            lines.append(seal_line(name, first_seq, first_prev, chain, key))
        path = directory / name
        path.write_bytes(b"".join(lines))
        paths.append(path)
    return paths


def _encrypted(chain: Chain, segment: str, keys: Keyring | None) -> bytes:
    """The next record's line, as an envelope when there are keys."""
    seq = chain.next_seq
    line = chain.append(make_record(seq))
    return line if keys is None else keys.seal(line[:-1], record_aad(segment, seq), seq)


def read_lines(path: Path) -> list[Entry]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def write_lines(path: Path, entries: list[Entry]) -> None:
    path.write_bytes(b"".join(orjson.dumps(entry) + b"\n" for entry in entries))


def edit_line(path: Path, line: int, change: Callable[[Entry], None]) -> None:
    """Change the entry on 1-based `line` in place, as someone with write access would."""
    entries = read_lines(path)
    change(entries[line - 1])
    write_lines(path, entries)


def continuing_record(after: Entry) -> bytes:
    """A well-formed line for the record that would follow `after` in the chain."""
    chain = Chain(next_seq=after["seq"] + 1, prev=digest(after))
    return chain.append(make_record(chain.next_seq))


def rechain(paths: list[Path], key: bytes | None) -> None:
    """Renumber, relink and reseal every segment as a forger who can write the files would,
    sealing with `key` (the forger's guess, not the gateway's)."""
    chain = Chain()
    for path in paths:
        entries = read_lines(path)
        first_seq, first_prev = chain.next_seq, chain.prev
        lines = [
            chain.append({k: v for k, v in entry.items() if k not in ("seq", "prev")})
            for entry in entries
            if "type" not in entry
        ]
        if any(entry.get("type") == "seal" for entry in entries):
            lines.append(seal_line(path.name, first_seq, first_prev, chain, key))
        path.write_bytes(b"".join(lines))
