"""Compiling the C tools (mock upstream and load generator) into bench/.build/.

A tool is rebuilt only when its source is newer than its binary, or when forced.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from overhead.console import log
from overhead.errors import BenchError
from overhead.paths import BENCH_DIR, REPO_ROOT

BUILD_DIR = BENCH_DIR / ".build"
TOOLS = ("mock_upstream", "loadgen")


def build_tools(force: bool = False) -> dict[str, Path]:
    """Compile the C tools into bench/.build/ when a source is newer than its binary."""
    cc = os.environ.get("CC", "gcc")
    if shutil.which(cc) is None:
        raise BenchError(f"C compiler {cc!r} not found (set CC)")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for name in TOOLS:
        src = BENCH_DIR / f"{name}.c"
        binary = BUILD_DIR / name
        stale = force or not binary.exists() or src.stat().st_mtime > binary.stat().st_mtime
        if stale:
            tmp = binary.with_name(binary.name + ".tmp")
            cmd = [cc, "-O2", "-Wall", "-o", str(tmp), str(src)]
            log(f"building {binary.relative_to(REPO_ROOT)}: {' '.join(cmd)}")
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                raise BenchError(f"compiling {src.name} failed:\n{res.stderr}")
            if res.stderr.strip():
                log(res.stderr.rstrip())
            os.replace(tmp, binary)
        out[name] = binary
    return out
