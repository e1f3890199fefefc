"""Where the benchmark lives in the source tree.

The bench/ folder (put on PYTHONPATH for the worker processes) and the default results file.
"""

from __future__ import annotations

from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = BENCH_DIR.parent
DEFAULT_OUT = BENCH_DIR / "results" / "engine_throughput.json"
