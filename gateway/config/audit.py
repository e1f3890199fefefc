"""The `audit` section of a policy: where the audit log lives and what each record keeps.

docs/audit.md describes the file format and what verification guarantees.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import Field, ValidationInfo, model_validator

from gateway.audit.encryption import DEFAULT_ENC_KEY_ENV, env_key
from gateway.config.base import StrictModel


class AuditEncryption(StrictModel):
    """AES-256-GCM per record; `key_env` encrypts, old keys only decrypt (after a rotation)."""

    key_env: str = Field(DEFAULT_ENC_KEY_ENV, min_length=1)
    old_key_envs: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _keys_are_set(self, info: ValidationInfo) -> AuditEncryption:
        # The loader may pass its environment as context; otherwise the process's is used.
        context = info.context if isinstance(info.context, Mapping) else {}
        env: Mapping[str, str] = context.get("env", os.environ)
        for path, name in self.key_envs():
            try:
                env_key(name, env)
            except ValueError as exc:
                raise _located(path, str(exc)) from None
        return self

    def key_envs(self) -> list[tuple[tuple[str | int, ...], str]]:
        """(key path, env var name) of every key, the current one first."""
        old = [(("old_key_envs", i), name) for i, name in enumerate(self.old_key_envs)]
        return [(("key_env",), self.key_env), *old]


class AuditRedis(StrictModel):
    """The Redis stream several replicas feed; `sluice audit consume` turns it into one log."""

    url: str = "redis://127.0.0.1:6379/0"
    stream: str = Field("sluice:audit", min_length=1)
    # Trimmed approximately (MAXLEN ~) on every write; 0 keeps every entry.
    maxlen: int = Field(1_000_000, ge=0)
    # Every call to Redis is bounded by this; a batch that fails spills to the file log.
    timeout_ms: int = Field(1000, ge=1, le=60_000)
    # After a failure, batches go straight to the file log this long before Redis is retried.
    retry_interval_s: float = Field(5.0, gt=0, le=3600)


class AuditConfig(StrictModel):
    dir: str = "./audit"
    # none: no message text; hashed: sha256 of request and response bodies; redacted: the text
    # as it went upstream and came back (after guards, once guards exist).
    content: Literal["none", "hashed", "redacted"] = "none"
    client_ip: Literal["full", "truncated", "none"] = "truncated"
    hmac_key_env: str = "SLUICE_AUDIT_HMAC_KEY"
    fsync: Literal["none", "batch"] = "batch"
    # The writer gathers records this long before a write (and fsync): one write per interval
    # at low rates instead of one per request. It bounds what a crash can lose, with the queue.
    flush_interval_ms: float = Field(10.0, ge=0, le=1000)
    max_segment_bytes: int = Field(64 * 1024 * 1024, ge=4096)
    max_segment_age_s: float = Field(3600.0, gt=0)
    retention_days: float = Field(90.0, ge=0)
    queue_size: int = Field(65536, ge=16)
    # file: segments in `dir`; redis_stream: batches go to a Redis stream, and to `dir` only
    # while Redis does not answer (the spill).
    sink: Literal["file", "redis_stream"] = "file"
    redis: AuditRedis = Field(default_factory=AuditRedis)
    encryption: AuditEncryption | None = None

    @model_validator(mode="after")
    def _redis_url(self) -> AuditConfig:
        if self.sink == "redis_stream" and not self.redis.url.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise _located(("redis", "url"), "must start with redis://, rediss:// or unix://")
        return self


def _located(path: tuple[str | int, ...], message: str) -> ValueError:
    """An error the policy loader reports at `path` below the model that raised it."""
    # schema.py imports this module, so its error class is imported when first needed.
    from gateway.config.schema import LocatedError

    return LocatedError(path, message)
