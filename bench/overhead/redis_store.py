"""The Redis that --ratelimit redis counts in: our connection, our keys, its server process.

Keys get a random prefix per benchmark and are deleted (SCAN + DEL) at the end.
"""

from __future__ import annotations

import os
from typing import Any

from overhead.console import log
from overhead.errors import BenchError
from overhead.redis_server import local_redis_server


def redis_client(url: str) -> Any:
    """A synchronous client of the `redis` package (a dependency of the gateway) for url."""
    try:
        import redis
    except ImportError as exc:
        raise BenchError("--ratelimit redis needs the `redis` package in this Python") from exc
    return redis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=5.0)


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def redis_keys(client: Any, prefix: str) -> list[bytes]:
    """Every key under prefix in the client's database (SCAN, never KEYS)."""
    return list(client.scan_iter(match=_glob_escape(prefix) + "*", count=1000))


def delete_redis_keys(client: Any, prefix: str) -> int:
    """SCAN + DEL every key under prefix; returns how many were deleted."""
    deleted = 0
    keys = redis_keys(client, prefix)
    for i in range(0, len(keys), 500):
        deleted += int(client.delete(*keys[i : i + 500]))
    return deleted


class RedisStore:
    """One benchmark's use of a Redis: connected and answering, with our keys under prefix."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self.client = redis_client(url)
        try:
            self.client.ping()
            self.version = self.client.info("server").get("redis_version")
        except Exception as exc:  # redis.RedisError, OSError
            raise BenchError(f"Redis at {url} does not answer: {exc}") from exc
        self.keys_deleted: list[int] = []
        self.server_pid: int | None = None
        self.server_cpus: list[int] | None = None

    def locate_server(self) -> None:
        """Find redis-server on this machine (the benchmark does not pin it) and say so."""
        self.server_pid = local_redis_server(self.url)
        if self.server_pid is not None:
            try:
                self.server_cpus = sorted(os.sched_getaffinity(self.server_pid))
            except OSError:
                pass
        if self.server_pid is None:
            log(
                f"warning: no redis-server process for {self.url} found on this machine; "
                "Redis CPU time will not be reported"
            )
        else:
            log(
                f"Redis {self.version} at {self.url}: redis-server pid {self.server_pid}, "
                f"not pinned (allowed CPUs {','.join(map(str, self.server_cpus or []))}); "
                f"key prefix {self.prefix!r}"
            )

    def describe(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "version": self.version,
            "server_pid": self.server_pid,
            "server_cpus_allowed": self.server_cpus,
            "pinned_by_benchmark": False,
        }

    def has_keys(self) -> bool:
        return bool(redis_keys(self.client, self.prefix))

    def drop_keys(self) -> None:
        """Delete our keys and close the connection; a failure is only a warning."""
        try:
            n = delete_redis_keys(self.client, self.prefix)
        except Exception as exc:  # redis.RedisError, OSError
            log(f"warning: could not delete the Redis keys under {self.prefix!r}: {exc}")
            return
        finally:
            self.client.close()
        self.keys_deleted.append(n)
        if n:
            log(f"deleted {n} Redis keys under {self.prefix!r}")
