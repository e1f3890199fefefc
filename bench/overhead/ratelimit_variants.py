"""The --ratelimit variants of the gateway: none, an in-memory store or a Redis store.

Each variant is its own gateway process and target; this module names them and writes the
`ratelimit` policy section each one adds.
"""

from __future__ import annotations

from collections.abc import Sequence

# "none" is the gateway without a `ratelimit` section (target "gateway"); the others have one
# whose counters live in memory or in Redis (target "gateway_rl_<store>").
RATELIMIT_VARIANTS = ("none", "memory", "redis")
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
RATE_HEADER = "x-ratelimit-remaining-requests"
# Limits so high that nothing is ever refused, but every kind is on the path: rolling
# requests, rolling tokens (settled after every response; streams ask the upstream for
# usage) and concurrency slots (released by a second store call after every response).
RATELIMIT_TEMPLATE = """\
ratelimit:
  store: {store}
  redis: {{url: "{url}", key_prefix: "{prefix}", timeout_ms: 50}}
  limits:
    key:
      requests_per_minute: 100000000
      tokens_per_minute: 1000000000000
      concurrent: 100000
"""


def gateway_target(variant: str) -> str:
    """The target name of the gateway for a --ratelimit variant."""
    return "gateway" if variant == "none" else f"gateway_rl_{variant}"


def describe_variant(variant: str) -> str:
    """The gateway variant as log lines name it."""
    return "gateway" + ("" if variant == "none" else f" (ratelimit store: {variant})")


def policy_sections(variants: Sequence[str], redis_url: str, prefix: str) -> dict[str, str]:
    """The `ratelimit` section of each variant's policy but "none", all under one key prefix."""
    return {
        v: RATELIMIT_TEMPLATE.format(store=v, url=redis_url, prefix=prefix)
        for v in variants
        if v != "none"
    }
