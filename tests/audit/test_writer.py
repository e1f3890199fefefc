"""The audit writer: batches, rotation, retention, a full queue, and recovery after a crash."""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from gateway.audit.chain import personal_part, seal_mac
from gateway.audit.writer import AuditWriter
from gateway.config.audit import AuditConfig
from tests.audit.test_records import assert_chained, read_log

KEY = b"audit-test-key"


def writer(directory: Path, **settings: object) -> AuditWriter:
    config = AuditConfig.model_validate({"dir": str(directory), "fsync": "none", **settings})
    return AuditWriter(config, KEY)


def record(n: int) -> dict:
    personal, digest = personal_part({"user": f"user-{n}", "client_ip": None, "content": None})
    return {
        "v": 1,
        "request_id": f"r{n}",
        "status": 200,
        "personal_sha256": digest,
        "personal": personal,
    }


async def test_records_are_chained_and_the_segment_sealed_on_close(tmp_path: Path) -> None:
    audit = writer(tmp_path)
    await audit.start()
    for n in range(50):
        audit.submit(record(n))
    await audit.aclose()
    records, seals = read_log(tmp_path)
    assert [r["request_id"] for r in records] == [f"r{n}" for n in range(50)]
    assert_chained(records)
    (seal,) = seals
    assert seal["records"] == 50 and seal["hmac"] == seal_mac(seal, KEY)


async def test_a_restart_continues_the_chain_in_a_new_segment(tmp_path: Path) -> None:
    for batch in range(3):
        audit = writer(tmp_path)
        await audit.start()
        for n in range(10):
            audit.submit(record(batch * 10 + n))
        await audit.aclose()
    records, seals = read_log(tmp_path)
    assert len(seals) == 3 and len(records) == 30
    assert_chained(records)


async def test_an_idle_start_and_stop_leaves_no_empty_segment(tmp_path: Path) -> None:
    audit = writer(tmp_path)
    await audit.start()
    await audit.aclose()
    assert list(tmp_path.iterdir()) == []


async def test_segments_rotate_by_size(tmp_path: Path) -> None:
    audit = writer(tmp_path, max_segment_bytes=4096)
    await audit.start()
    for n in range(100):
        audit.submit(record(n))
        if n % 5 == 4:
            await audit.written_out()  # small batches, so each rotation is by size
    await audit.aclose()
    records, seals = read_log(tmp_path)
    sizes = [p.stat().st_size for p in sorted(tmp_path.iterdir())]
    assert len(records) == 100 and len(seals) >= 5
    # Rotated once past the limit: no segment holds more than one batch beyond it.
    assert all(size < 4096 + 5 * 600 for size in sizes)
    assert_chained(records)


async def test_a_full_queue_drops_and_counts(tmp_path: Path) -> None:
    audit = writer(tmp_path, queue_size=16)
    await audit.start()
    for n in range(40):  # no await in between: the writer cannot run
        audit.submit(record(n))
    assert audit.dropped == 40 - 16
    await audit.aclose()
    records, _ = read_log(tmp_path)
    assert len(records) == 16


async def test_a_crash_mid_write_is_recovered_and_sealed(tmp_path: Path) -> None:
    audit = writer(tmp_path)
    await audit.start()
    for n in range(5):
        audit.submit(record(n))
    await audit.written_out()
    # The process dies: no seal, and half a line at the end of the open segment.
    (segment,) = list(tmp_path.iterdir())
    with open(segment, "ab") as handle:
        handle.write(b'{"v": 1, "request_id": "r5", "sta')
    audit._task.cancel()  # type: ignore[union-attr]

    restarted = writer(tmp_path)
    await restarted.start()
    restarted.submit(record(6))
    await restarted.aclose()
    records, seals = read_log(tmp_path)
    assert [r["request_id"] for r in records] == ["r0", "r1", "r2", "r3", "r4", "r6"]
    assert_chained(records)
    assert len(seals) == 2 and seals[0]["last_seq"] == 5


async def test_retention_removes_old_sealed_segments(tmp_path: Path) -> None:
    old = tmp_path / "audit-000000000001-20200101T000000Z.jsonl"
    old.write_bytes(orjson.dumps({"type": "seal", "last_seq": 0, "last_digest": "0" * 64}) + b"\n")
    os.utime(old, (0, 0))
    audit = writer(tmp_path, retention_days=30, max_segment_bytes=4096)
    await audit.start()
    for n in range(60):
        audit.submit(record(n))
    await audit.aclose()
    assert not old.exists()
