"""Rate limits and quotas: requests, tokens and concurrency per key, tenant, model and overall."""

from gateway.ratelimit.limiter import Admission, Limiter

__all__ = ["Admission", "Limiter"]
