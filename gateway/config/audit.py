"""The `audit` section of a policy: where the audit log lives and what each record keeps.

docs/audit.md describes the file format and what verification guarantees.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gateway.config.base import StrictModel


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
