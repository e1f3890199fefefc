"""Where the guard benchmark reads its labeled sets and writes its results."""

from __future__ import annotations

from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = BENCH_DIR.parent
DATA_DIR = BENCH_DIR / "data"
DEFAULT_OUT = BENCH_DIR / "results" / "guards.json"
