"""What the benchmark prints on stdout at the end: a title line, the table and notes.

The notes say what Redis and the idle proxies did, and warn about failed requests.
"""

from __future__ import annotations

from typing import Any

from overhead.options import Options
from overhead.pinning import Pinning


def print_report(
    opts: Options,
    pin: Pinning,
    proxies: list[str],
    litellm_version: str | None,
    table: str,
    redis_summary: dict[str, Any] | None,
    idle: dict[str, Any],
    runs: list[dict[str, Any]],
) -> None:
    """proxies: the names of the proxies under test (gateway variants, "litellm")."""
    print()
    print(_title(opts, pin, proxies, litellm_version))
    print(table)
    if redis_summary is not None:
        print(redis_line(redis_summary))
    if idle:
        print(
            "Idle proxies (CPU used while another target was measured): "
            + ", ".join(
                f"{name} {v['cpu_utilization']:.2%} of a CPU over {v['wall_s']:.0f} s"
                for name, v in idle.items()
                if v["cpu_utilization"] is not None
            )
        )
    total_bad = sum(r["non_2xx"] + r["errors"] for r in runs)
    if total_bad:
        print(
            f"\nWARNING: {total_bad} non-2xx responses or errors; "
            "see loadgen_stderr in the JSON runs"
        )


def _title(opts: Options, pin: Pinning, proxies: list[str], litellm_version: str | None) -> str:
    with_litellm = "litellm" in proxies
    return (
        f"Gateway overhead: {opts.rounds} round(s) x {opts.duration_s:g} s per cell "
        f"(+{opts.warmup_s:g} s warm-up), "
        f"medians over rounds; {_pinning(opts, pin, proxies)}; "
        f"mock sends {opts.chunks} SSE events per stream"
        + (f"; LiteLLM {litellm_version or '(version unknown)'}" if with_litellm else "")
    )


def _pinning(opts: Options, pin: Pinning, proxies: list[str]) -> str:
    if not pin.enabled:
        return "unpinned"
    variants = opts.ratelimit
    gws = "gateway" + ("" if variants == ["none"] else f"s (ratelimit {', '.join(variants)})")
    in_turn = " (measured in turn)" if len(proxies) > 1 else ""
    return (
        f"{gws}{' and LiteLLM' if 'litellm' in proxies else ''}{in_turn} "
        f"on CPU {pin.gateway_cpus}, mock+loadgen on CPU {pin.aux_cpus}"
    )


def redis_line(info: dict[str, Any]) -> str:
    """One line on what Redis did, from the results' redis_server section."""

    def f(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    where = ", ".join(f"CPU {k} {v:.0%}" for k, v in info["cpus_seen"].items()) or "unknown"
    allowed = info.get("server_cpus_allowed")
    return (
        f"Redis {info.get('version')} (redis-server pid {info.get('server_pid')}, not pinned, "
        f"allowed CPUs {','.join(map(str, allowed)) if allowed else '?'}): over all redis runs "
        f"{f(info['cpu_us_per_request'], '.1f')} us of its CPU per request "
        f"({f(info['evalsha_per_request'], '.2f')} EVALSHA per request, "
        f"{f(info['script_us_per_request'], '.1f')} us in scripts); its main thread was seen on "
        f"{where}; in the other runs it used "
        f"{f(info['other_runs_cpu_utilization'], '.2%')} of a CPU and ran "
        f"{info['other_runs_commands']} commands from other clients"
    )
