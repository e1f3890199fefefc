"""The results tables, in the gateway benchmark's style: aligned columns under a rule.

Pure formatting of the summaries: one table for the main workload, one for the shared prefix.
"""

from __future__ import annotations

from typing import Any


def render(headers: list[str], rows: list[list[str]], left: int) -> str:
    """Aligned columns under a header and a rule; the first `left` columns left-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *map(line, rows)])


def main_table(
    engine: dict[str, Any] | None,
    engine_max_seqs: int | None,
    hf: dict[int, dict[str, Any]],
    hf_best: int | None,
) -> str:
    headers = [
        "system",
        "batch",
        "out tok/s",
        "total tok/s",
        "req/s",
        "TTFT p50/p99 ms",
        "TPOT p50/p99 ms",
        "peak RSS MiB",
        "wall s",
        "len errors",
    ]
    rows = []
    if engine is not None:
        batch = f"cont <={engine_max_seqs}" if engine_max_seqs else "cont"
        rows.append(["engine", batch, *_figures(engine)])
    for size, s in hf.items():
        rows.append(["hf generate", f"{size}{' *' if size == hf_best else ''}", *_figures(s)])
    return render(headers, rows, left=2)


def prefix_table(off: dict[str, Any], on: dict[str, Any]) -> str:
    headers = [
        "prefix caching",
        "req/s",
        "out tok/s",
        "TTFT p50/p99 ms",
        "TPOT p50/p99 ms",
        "cached prompt",
        "busy s",
        "peak RSS MiB",
        "len errors",
    ]
    rows = []
    for name, s in (("off", off), ("on", on)):
        cached = s["cached_prompt_tokens"] / s["prompt_tokens"] if s["prompt_tokens"] else None
        rows.append(
            [
                name,
                num(s["requests_per_s"], ".3f"),
                num(s["output_tokens_per_s"], ",.1f"),
                pair(s["ttft_p50_ms"], s["ttft_p99_ms"]),
                pair(s["tpot_p50_ms"], s["tpot_p99_ms"], ",.1f"),
                num(cached, ".0%"),
                num(s["busy_s"], ",.1f"),
                num(s["peak_rss_mib"], ",.0f"),
                str(s["length_mismatches"]),
            ]
        )
    return render(headers, rows, left=1)


def _figures(s: dict[str, Any]) -> list[str]:
    return [
        num(s["output_tokens_per_s"], ",.1f"),
        num(s["total_tokens_per_s"], ",.1f"),
        num(s["requests_per_s"], ".3f"),
        pair(s["ttft_p50_ms"], s["ttft_p99_ms"]),
        pair(s["tpot_p50_ms"], s["tpot_p99_ms"], ",.1f"),
        num(s["peak_rss_mib"], ",.0f"),
        num(s["wall_s"], ",.1f"),
        str(s["length_mismatches"]),
    ]


def num(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def pair(a: float | None, b: float | None, fmt: str = ",.0f") -> str:
    return f"{num(a, fmt)} / {num(b, fmt)}"
