#!/usr/bin/env python3
"""Measure the guards: latency of each and of the whole input pipeline, and detection quality.

Each guard (validation, pii, injection, moderation, the keyword_filter example plugin) is built
from a policy entry as the gateway builds it and timed on fresh 200-byte, 1 KB and 8 KB
messages; the input pipeline is timed on fresh 1 KB messages and on 20-turn chats (turns 2-20,
its cache warm from the earlier turns). Quality: the PII guard on a seeded labeled set made with
Faker (per-entity precision and recall, leak rate, over-redaction), the injection and
moderation guards on bench/data/*.jsonl (precision and recall per split).

    .venv/bin/python bench/guards.py                 # full run (minutes: spaCy on every text)
    .venv/bin/python bench/guards.py --quick         # smoke test
    .venv/bin/python bench/guards.py --quick --no-presidio   # seconds: PII guard on secrets only

See bench/README.md for the method and the meaning of each column. The code lives in the
package bench/guardbench/ (one module per concept; guardbench/benchmark.py reads top to
bottom through one run); this file is its entry point.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, bench/ is already sys.path[0]; loaded with runpy.run_path (sluice bench
# guards) it is not, so put it there before importing the package that sits beside us.
_BENCH_DIR = str(Path(__file__).resolve().parent)
if _BENCH_DIR not in sys.path:
    sys.path.insert(0, _BENCH_DIR)

from guardbench.cli import main  # noqa: E402

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
