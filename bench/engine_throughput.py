#!/usr/bin/env python3
"""Measure the engine's throughput and latency against transformers generate(), on one workload.

A seeded ShareGPT-like workload (prompts of 16 to 1,024 tokens, outputs of 16 to 256, greedy,
EOS ignored so every system makes exactly the same tokens) runs through the engine (backend.LLM,
all requests at once, every token timed) and through transformers' generate() in static batches
of several sizes; the best batch size is compared. The machine's fp32 GEMM rate on the model's
shapes says how close the engine comes to the compute limit. A shared-prefix variant (most
requests start with one long system prompt, Poisson arrivals) runs the engine with prefix caching
off and on and compares time to first token.

    .venv/bin/python bench/engine_throughput.py            # 200 requests, HF batches 1,8,16,32
    .venv/bin/python bench/engine_throughput.py --quick    # 16 requests, HF batches 4,16
    .venv/bin/python bench/engine_throughput.py --cpus 0-1 --no-hf
    .venv/bin/python bench/engine_throughput.py --shared-prefix --rate 0.5

See bench/README.md for the method and the meaning of each column. The code lives in the
package bench/engine/ (one module per concept; engine/benchmark.py reads top to bottom through
one run; each measured phase runs in its own process, engine/worker.py); this file is its entry
point, for the command line and `sluice bench engine` (which loads it with runpy.run_path and
calls main).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, bench/ is already sys.path[0]; loaded with runpy.run_path (sluice bench
# engine) it is not, so put it there before importing the package that sits beside us.
_BENCH_DIR = str(Path(__file__).resolve().parent)
if _BENCH_DIR not in sys.path:
    sys.path.insert(0, _BENCH_DIR)

from engine.cli import main  # noqa: E402

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
