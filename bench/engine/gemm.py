"""The machine's fp32 matmul rate on the model's own shapes: the compute limit for a forward.

Each linear layer of a decoder block, as torch runs it (F.linear), at a step of `tokens` rows.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from engine.jobs import GemmJob

REPEATS = 3


def model_shapes(config: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """(in_features, out_features) of each kind of linear layer in a Llama decoder block."""
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    head_dim = int(config.get("head_dim") or hidden // heads)
    kv = int(config.get("num_key_value_heads") or heads) * head_dim
    intermediate = int(config["intermediate_size"])
    return {
        "mlp_up": (hidden, intermediate),  # gate_proj, up_proj
        "mlp_down": (intermediate, hidden),
        "attn_q_o": (hidden, heads * head_dim),
        "attn_k_v": (hidden, kv),
    }


def run_gemm(job: GemmJob) -> dict[str, Any]:
    torch.set_num_threads(job.threads)
    config = json.loads((Path(job.model_folder) / "config.json").read_text())
    shapes = model_shapes(config)
    results: dict[str, Any] = {}
    for name, (k, n) in tqdm(shapes.items(), desc="fp32 GEMM", unit="shape", file=sys.stderr):
        gflops = _time_linear(job.tokens, k, n, job.seconds_per_shape)
        results[name] = {"shape": f"[{job.tokens} x {k}] @ [{k} x {n}]", "gflops": gflops}
    best = max(results, key=lambda name: results[name]["gflops"])
    return {
        "tokens": job.tokens,
        "shapes": results,
        "best_shape": best,
        "gflops": results[best]["gflops"],
    }


def _time_linear(m: int, k: int, n: int, seconds: float) -> float:
    """GFLOP/s of y = x @ w.T for x [m, k], w [n, k]: the best of a few timed repeats."""
    x = torch.randn(m, k)
    w = torch.randn(n, k)
    with torch.inference_mode():
        for _ in range(3):
            F.linear(x, w)
        best_s_per_call = float("inf")
        for _ in range(REPEATS):
            calls, t0 = 0, time.perf_counter()
            while True:
                F.linear(x, w)
                calls += 1
                elapsed = time.perf_counter() - t0
                if elapsed >= seconds / REPEATS and calls >= 3:
                    break
            best_s_per_call = min(best_s_per_call, elapsed / calls)
    return 2.0 * m * k * n / best_s_per_call / 1e9
