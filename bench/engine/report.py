"""What the benchmark prints on stdout at the end: titles, the two tables and notes under them.

The notes give the engine/HF ratios, the GEMM rate and the share of it the engine reached, and the
prefix-caching TTFT ratio against its target.
"""

from __future__ import annotations

from typing import Any

from engine.options import AUTO_RATE_LOAD, Options
from engine.results import Measured
from engine.table import main_table, num, prefix_table


def format_report(opts: Options, m: Measured) -> str:
    lines: list[str] = []
    threads = f"{opts.threads} thread{'s' if opts.threads != 1 else ''}"
    pinning = f"pinned to CPUs {opts.cpus}" if opts.cpus else "unpinned"
    where = "all phases in this process" if opts.in_process else "one process per run"
    if m.engine_summary is not None or m.hf_summaries:
        w = m.workloads["main"]
        lines += [
            "",
            f"Engine throughput: {w['requests']} ShareGPT-like requests (seed {opts.seed}), "
            f"{w['prompt_tokens']['total']:,} prompt + {w['output_tokens']['total']:,} output "
            f"tokens, all at once; {opts.model}, float32{_formats(opts)}, greedy; {threads}, "
            f"{pinning}, {where}",
            main_table(m.engine_summary, _engine_max_seqs(m.engine), m.hf_summaries, _best(m)),
            *_memory_notes(m.engine),
            *_main_notes(m),
        ]
    if m.prefix_summaries:
        w = m.workloads["shared_prefix"]
        rate = m.prefix["off"].get("rate_per_s")
        lines += [
            "",
            f"Shared prefix: {w['requests']} requests, {w['shared_prefix_requests']} of them "
            f"starting with the same {opts.system_prompt_tokens}-token system prompt; Poisson "
            f"arrivals at {num(rate, '.3f')} req/s{_rate_source(m)}",
            prefix_table(m.prefix_summaries["off"], m.prefix_summaries["on"]),
            *_prefix_notes(m),
        ]
    return "\n".join(lines)


def _formats(opts: Options) -> str:
    """The engine's int8 options, as the title says them."""
    parts = [
        label
        for label, value in (("int8 weights", opts.weights), ("int8 KV cache", opts.kv_cache))
        if value == "int8"
    ]
    return "".join(f", engine: {p}" for p in parts)


def _memory_notes(engine: dict[str, Any] | None) -> list[str]:
    if not engine or engine.get("weight_bytes") is None:
        return []
    mib = 2**20
    return [
        f"engine memory: weights {engine['weight_bytes'] / mib:,.1f} MiB; KV cache "
        f"{engine['kv_cache_bytes'] / mib:,.1f} MiB in {engine['kv_cache_blocks']:,} blocks"
    ]


def _main_notes(m: Measured) -> list[str]:
    notes = []
    c = m.main_comparison or {}
    vs = c.get("engine_vs_hf_best")
    if vs:
        notes.append(
            f"engine / HF best (batch {c['hf_best_batch_size']}): "
            f"{num(vs['output_tokens_per_s'], '.2f')}x output tok/s, "
            f"{num(vs['total_tokens_per_s'], '.2f')}x total tok/s; TTFT p50 "
            f"{num(vs['ttft_p50_ms_lower_by'], '.2f')}x lower, TPOT p50 "
            f"{num(vs['tpot_p50_ms_lower_by'], '.2f')}x lower"
        )
    if m.gemm is not None:
        best = m.gemm["shapes"][m.gemm["best_shape"]]
        notes.append(
            f"fp32 GEMM (best of the model's linear layers at {m.gemm['tokens']} tokens: "
            f"{m.gemm['best_shape']} {best['shape']}): {m.gemm['gflops']:.1f} GFLOP/s"
        )
    params = (m.engine or {}).get("model_parameters") or _hf_parameters(m)
    for name, use in (c.get("compute") or {}).items():
        if use is None:
            continue
        s = m.engine_summary if name == "engine" else m.hf_summaries[c["hf_best_batch_size"]]
        assert s is not None
        notes.append(
            f"{'engine' if name == 'engine' else 'HF best'}: 2 x {params / 1e6:.1f}M params x "
            f"{use['tokens_computed']:,} tokens / {s['wall_s']:.1f} s = "
            f"{use['achieved_gflops']:.1f} GFLOP/s"
            + (
                f" = {use['fraction_of_gemm']:.1%} of the GEMM rate"
                if use["fraction_of_gemm"] is not None
                else ""
            )
        )
    bad = sum(s["length_mismatches"] for s in _main_summaries(m))
    if bad:
        notes.append(f"WARNING: {bad} requests produced a different number of tokens than asked")
    return notes


def _prefix_notes(m: Measured) -> list[str]:
    c = m.prefix_comparison or {}
    met = "met" if c.get("target_met") else "NOT met"
    notes = [
        f"TTFT p50 {num(c.get('ttft_p50_lower_by'), '.2f')}x lower with prefix caching "
        f"(target >= {c.get('target_ttft_p50_lower_by', 0):g}x: {met}); p99 "
        f"{num(c.get('ttft_p99_lower_by'), '.2f')}x lower; time in step() "
        f"{num(c.get('busy_s_ratio'), '.2f')}x of caching off"
    ]
    bad = sum(s["length_mismatches"] for s in m.prefix_summaries.values())
    if bad:
        notes.append(f"WARNING: {bad} requests produced a different number of tokens than asked")
    return notes


def _rate_source(m: Measured) -> str:
    cal = m.prefix["off"].get("calibration")
    if not cal:
        return " (--rate)"
    return (
        f" (auto: {AUTO_RATE_LOAD:g} / {cal['prefill_s']:.2f} s, one uncached prefill of "
        f"{cal['prompt_tokens'][0]} tokens alone)"
    )


def _engine_max_seqs(engine: dict[str, Any] | None) -> int | None:
    return (engine or {}).get("engine_config", {}).get("max_num_seqs")


def _best(m: Measured) -> int | None:
    return (m.main_comparison or {}).get("hf_best_batch_size")


def _hf_parameters(m: Measured) -> int:
    return next((r.get("model_parameters", 0) for r in m.hf.values()), 0)


def _main_summaries(m: Measured) -> list[dict[str, Any]]:
    return [s for s in (m.engine_summary, *m.hf_summaries.values()) if s is not None]
