"""The `x-ratelimit-*` response headers, in the format OpenAI sends them."""

from __future__ import annotations

import math
from collections.abc import Sequence

from gateway.ratelimit.buckets import Bucket, Unit, Verdict


def format_reset(seconds: float) -> str:
    """OpenAI's duration format: `20ms`, `1s`, `6m0s`, `1h2m3s`."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    total = math.ceil(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def rate_headers(
    buckets: Sequence[Bucket], verdicts: Sequence[Verdict]
) -> list[tuple[bytes, bytes]]:
    """For requests and for tokens, the headers of the tightest limit (fewest units left)."""
    headers: list[tuple[bytes, bytes]] = []
    for unit, suffix in ((Unit.REQUESTS, b"requests"), (Unit.TOKENS, b"tokens")):
        tightest: tuple[Bucket, Verdict] | None = None
        for bucket, verdict in zip(buckets, verdicts, strict=True):
            if bucket.unit is unit and (
                tightest is None or verdict.remaining < tightest[1].remaining
            ):
                tightest = (bucket, verdict)
        if tightest is not None:
            bucket, verdict = tightest
            headers.append((b"x-ratelimit-limit-" + suffix, str(bucket.limit).encode()))
            headers.append((b"x-ratelimit-remaining-" + suffix, str(verdict.remaining).encode()))
            headers.append((b"x-ratelimit-reset-" + suffix, format_reset(verdict.reset_s).encode()))
    return headers
