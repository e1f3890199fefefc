"""`sluice audit consume`: read the Redis stream several gateways feed into one verifiable log.

Exit codes follow `sluice audit verify`: 0 stopped cleanly, 1 a bad stream entry (or, with
--until-idle, Redis not answering), 2 usage errors (keys, checkpoint, directory).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from gateway.audit.consume import ConsumeError, StreamConsumer
from gateway.audit.encryption import KeyProblem, RecordTampered
from gateway.audit.key_options import add_enc_key_option, keyring_from_args
from gateway.audit.segment_log import SegmentLog
from gateway.config.audit import AuditConfig, AuditRedis

DEFAULT_HMAC_KEY_ENV = "SLUICE_AUDIT_HMAC_KEY"
RETRY_S = 1.0


def add_consume_command(audit_subparsers: Any) -> None:
    """Register `consume` under the `sluice audit` subparsers."""
    defaults = AuditRedis()
    parser = audit_subparsers.add_parser(
        "consume",
        help="write the gateways' Redis audit stream as one chained, sealed log",
        description="Read the stream in order from the last checkpoint and append it to the "
        "log in --dir, as `sluice audit verify` checks it. Runs until SIGTERM or SIGINT (the "
        "open segment is then sealed), or with --until-idle until the stream has nothing new.",
    )
    parser.add_argument(
        "--redis", default=defaults.url, help=f"audit.redis.url of the gateways ({defaults.url})"
    )
    parser.add_argument(
        "--stream", default=defaults.stream, help=f"audit.redis.stream ({defaults.stream})"
    )
    parser.add_argument(
        "--dir", type=Path, required=True, help="the log's directory (not a gateway's spill dir)"
    )
    parser.add_argument(
        "--checkpoint", type=Path, help="the last id consumed (DIR/.consume-checkpoint.json)"
    )
    parser.add_argument(
        "--key-env",
        metavar="NAME",
        help=f"env var holding the seals' HMAC key (default: {DEFAULT_HMAC_KEY_ENV}, if set)",
    )
    add_enc_key_option(parser)
    parser.add_argument("--batch", type=int, default=1000, help="entries per read (1000)")
    parser.add_argument("--block-ms", type=int, default=1000, help="wait per read (1000)")
    parser.add_argument("--timeout-ms", type=int, default=5000, help="Redis timeout (5000)")
    parser.add_argument(
        "--until-idle", action="store_true", help="stop once a read finds no new entries"
    )
    parser.set_defaults(run=run_consume)


def run_consume(args: argparse.Namespace) -> int:
    if args.batch < 1 or args.block_ms < 1 or args.timeout_ms < 1:
        return _fail("--batch, --block-ms and --timeout-ms must be at least 1", 2)
    try:
        keys = keyring_from_args(args)
        hmac_key = _hmac_key(args.key_env)
    except ValueError as exc:
        return _fail(str(exc), 2)
    config = AuditConfig(dir=str(args.dir), fsync="batch", retention_days=0)
    client = redis.Redis.from_url(
        args.redis,
        socket_timeout=(args.block_ms + args.timeout_ms) / 1000,
        socket_connect_timeout=args.timeout_ms / 1000,
    )
    consumer = StreamConsumer(
        client,
        args.stream,
        SegmentLog(config, hmac_key, keys),
        keys,
        args.checkpoint,
        args.batch,
        args.block_ms,
    )
    try:
        consumer.start()
    except (ConsumeError, KeyProblem) as exc:
        consumer.close()
        client.close()
        return _fail(str(exc), 2)
    stopping = threading.Event()
    try:
        with _stop_on_signals(stopping):
            code = _loop(consumer, stopping, args.until_idle)
    finally:
        consumer.close()
        client.close()
    print(f"sluice audit consume: {consumer.written} records written to {args.dir}")
    return code


def _loop(consumer: StreamConsumer, stopping: threading.Event, until_idle: bool) -> int:
    failing = False
    while not stopping.is_set():
        try:
            read = consumer.step()
        except RecordTampered as exc:
            return _fail(f"{exc}; the log and checkpoint stop before this batch", 1)
        except KeyProblem as exc:
            return _fail(str(exc), 2)
        except redis.RedisError as exc:
            if until_idle:
                return _fail(f"cannot read the stream: {exc}", 1)
            if not failing:
                print(
                    f"sluice audit consume: cannot read the stream ({exc}); retrying every "
                    f"{RETRY_S:g} s",
                    file=sys.stderr,
                )
            failing = True
            stopping.wait(RETRY_S)
            continue
        if failing:
            print("sluice audit consume: reading the stream again", file=sys.stderr)
            failing = False
        if read == 0 and until_idle:
            break
    return 0


def _hmac_key(key_env: str | None) -> bytes | None:
    name = key_env or DEFAULT_HMAC_KEY_ENV
    key = os.environ.get(name)
    if key_env and not key:
        raise ValueError(f"--key-env {key_env}: that environment variable is not set or empty")
    if not key:
        print(
            f"sluice audit consume: {name} is not set; seals will not be authenticated",
            file=sys.stderr,
        )
    return os.fsencode(key) if key else None


@contextmanager
def _stop_on_signals(stopping: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT end the loop after the batch in hand, so the segment gets sealed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in previous:
        signal.signal(sig, lambda *_: stopping.set())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _fail(message: str, code: int) -> int:
    print(f"sluice audit consume: {message}", file=sys.stderr)
    return code
