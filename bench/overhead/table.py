"""The results table: one line per cell, or per (cell, gateway variant) with --ratelimit.

Pure formatting of the summary; the LiteLLM and rate-limit columns appear only when measured.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from overhead.ratelimit_variants import gateway_target
from overhead.summary import difference

Cells = list[tuple[str, str]]  # (column header, text) pairs, in column order
Agg = dict[str, Any]  # one target's figures in one cell (see summary.summarize)


def format_table(summary: list[dict[str, Any]], variants: Sequence[str] = ("none",)) -> str:
    """One line per cell; the LiteLLM columns appear only when it was measured.

    With --ratelimit variants other than just "none", one line per (cell, variant): the
    gateway columns are that variant's gateway; the direct and LiteLLM columns are shown on
    the cell's first line only.
    """
    by_variant = list(variants) != ["none"]
    columns = _Columns(
        with_litellm=any(row.get("litellm") for row in summary),
        by_variant=by_variant,
        with_redis="redis" in variants,
    )
    headers = [h for h, _text in columns.line({"stream": False, "concurrency": 0})]
    rows = [
        [text for _h, text in columns.line(row, variant, i == 0)]
        for row in summary
        for i, variant in enumerate(variants if by_variant else ["none"])
    ]
    left = 3 if by_variant else 2  # left-aligned leading columns
    return _render(headers, rows, left)


def _render(headers: list[str], rows: list[list[str]], left: int) -> str:
    """Aligned columns under a header and a rule; the first `left` columns left-aligned."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = [
        "  ".join(
            h.rjust(w) if i >= left else h.ljust(w)
            for i, (h, w) in enumerate(zip(headers, widths, strict=True))
        ),
        "  ".join("-" * w for w in widths),
    ]
    for r in rows:
        lines.append(
            "  ".join(
                c.rjust(w) if i >= left else c.ljust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(lines)


def _num(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _p50_p99(agg: Agg) -> str:
    if not agg:
        return "-"
    return f"{_num(agg.get('lat_p50_ms'), '.3f')} / {_num(agg.get('lat_p99_ms'), '.3f')}"


@dataclass(frozen=True)
class _Columns:
    """Which optional columns the table has, and the text of each line."""

    with_litellm: bool
    by_variant: bool
    with_redis: bool

    def line(self, row: dict[str, Any], variant: str = "none", first: bool = True) -> Cells:
        """The cells of one line: a summary row, seen through one gateway variant."""
        d = row.get("direct") or {}
        g = row.get(gateway_target(variant)) or {}
        lt = row.get("litellm") or {}
        rl = (row.get("ratelimit") or {}).get(variant) or {}

        def shared(text: str) -> str:  # direct and LiteLLM figures: first line of a cell
            return text if first else ""

        out = [("mode", "stream" if row["stream"] else "json"), ("conc", str(row["concurrency"]))]
        if self.by_variant:
            out.append(("ratelimit", variant))
        out += self._throughput(d, g, lt, shared)
        out += self._latency(d, g, lt, rl, shared, stream=row["stream"])
        out += self._cpu(g, lt, rl, shared)
        counted = (d, g, lt) if first else (g,)
        out += [
            ("non-2xx", str(sum(a.get("non_2xx", 0) for a in counted))),
            ("errors", str(sum(a.get("errors", 0) for a in counted))),
        ]
        return out

    def _throughput(self, d: Agg, g: Agg, lt: Agg, shared: Callable[[str], str]) -> Cells:
        g_rps, lt_rps = g.get("rps"), lt.get("rps")
        ratio = (g_rps / lt_rps) if g_rps is not None and lt_rps else None
        out = [
            ("direct req/s", shared(_num(d.get("rps"), ",.0f"))),
            ("gw req/s", _num(g_rps, ",.0f")),
        ]
        if self.with_litellm:
            out.append(("litellm req/s", shared(_num(lt_rps, ",.1f"))))
            out.append(("gw/litellm req/s", "-" if ratio is None else f"{ratio:.1f}x"))
        return out

    def _latency(
        self, d: Agg, g: Agg, lt: Agg, rl: Agg, shared: Callable[[str], str], stream: bool
    ) -> Cells:
        out = [("direct p50/p99 ms", shared(_p50_p99(d))), ("gw p50/p99 ms", _p50_p99(g))]
        if self.with_litellm:
            out.append(("litellm p50/p99 ms", shared(_p50_p99(lt))))
        added = difference(g.get("lat_p50_ms"), d.get("lat_p50_ms"))
        out.append(("added p50 ms", _num(added, "+.3f")))
        if self.by_variant:
            out.append(("added vs none p50 ms", _num(rl.get("added_vs_none_p50_ms"), "+.3f")))
        out.append(("gw TTFB p50 ms", _num(g.get("ttfb_p50_ms"), ".3f") if stream else "-"))
        return out

    def _cpu(self, g: Agg, lt: Agg, rl: Agg, shared: Callable[[str], str]) -> Cells:
        out = [("gw CPU us/req", _num(g.get("cpu_us_per_request"), ",.0f"))]
        if self.by_variant:
            added = rl.get("added_vs_none_cpu_us_per_request")
            out.append(("added vs none CPU us/req", _num(added, "+,.0f")))
        if self.with_redis:
            redis_cpu = g.get("redis_server_cpu_us_per_request")
            out.append(("redis CPU us/req", _num(redis_cpu, ",.1f")))
        if self.with_litellm:
            lt_cpu = lt.get("cpu_us_per_request")
            out.append(("litellm CPU us/req", shared(_num(lt_cpu, ",.0f"))))
        return out
