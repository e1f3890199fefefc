"""Medians over rounds per cell and target, the comparisons between targets, idle proxies, Redis.

Pure functions over the list of run results; the summary is what the table and JSON show.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from overhead.ratelimit_variants import gateway_target

Run = dict[str, Any]

# Medians over rounds of every target's load-generator figures.
LOADGEN_KEYS = (
    "rps",
    "lat_p50_ms",
    "lat_p90_ms",
    "lat_p99_ms",
    "lat_max_ms",
    "ttfb_p50_ms",
    "ttfb_p99_ms",
)
# ... of a proxy's own CPU (run keys "<target>_<key>").
PROXY_CPU_KEYS = (
    "cpu_us_per_request",
    "cpu_utilization",
    "cpu_us_per_request_with_drain",
    "drain_cpu_s",
)
# ... of Redis's work, for the Redis variant's gateway.
REDIS_KEYS = (
    "redis_server_cpu_us_per_request",
    "redis_server_cpu_utilization",
    "redis_evalsha_per_request",
    "redis_script_us_per_request",
)


def difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _median(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None and v == v]
    return statistics.median(vals) if vals else None


def summarize(
    runs: list[Run],
    cells: list[tuple[bool, int]],
    targets: list[str],
    variants: Sequence[str] = ("none",),
) -> list[dict[str, Any]]:
    summary = []
    for stream, conc in cells:
        row: dict[str, Any] = {"stream": stream, "concurrency": conc}
        for target in targets:
            rs = [
                r
                for r in runs
                if r["stream"] == stream and r["concurrency"] == conc and r["target"] == target
            ]
            if rs:
                row[target] = _aggregate(rs, target)
        row.update(_comparisons(row))
        if list(variants) != ["none"]:
            row["ratelimit"] = _ratelimit_summary(row, variants)
        summary.append(row)
    return summary


def _aggregate(rs: list[Run], target: str) -> dict[str, Any]:
    """One target's figures in one cell, over its rounds."""
    agg: dict[str, Any] = {"rounds": len(rs)}
    for key in LOADGEN_KEYS:
        agg[key] = _median([r[key] for r in rs])
    agg["non_2xx"] = sum(r["non_2xx"] for r in rs)
    agg["errors"] = sum(r["errors"] for r in rs)
    agg["requests"] = sum(r["requests"] for r in rs)
    agg["aux_cpu_utilization"] = _median([r.get("aux_cpu_utilization") for r in rs])
    if target != "direct":
        for key in PROXY_CPU_KEYS:
            agg[key] = _median([r.get(f"{target}_{key}") for r in rs])
    if target == gateway_target("redis"):
        for key in REDIS_KEYS:
            agg[key] = _median([r.get(key) for r in rs])
    return agg


def _comparisons(row: dict[str, Any]) -> dict[str, Any]:
    """What the gateway and LiteLLM add over direct, and how they compare with each other."""
    d, g, lt = row.get("direct"), row.get("gateway"), row.get("litellm")
    out: dict[str, Any] = {}
    if d and g:
        out["added_p50_ms"] = difference(g["lat_p50_ms"], d["lat_p50_ms"])
        out["added_p99_ms"] = difference(g["lat_p99_ms"], d["lat_p99_ms"])
        out["added_ttfb_p50_ms"] = difference(g["ttfb_p50_ms"], d["ttfb_p50_ms"])
        out["throughput_ratio"] = (g["rps"] / d["rps"]) if d["rps"] else None
    if d and lt:
        out["litellm_added_p50_ms"] = difference(lt["lat_p50_ms"], d["lat_p50_ms"])
        out["litellm_added_p99_ms"] = difference(lt["lat_p99_ms"], d["lat_p99_ms"])
        out["litellm_throughput_ratio"] = (lt["rps"] / d["rps"]) if d["rps"] else None
    if g and lt:
        out["gw_litellm_throughput_ratio"] = (g["rps"] / lt["rps"]) if lt["rps"] else None
        gc, lc = g.get("cpu_us_per_request"), lt.get("cpu_us_per_request")
        out["litellm_gw_cpu_ratio"] = (lc / gc) if gc and lc else None
    return out


def _ratelimit_summary(row: dict[str, Any], variants: Sequence[str]) -> dict[str, Any]:
    """Per --ratelimit variant: what its gateway adds over direct, and over the one without."""
    d, none = row.get("direct"), row.get("gateway")
    out: dict[str, Any] = {}
    for variant in variants:
        a = row.get(gateway_target(variant))
        if not a:
            continue
        e: dict[str, Any] = {"target": gateway_target(variant)}
        if d:
            e["added_p50_ms"] = difference(a["lat_p50_ms"], d["lat_p50_ms"])
            e["added_p99_ms"] = difference(a["lat_p99_ms"], d["lat_p99_ms"])
        if none and variant != "none":
            e["added_vs_none_p50_ms"] = difference(a["lat_p50_ms"], none["lat_p50_ms"])
            e["added_vs_none_p99_ms"] = difference(a["lat_p99_ms"], none["lat_p99_ms"])
            e["added_vs_none_ttfb_p50_ms"] = difference(a["ttfb_p50_ms"], none["ttfb_p50_ms"])
            e["added_vs_none_cpu_us_per_request"] = difference(
                a.get("cpu_us_per_request"), none.get("cpu_us_per_request")
            )
            e["throughput_vs_none"] = (a["rps"] / none["rps"]) if none["rps"] else None
        if variant == "redis":
            e["redis_server_cpu_us_per_request"] = a.get("redis_server_cpu_us_per_request")
        out[variant] = e
    return out


def summarize_idle(runs: list[Run]) -> dict[str, Any]:
    """CPU each proxy used while it was not the target (it should be ~0)."""
    out: dict[str, Any] = {}
    names = list(dict.fromkeys(n for r in runs for n in r.get("idle_cpu_s", {})))
    for name in names:
        rs = [r for r in runs if name in r.get("idle_cpu_s", {})]
        if not rs:
            continue
        cpu = sum(r["idle_cpu_s"][name] for r in rs)
        wall = sum(r["wall_s"] for r in rs)
        out[name] = {
            "runs": len(rs),
            "cpu_s": round(cpu, 3),
            "wall_s": round(wall, 3),
            "cpu_utilization": (cpu / wall) if wall > 0 else None,
        }
    return out


def summarize_redis(runs: list[Run], redis_target: str) -> dict[str, Any]:
    """What Redis did in the Redis variant's runs, and in all the others (should be nothing)."""
    mine = [r for r in runs if r["target"] == redis_target]
    others = [r for r in runs if r["target"] != redis_target]
    done = sum(r.get("requests_total", 0) for r in mine)
    cpu = _total(mine, "redis_server_cpu_s")
    seen: dict[str, int] = {}
    for r in mine:
        for k, n in r.get("redis_server_cpus_seen", {}).items():
            seen[k] = seen.get(k, 0) + n
    n_seen = sum(seen.values())
    other_cpu = _total(others, "redis_server_cpu_s")
    other_wall = sum(r["wall_s"] for r in others)
    # Every run of the Redis target has both counters, so these are None only without runs.
    calls, usec = _total(mine, "redis_evalsha_calls"), _total(mine, "redis_evalsha_usec")
    return {
        "runs": len(mine),
        "requests": done,
        "cpu_s": cpu,
        "cpu_us_per_request": cpu * 1e6 / done if cpu is not None and done else None,
        "evalsha_per_request": calls / done if calls is not None and done else None,
        "script_us_per_request": usec / done if usec is not None and done else None,
        # Share of samples (every 50 ms) that found its main thread last run on each CPU.
        "cpus_seen": {k: n / n_seen for k, n in sorted(seen.items())} if n_seen else {},
        "other_runs_cpu_utilization": (
            other_cpu / other_wall if other_cpu is not None and other_wall > 0 else None
        ),
        "other_runs_commands": sum(r.get("redis_commands", 0) for r in others),
    }


def _total(rs: list[Run], key: str) -> float | None:
    """The sum of key over runs; None if any run lacks it (or there are none)."""
    vals = [r.get(key) for r in rs]
    if not vals or any(v is None for v in vals):
        return None
    return float(sum(v for v in vals if v is not None))
