"""The kernel benchmark (bench/kernels.py) end to end in --smoke: the GPU code paths, tiny, through
the Triton interpreter on the CPU. A smoke test of the sections and their rows, not a timing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")

BENCH = Path(__file__).resolve().parents[2] / "bench" / "kernels.py"


def test_smoke_run_writes_the_attention_and_decode_sections(tmp_path: Path) -> None:
    out = tmp_path / "kernels.json"
    # In a fresh process: the interpreter must be chosen before any kernel module is imported.
    env = {**os.environ, "TRITON_INTERPRET": "1", "GIT_COMMIT": "abc123"}
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--threads", "1", "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["machine"]["device"] == "cpu"
    assert results["machine"]["git_commit"] == "abc123"

    (attention,) = results["gpu"]["decode_attention"]
    assert attention["triton_ms"] > 0 and attention["torch_ms"] > 0
    assert attention["kv_mb"] == pytest.approx(2 * 100 * 2 * 2 * 64 * 2 / 1e6)
    assert "fits_l2" not in attention  # graph timings and L2 size are CUDA-only

    rows = results["gpu"]["decode_tokens_per_s"]
    variants = [(r["kernels"], r["padded_to_graph_size"], r["int8"]) for r in rows]
    assert variants == [("triton", False, False), ("triton", True, False), ("torch", False, False)]
    # A failing variant records its error as a string instead of a rate.
    assert all(isinstance(r["tokens_per_s"], float) and r["tokens_per_s"] > 0 for r in rows)
    assert not any(r["cuda_graph"] for r in rows)
    assert "int8_linear" not in results["gpu"] and "engine_decode" not in results["gpu"]
