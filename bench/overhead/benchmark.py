"""One benchmark from start to finish, read top to bottom in run().

Build the tools, start and check the targets, run the rounds, print the report, save the JSON.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from overhead.build import build_tools
from overhead.console import log
from overhead.cpu import cpu_busy, wait_idle
from overhead.options import Options
from overhead.pinning import Pinning, parse_cpu_list
from overhead.processes import Children, Server, tail
from overhead.ratelimit_variants import gateway_target, policy_sections
from overhead.redis_store import RedisStore
from overhead.redis_watch import RedisWatch
from overhead.report import print_report
from overhead.request import write_requests
from overhead.results import Outcome, Setup, results_document, results_path, write_results
from overhead.rounds import Rig, run_rounds
from overhead.summary import summarize, summarize_idle, summarize_redis
from overhead.table import format_table
from overhead.targets import Launcher, Targets

# What a gateway logs when its limiter's store failed; it then admits requests uncounted
# (on_store_error: open), so such a run did not measure the store.
STORE_ERROR_LOG = "rate-limit store unavailable"


def run(
    opts: Options, children: Children, workdir: Path, cleanups: list[Callable[[], None]]
) -> int:
    """cleanups run after every child process has stopped (e.g. deleting the Redis keys)."""
    tools = build_tools(force=opts.rebuild)
    pin = Pinning(opts.gateway_cpus, opts.aux_cpus, enabled=not opts.no_pin)
    if pin.note:
        log(f"warning: {pin.note}")
    requests = write_requests(opts.streams, workdir)
    launcher = Launcher(opts, pin, workdir, children, requests)
    mock, mock_port = launcher.start_direct(tools["mock_upstream"])

    # --ratelimit: the `ratelimit` section of each variant's policy, with one random key
    # prefix for this run (its Redis keys are deleted at the end).
    prefix = f"sluice-bench:{secrets.token_hex(6)}:"
    sections = policy_sections(opts.ratelimit, opts.redis_url, prefix)
    redis = _open_redis(opts.redis_url, prefix, cleanups) if "redis" in opts.ratelimit else None

    gateways = {} if opts.direct_only else launcher.start_gateways(mock_port, sections, redis)
    litellm: Server | None = None
    litellm_version: str | None = None
    if opts.litellm is not None:
        litellm, litellm_version = launcher.start_litellm(opts.litellm, mock_port)
    targets = Targets(mock, mock_port, gateways, litellm, litellm_version)

    _settle(targets.servers)
    busy_before = _check_cpus_quiet(pin)
    watch = RedisWatch(redis.client, redis.server_pid) if redis is not None else None
    runs = run_rounds(Rig(opts, tools["loadgen"], pin, requests, targets, watch))

    store_errors = _store_errors(sections, gateways)
    redis_summary = _finish_redis(redis, runs, cleanups) if redis is not None else None
    summary = summarize(runs, opts.cells, opts.targets, opts.ratelimit)
    table = format_table(summary, opts.ratelimit)
    idle = summarize_idle(runs)
    outcome = Outcome(runs, summary, idle, redis_summary, store_errors, table)
    print_report(
        opts, pin, list(targets.servers), litellm_version, table, redis_summary, idle, runs
    )

    out = results_path(opts)
    if out is None:
        log("\n(--direct-only: results not written; pass --out FILE to save them)")
        return 0
    setup = Setup(pin, workdir, requests, targets, sections, busy_before)
    write_results(out, results_document(opts, setup, outcome))
    return 0


def _open_redis(url: str, prefix: str, cleanups: list[Callable[[], None]]) -> RedisStore:
    """Connect to Redis, and delete our keys at the end whatever happens."""
    redis = RedisStore(url, prefix)
    cleanups.append(redis.drop_keys)
    redis.locate_server()
    return redis


def _settle(servers: dict[str, Server]) -> None:
    """Let start-up and pre-flight work settle, so the noise check and the first run see idle
    proxies."""
    for name, server in servers.items():
        _cpu, waited, quiet = wait_idle(server.proc.pid, quiet_s=0.5)
        if not quiet:
            log(f"warning: {name} still uses CPU {waited:.0f} s after start-up")


def _check_cpus_quiet(pin: Pinning) -> dict[int, float]:
    """How busy each CPU is with our children idle, with a warning if the benchmark's are."""
    # Our children are idle now, so any busy time here belongs to someone else.
    busy_before = cpu_busy()
    watched = (
        (parse_cpu_list(pin.gateway_cpus) | parse_cpu_list(pin.aux_cpus))
        if pin.enabled
        else set(busy_before)
    )
    noisy = {cpu: frac for cpu, frac in busy_before.items() if cpu in watched and frac > 0.10}
    if noisy:
        log(
            "warning: other processes are using the benchmark CPUs before the start ("
            + ", ".join(f"CPU {cpu} {frac:.0%} busy" for cpu, frac in sorted(noisy.items()))
            + "); the numbers will be noisy"
        )
    return busy_before


def _store_errors(sections: dict[str, str], gateways: dict[str, Server]) -> dict[str, bool]:
    """Per variant with a limiter: whether its gateway logged that its store failed."""
    store_errors: dict[str, bool] = {}
    for variant in sections:
        name = gateway_target(variant)
        logged = STORE_ERROR_LOG in tail(gateways[name].log_path, 1_000_000)
        store_errors[variant] = logged
        if logged:
            log(f"warning: {name} logged {STORE_ERROR_LOG!r}; see its runs with care")
    return store_errors


def _finish_redis(
    redis: RedisStore, runs: list[dict[str, Any]], cleanups: list[Callable[[], None]]
) -> dict[str, Any]:
    """Delete our keys now (every gateway is idle), and sum up what Redis did."""
    cleanups.remove(redis.drop_keys)
    redis.drop_keys()
    return dict(
        redis.describe(),
        **summarize_redis(runs, gateway_target("redis")),
        keys_deleted=redis.keys_deleted,
    )
