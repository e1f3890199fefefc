#!/usr/bin/env python3
"""Measure what the Sluicegate gateway adds over calling the upstream directly.

A fast C mock of an OpenAI-compatible upstream (bench/mock_upstream.c) and a
closed-loop C load generator (bench/loadgen.c) share one CPU; the gateway gets
another CPU to itself. For every (stream, concurrency) cell the load generator
runs against the mock directly and against the gateway in front of it, in
interleaved rounds, and the medians over rounds are compared. With --litellm,
LiteLLM's proxy is started in front of the same mock, on the gateway's CPU, and
measured as a third target in the same rounds (only one of the two proxies is
under load at any time; the other sits idle). With --ratelimit, one gateway per
rate-limit variant (none, in-memory store, Redis store) runs in the same way, to
measure what the rate limiter costs per request.

    .venv/bin/python bench/gateway_overhead.py            # 3 rounds x 5 s per cell
    .venv/bin/python bench/gateway_overhead.py --quick    # 1 round x 2 s per cell
    .venv/bin/python bench/gateway_overhead.py --direct-only --quick
    .venv/bin/python bench/gateway_overhead.py --litellm  # also LiteLLM's proxy
    .venv/bin/python bench/gateway_overhead.py --ratelimit none,memory,redis

See bench/README.md for the method and the meaning of each column. The code lives in the
package bench/overhead/ (one module per concept; overhead/benchmark.py reads top to bottom
through one run); this file is its entry point, for the command line, `sluice bench gateway`
(which loads it with runpy.run_path and calls main) and `make bench-gateway`.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, bench/ is already sys.path[0]; loaded with runpy.run_path (sluice bench
# gateway) it is not, so put it there before importing the package that sits beside us.
_BENCH_DIR = str(Path(__file__).resolve().parent)
if _BENCH_DIR not in sys.path:
    sys.path.insert(0, _BENCH_DIR)

from overhead.cli import main  # noqa: E402

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
