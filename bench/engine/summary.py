"""From what the workers measured to the figures reported: rates, percentiles, ratios.

Pure functions over the results' plain data; no clock, no torch.
"""

from __future__ import annotations

import math
from typing import Any

from engine.records import RequestRecord

# The shared-prefix variant's goal: TTFT p50 at least this many times lower with caching on.
PREFIX_TTFT_TARGET = 4.0
MIB = 2**20


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100), interpolated linearly between ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize_run(result: dict[str, Any]) -> dict[str, Any]:
    """One run's throughput, latency percentiles and memory, from its per-request records."""
    records = [RequestRecord.from_json(r) for r in result["records"]]
    wall_s = result["wall_s"]
    prompt = sum(r.prompt_tokens for r in records)
    output = sum(r.output_tokens for r in records)
    ttft = [r.ttft_s for r in records if r.ttft_s is not None]
    tpot = [r.tpot_s for r in records if r.tpot_s is not None]
    mismatched = [r.request_id for r in records if r.output_tokens != r.target_tokens]
    process = result.get("process", {})
    return {
        "requests": len(records),
        "prompt_tokens": prompt,
        "output_tokens": output,
        "cached_prompt_tokens": sum(r.cached_tokens for r in records),
        "wall_s": wall_s,
        "busy_s": result.get("busy_s", wall_s),
        "output_tokens_per_s": _rate(output, wall_s),
        "total_tokens_per_s": _rate(prompt + output, wall_s),
        "requests_per_s": _rate(len(records), wall_s),
        "ttft_p50_ms": _ms(percentile(ttft, 50)),
        "ttft_p99_ms": _ms(percentile(ttft, 99)),
        "tpot_p50_ms": _ms(percentile(tpot, 50)),
        "tpot_p99_ms": _ms(percentile(tpot, 99)),
        "peak_rss_mib": _mib(process.get("peak_rss_bytes")),
        "threads": process.get("threads"),
        "length_mismatches": len(mismatched),
        "mismatched_requests": mismatched[:10],
    }


def compare_main(
    engine: dict[str, Any] | None,
    hf: dict[int, dict[str, Any]],
    gemm_gflops: float | None,
    model_parameters: int | None,
) -> dict[str, Any]:
    """Engine against the best HF batch size, and how close each came to the GEMM rate."""
    best = max(hf, key=lambda b: hf[b]["output_tokens_per_s"] or 0.0) if hf else None
    out: dict[str, Any] = {"hf_best_batch_size": best, "engine_vs_hf_best": None}
    if engine is not None and best is not None:
        h = hf[best]
        out["engine_vs_hf_best"] = {
            key: _ratio(engine[key], h[key])
            for key in ("output_tokens_per_s", "total_tokens_per_s", "requests_per_s")
        }
        # Latencies: how many times lower the engine's are (> 1: the engine is faster).
        for key in ("ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms"):
            out["engine_vs_hf_best"][f"{key}_lower_by"] = _ratio(h[key], engine[key])
    systems = {"engine": engine, "hf_best": hf.get(best) if best is not None else None}
    out["compute"] = {
        name: compute_use(s, gemm_gflops, model_parameters)
        for name, s in systems.items()
        if s is not None
    }
    return out


def compute_use(
    summary: dict[str, Any], gemm_gflops: float | None, model_parameters: int | None
) -> dict[str, Any] | None:
    """2 x parameters x tokens computed / wall time, against the measured GEMM rate.

    Tokens computed: prompt tokens not served by the prefix cache, plus output tokens. HF's
    padding and thrown-away tokens are not counted: this is useful work only.
    """
    if not model_parameters or not summary["wall_s"]:
        return None
    tokens = summary["prompt_tokens"] - summary["cached_prompt_tokens"] + summary["output_tokens"]
    achieved = 2.0 * model_parameters * tokens / summary["wall_s"] / 1e9
    return {
        "tokens_computed": tokens,
        "achieved_gflops": achieved,
        "fraction_of_gemm": achieved / gemm_gflops if gemm_gflops else None,
    }


def compare_prefix(on: dict[str, Any], off: dict[str, Any]) -> dict[str, Any]:
    """Prefix caching on against off: how many times lower TTFT is, and throughput."""
    ttft_p50 = _ratio(off["ttft_p50_ms"], on["ttft_p50_ms"])
    return {
        "ttft_p50_lower_by": ttft_p50,
        "ttft_p99_lower_by": _ratio(off["ttft_p99_ms"], on["ttft_p99_ms"]),
        "output_tokens_per_s_ratio": _ratio(on["output_tokens_per_s"], off["output_tokens_per_s"]),
        "busy_s_ratio": _ratio(on["busy_s"], off["busy_s"]),
        "target_ttft_p50_lower_by": PREFIX_TTFT_TARGET,
        "target_met": ttft_p50 is not None and ttft_p50 >= PREFIX_TTFT_TARGET,
    }


def _rate(n: float, seconds: float) -> float | None:
    return n / seconds if seconds > 0 else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def _mib(n: int | None) -> float | None:
    return None if n is None else n / MIB
