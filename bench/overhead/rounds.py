"""The interleaved schedule: for each round, for each cell, every target in turn.

Each run is one load-generator run, with the CPU time of every process around it measured.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overhead.console import Progress, log
from overhead.cpu import process_tree_cpu_seconds, wait_idle
from overhead.errors import BenchError
from overhead.loadgen import loadgen_timeout, run_loadgen
from overhead.options import Options
from overhead.pinning import Pinning
from overhead.processes import tail
from overhead.ratelimit_variants import gateway_target
from overhead.redis_watch import RedisWatch
from overhead.request import BenchRequests, request_kind
from overhead.targets import Targets

Result = dict[str, Any]


@dataclass(frozen=True)
class Slot:
    """One run in the schedule."""

    round: int  # from 0
    stream: bool
    concurrency: int
    target: str

    @property
    def label(self) -> str:
        kind = request_kind(self.stream)
        return f"round {self.round + 1} {kind} c={self.concurrency} {self.target}"


@dataclass(frozen=True)
class Rig:
    """Everything a run needs: settings, the load generator and what it sends, the targets."""

    opts: Options
    loadgen: Path
    pin: Pinning
    requests: BenchRequests
    targets: Targets
    redis_watch: RedisWatch | None


@dataclass(frozen=True)
class _Usage:
    """CPU used by everything but the load generator's own result, over one run."""

    wall_s: float
    server_cpu_s: dict[str, float]  # every proxy, target or idle
    mock_cpu_s: float
    loadgen_cpu_s: float
    redis: dict[str, Any]  # RedisWatch.stop(); empty without Redis


def schedule(opts: Options) -> list[Slot]:
    return [
        Slot(rnd, s, c, t)
        for rnd in range(opts.rounds)
        for (s, c) in opts.cells
        for t in opts.targets
    ]


def run_rounds(rig: Rig) -> list[Result]:
    """Every run of the schedule, in order; one result per run."""
    opts = rig.opts
    plan = schedule(opts)
    servers = rig.targets.servers
    per_run = opts.warmup_s + opts.duration_s
    est_s = sum(per_run + (0.6 if slot.target in servers else 0.2) for slot in plan)
    log(
        f"{len(plan)} runs x {per_run:g} s (rounds={opts.rounds}, duration={opts.duration_s:g} s, "
        f"warm-up={opts.warmup_s:g} s): about {est_s / 60:.1f} min"
    )
    runs: list[Result] = []
    progress = Progress(len(plan))
    try:
        for slot in plan:
            runs.append(_run_one(slot, rig, progress))
    finally:
        progress.close()
    return runs


def _run_one(slot: Slot, rig: Rig, progress: Progress) -> Result:
    _check_alive(slot, rig.targets)
    result, usage = _measure(slot, rig)
    result.update(usage.redis)
    if slot.target == gateway_target("redis"):
        _add_redis_figures(result, usage)
    elif usage.redis.get("redis_commands"):
        progress.write(
            f"  warning: {slot.label}: Redis executed {usage.redis['redis_commands']} commands "
            "from other clients during this run"
        )
    result["wall_s"] = usage.wall_s
    result["loadgen_cpu_s"] = usage.loadgen_cpu_s
    result["mock_cpu_s"] = usage.mock_cpu_s
    result["aux_cpu_utilization"] = (usage.loadgen_cpu_s + usage.mock_cpu_s) / usage.wall_s
    result["idle_cpu_s"] = {n: v for n, v in usage.server_cpu_s.items() if n != slot.target}
    if slot.target in rig.targets.servers:
        _add_target_cpu(result, slot, rig.targets, usage, progress)
    result.update(
        round=slot.round + 1, stream=slot.stream, concurrency=slot.concurrency, target=slot.target
    )
    progress.step(slot.label, result)
    _warn_after(slot, rig.targets, result, progress)
    return result


def _check_alive(slot: Slot, targets: Targets) -> None:
    for name, server in targets.servers.items():
        if server.proc.poll() is not None:
            raise BenchError(
                f"{name} exited (rc={server.proc.returncode}) before: {slot.label}\n"
                f"{tail(server.log_path)}"
            )
    if targets.mock.poll() is not None:
        raise BenchError(
            f"mock upstream exited (rc={targets.mock.returncode}) before: {slot.label}"
        )


def _measure(slot: Slot, rig: Rig) -> tuple[Result, _Usage]:
    """One load-generator run, and the CPU every process used meanwhile."""
    servers, mock = rig.targets.servers, rig.targets.mock
    port = rig.targets.port(slot.target)
    # Redis is watched in every run: in the others it should do nothing.
    if rig.redis_watch is not None:
        rig.redis_watch.start()
    redis_stats: dict[str, Any] = {}
    try:
        # Every proxy's CPU time, the target's and the idle ones'.
        server_cpu0 = {name: process_tree_cpu_seconds(s.proc.pid) for name, s in servers.items()}
        mock_cpu0 = process_tree_cpu_seconds(mock.pid)
        kids0 = os.times()
        t0 = time.monotonic()
        result = run_loadgen(
            rig.loadgen,
            port,
            rig.requests.body_files[slot.stream],
            [rig.requests.auth_header],
            slot.concurrency,
            rig.opts.duration_s,
            rig.opts.warmup_s,
            rig.pin,
            timeout_s=loadgen_timeout(slot.target),
        )
        wall_s = time.monotonic() - t0
        kids1 = os.times()
        server_cpu = {
            name: process_tree_cpu_seconds(s.proc.pid) - server_cpu0[name]
            for name, s in servers.items()
        }
        mock_cpu_s = process_tree_cpu_seconds(mock.pid) - mock_cpu0
    finally:
        if rig.redis_watch is not None:
            redis_stats = rig.redis_watch.stop()
    # The CPU shared by mock and loadgen must stay far from saturation in
    # proxy runs, or the client side would limit what is measured.
    loadgen_cpu_s = (kids1.children_user - kids0.children_user) + (
        kids1.children_system - kids0.children_system
    )
    return result, _Usage(wall_s, server_cpu, mock_cpu_s, loadgen_cpu_s, redis_stats)


def _add_redis_figures(result: Result, usage: _Usage) -> None:
    """Redis's work per request, for a run of the Redis variant's gateway."""
    done = result.get("requests_total", 0)
    r_cpu = usage.redis.get("redis_server_cpu_s")
    result["redis_server_cpu_us_per_request"] = (
        r_cpu * 1e6 / done if r_cpu is not None and done else None
    )
    result["redis_server_cpu_utilization"] = (
        r_cpu / usage.wall_s if r_cpu is not None and usage.wall_s > 0 else None
    )
    calls = usage.redis["redis_evalsha_calls"]
    result["redis_evalsha_per_request"] = calls / done if done else None
    result["redis_script_us_per_request"] = (
        usage.redis["redis_evalsha_usec"] / done if done else None
    )


def _add_target_cpu(
    result: Result, slot: Slot, targets: Targets, usage: _Usage, progress: Progress
) -> None:
    """The target proxy's CPU per request, with and without the work left after the run."""
    target, wall_s = slot.target, usage.wall_s
    cpu_s = usage.server_cpu_s[target]
    done = result.get("requests_total", 0)
    # Requests the load generator abandoned at the end may still be
    # worked on; wait until the proxy is quiet before the next run.
    drain_cpu_s, drain_s, quiet = wait_idle(targets.servers[target].proc.pid)
    in_flight = result.get("in_flight_at_end", 0)
    result[f"{target}_cpu_s"] = cpu_s
    result[f"{target}_cpu_utilization"] = cpu_s / wall_s if wall_s > 0 else None
    result[f"{target}_cpu_us_per_request"] = cpu_s * 1e6 / done if done else None
    result[f"{target}_drain_cpu_s"] = drain_cpu_s
    result[f"{target}_drain_s"] = drain_s
    result[f"{target}_cpu_us_per_request_with_drain"] = (
        (cpu_s + drain_cpu_s) * 1e6 / (done + in_flight) if done + in_flight else None
    )
    if not quiet:
        progress.write(
            f"  warning: {slot.label}: {target} still busy {drain_s:.0f} s after the run"
        )


def _warn_after(slot: Slot, targets: Targets, result: Result, progress: Progress) -> None:
    """Say when a run looks unreliable: failed requests, a busy client side, a busy idle proxy."""
    label, wall_s = slot.label, result["wall_s"]
    if result.get("loadgen_stderr") and (result["non_2xx"] or result["errors"]):
        progress.write(f"  {label}: {result['loadgen_stderr'][:600]}")
    if slot.target in targets.servers and result["aux_cpu_utilization"] > 0.8:
        progress.write(
            f"  warning: {label}: mock+loadgen used {result['aux_cpu_utilization']:.0%} "
            "of their CPU; the client side may be limiting this run"
        )
    for name, idle_s in result["idle_cpu_s"].items():
        if wall_s > 0 and idle_s / wall_s > 0.02:
            progress.write(
                f"  warning: {label}: {name} used {idle_s / wall_s:.1%} of a CPU while idle"
            )
