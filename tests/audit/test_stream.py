"""The Redis stream sink with a real Redis: several writers feed one stream, `sluice audit
consume` turns it into one verified log, and records spill to the file log while Redis is down."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from gateway.audit.chain import personal_part
from gateway.audit.encryption import Keyring
from gateway.audit.segment_files import read_records
from gateway.audit.verify import verify_log
from gateway.audit.writer import AuditWriter
from gateway.cli import main
from gateway.config.audit import AuditConfig
from tests.support.audit_redis import REDIS_URL, RedisProxy
from tests.support.processes import REPO
from tests.support.servers import free_port

HMAC = b"audit-stream-hmac"
KEY = bytes(range(32))


@pytest.fixture
async def stream(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """A stream name of this test's own, deleted afterwards."""
    monkeypatch.setenv("SLUICE_AUDIT_HMAC_KEY", HMAC.decode())
    monkeypatch.delenv("SLUICE_AUDIT_ENC_KEY", raising=False)
    name = f"sluice-test:{uuid.uuid4().hex[:12]}:audit"
    yield name
    client = aioredis.Redis.from_url(REDIS_URL)
    await client.delete(name)
    await client.aclose()


def writer(
    spill: Path, stream: str, url: str = REDIS_URL, keys: Keyring | None = None
) -> AuditWriter:
    config = AuditConfig.model_validate(
        {
            "dir": str(spill),
            "fsync": "none",
            "flush_interval_ms": 1,
            "sink": "redis_stream",
            "redis": {"url": url, "stream": stream, "timeout_ms": 500, "retry_interval_s": 0.05},
        }
    )
    return AuditWriter(config, HMAC, keys)


def record(name: str) -> dict:
    personal, digest = personal_part({"user": name, "client_ip": None, "content": None})
    return {"v": 1, "request_id": name, "personal_sha256": digest, "personal": personal}


def consume(directory: Path, stream: str, *extra: str) -> int:
    argv = ["audit", "consume", "--redis", REDIS_URL, "--stream", stream, "--dir", str(directory)]
    return main([*argv, "--until-idle", "--block-ms", "50", *extra])


def logged_ids(directory: Path, keys: Keyring | None = None) -> list[str]:
    if not directory.is_dir():
        return []
    return [line.value["request_id"] for line in read_records(directory, keys)]


def assert_verifies(directory: Path, keys: Keyring | None = None) -> None:
    report = verify_log(directory, HMAC, keys)
    assert report.ok, report.problem
    assert report.open_segment is None and report.hmac_checked


async def test_three_writers_feed_one_stream_that_consumes_into_one_verified_log(
    tmp_path: Path, stream: str
) -> None:
    writers = [writer(tmp_path / f"spill-{w}", stream) for w in range(3)]
    for audit in writers:
        await audit.start()
    for n in range(200):
        for w, audit in enumerate(writers):
            audit.submit(record(f"w{w}-{n:03d}"))
        if n % 20 == 0:
            await asyncio.sleep(0)  # let the writers' batches interleave in the stream
    for audit in writers:
        await audit.aclose()
    assert [audit.spilled for audit in writers] == [0, 0, 0]
    assert all(not any((tmp_path / f"spill-{w}").iterdir()) for w in range(3))

    log = tmp_path / "log"
    assert consume(log, stream) == 0
    assert_verifies(log)
    ids = logged_ids(log)
    assert Counter(ids) == Counter(f"w{w}-{n:03d}" for w in range(3) for n in range(200))
    for w in range(3):  # each writer's records keep the order it wrote them in
        mine = [i for i in ids if i.startswith(f"w{w}-")]
        assert mine == sorted(mine)


async def test_the_consumer_resumes_from_its_checkpoint_without_repeating_records(
    tmp_path: Path, stream: str
) -> None:
    log = tmp_path / "log"
    audit = writer(tmp_path / "spill", stream)
    await audit.start()
    for n in range(30):
        audit.submit(record(f"a{n}"))
    await audit.written_out()
    assert consume(log, stream) == 0
    checkpoint = (log / ".consume-checkpoint.json").read_bytes()

    for n in range(30):
        audit.submit(record(f"b{n}"))
    await audit.aclose()
    assert consume(log, stream) == 0
    # A crash after the log was written but before the checkpoint was: the old checkpoint.
    (log / ".consume-checkpoint.json").write_bytes(checkpoint)
    assert consume(log, stream) == 0

    assert_verifies(log)
    assert logged_ids(log) == [f"a{n}" for n in range(30)] + [f"b{n}" for n in range(30)]


async def test_an_encrypted_stream_consumes_into_an_encrypted_log(
    tmp_path: Path, stream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit = writer(tmp_path / "spill", stream, keys=Keyring([KEY]))
    await audit.start()
    for n in range(25):
        audit.submit(record(f"user-{n}"))
    await audit.aclose()
    client = aioredis.Redis.from_url(REDIS_URL)
    entries = await client.xrange(stream)
    await client.aclose()
    assert len(entries) == 25 and all(b"user-" not in fields[b"r"] for _, fields in entries)

    log = tmp_path / "log"
    assert consume(log, stream) == 2  # no key: nothing written, the checkpoint stays
    monkeypatch.setenv("SLUICE_AUDIT_ENC_KEY", base64.b64encode(KEY).decode())
    assert consume(log, stream) == 0
    assert all(b"user-" not in path.read_bytes() for path in log.glob("audit-*"))
    assert_verifies(log, Keyring([KEY]))
    assert logged_ids(log, Keyring([KEY])) == [f"user-{n}" for n in range(25)]


async def test_records_spill_to_the_file_log_when_redis_is_down_at_start(
    tmp_path: Path, stream: str, caplog: pytest.LogCaptureFixture
) -> None:
    spill = tmp_path / "spill"
    audit = writer(spill, stream, url=f"redis://127.0.0.1:{free_port()}/10")
    await audit.start()
    for n in range(40):
        audit.submit(record(f"r{n}"))
    await audit.aclose()
    assert audit.spilled == 40
    assert_verifies(spill)
    assert logged_ids(spill) == [f"r{n}" for n in range(40)]
    assert any("spilling records to" in message for message in caplog.messages)


async def test_records_spill_while_redis_is_down_and_go_to_the_stream_again_after(
    tmp_path: Path, stream: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "sluicegate.audit")
    proxy = await RedisProxy(free_port()).start()
    spill = tmp_path / "spill"
    audit = writer(spill, stream, url=proxy.url)
    await audit.start()
    for phase in ("before", "during", "after"):
        if phase == "during":
            await proxy.stop()
        if phase == "after":
            await proxy.start()
            await asyncio.sleep(0.1)  # past retry_interval_s: the next batch tries Redis
        for n in range(50):
            audit.submit(record(f"{phase}-{n}"))
        await audit.written_out()
    await audit.aclose()
    await proxy.stop()

    assert audit.spilled == 50
    assert_verifies(spill)
    assert logged_ids(spill) == [f"during-{n}" for n in range(50)]
    log = tmp_path / "log"
    assert consume(log, stream) == 0
    assert_verifies(log)
    assert logged_ids(log) == [f"{p}-{n}" for p in ("before", "after") for n in range(50)]
    assert any("spilling records to" in message for message in caplog.messages)
    assert any("takes records again; 50 spilled" in message for message in caplog.messages)


def test_consume_until_idle_with_redis_down_fails_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/10"
    log = tmp_path / "log"
    argv = ["audit", "consume", "--redis", url, "--stream", "s", "--dir", str(log)]
    assert main([*argv, "--until-idle", "--timeout-ms", "200"]) == 1
    assert "cannot read the stream" in capsys.readouterr().err
    assert not list(log.glob("audit-*"))


async def eventually(condition: Callable[[], bool], what: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.05)


async def test_a_running_consumer_rides_out_a_redis_outage_and_seals_on_sigterm(
    tmp_path: Path, stream: str
) -> None:
    proxy = await RedisProxy(free_port()).start()
    log = tmp_path / "log"
    consumer = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "gateway", "audit", "consume", "--redis", proxy.url],
        *["--stream", stream, "--dir", str(log), "--block-ms", "100", "--timeout-ms", "300"],
        cwd=REPO,
        env={**os.environ, "SLUICE_AUDIT_HMAC_KEY": HMAC.decode()},
        stderr=asyncio.subprocess.PIPE,
    )
    audit = writer(tmp_path / "spill", stream)  # straight to Redis, not through the proxy
    await audit.start()
    try:
        for n in range(20):
            audit.submit(record(f"a{n}"))
        await audit.written_out()
        await eventually(lambda: len(logged_ids(log)) == 20, "the consumer has the first 20")
        await proxy.stop()
        assert consumer.stderr is not None
        line = await asyncio.wait_for(consumer.stderr.readline(), 20)
        assert b"cannot read the stream" in line and b"retrying every 1 s" in line
        for n in range(20):
            audit.submit(record(f"b{n}"))
        await audit.written_out()
        await proxy.start()
        await eventually(lambda: len(logged_ids(log)) == 40, "the consumer has all 40")
        consumer.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(consumer.wait(), 20) == 0
    finally:
        if consumer.returncode is None:
            consumer.kill()
            await consumer.wait()
        await audit.aclose()
        await proxy.stop()
    assert_verifies(log)  # sealed on SIGTERM: no open segment
    assert logged_ids(log) == [f"a{n}" for n in range(20)] + [f"b{n}" for n in range(20)]
