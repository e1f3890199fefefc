"""The command line: its flags and their checks, and main(), which runs one benchmark.

main() always stops every child process and cleans up, on errors and on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from overhead import benchmark
from overhead.console import log
from overhead.errors import BenchError
from overhead.interrupts import catch_signals
from overhead.litellm_proxy import DEFAULT_LITELLM, LITELLM_ENV
from overhead.options import Options
from overhead.paths import DEFAULT_OUT, REPO_ROOT
from overhead.processes import Children
from overhead.ratelimit_variants import DEFAULT_REDIS_URL, RATELIMIT_VARIANTS


def main(argv: list[str] | None = None) -> int:
    try:
        opts = parse_args(argv)
    except SystemExit as exc:  # argparse: --help or a usage error
        return int(exc.code or 0)

    # Ctrl-C and SIGTERM both end the run through the finally below. SIGINT is set
    # explicitly because a parent may have left it ignored (e.g. a background job).
    restore_signals = catch_signals()
    children = Children()
    workdir = Path(tempfile.mkdtemp(prefix="sluice-bench-"))
    # Run after every child process has stopped (e.g. deleting the Redis keys).
    cleanups: list[Callable[[], None]] = []
    try:
        return benchmark.run(opts, children, workdir, cleanups)
    except BenchError as exc:
        log(f"\nERROR: {exc}")
        return 1
    except KeyboardInterrupt:
        log("\ninterrupted; stopping child processes (no results written)")
        return 130
    finally:
        children.stop_all()
        for cleanup in cleanups:
            try:
                cleanup()
            except Exception as exc:  # report it, and still restore the rest
                log(f"warning: clean-up failed: {exc}")
        shutil.rmtree(workdir, ignore_errors=True)
        restore_signals()


def parse_args(argv: list[str] | None) -> Options:
    p = argparse.ArgumentParser(
        prog="gateway_overhead.py",
        description="Benchmark the latency, throughput and CPU cost the gateway adds over "
        "calling the upstream directly.",
    )
    _add_run_flags(p)
    _add_target_flags(p)
    _add_machine_flags(p)
    args = p.parse_args(argv)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    duration_s = args.duration_s if args.duration_s is not None else (2.0 if args.quick else 5.0)
    warmup_s = args.warmup_s if args.warmup_s is not None else (0.5 if args.quick else 1.0)
    concurrency = _concurrency(p, args.concurrency)
    if rounds < 1 or duration_s <= 0 or warmup_s < 0 or args.chunks < 1:
        p.error("--rounds and --chunks must be >= 1, --duration-s > 0, --warmup-s >= 0")
    ratelimit = _ratelimit(p, args.ratelimit)
    if args.direct_only and ratelimit != ["none"]:
        p.error("--ratelimit cannot be combined with --direct-only")
    if not args.redis_url.startswith(("redis://", "rediss://", "unix://")):
        p.error("--redis-url must start with redis://, rediss:// or unix://")
    return Options(
        quick=args.quick,
        rounds=rounds,
        duration_s=duration_s,
        warmup_s=warmup_s,
        concurrency=concurrency,
        stream=args.stream,
        chunks=args.chunks,
        out=args.out,
        direct_only=args.direct_only,
        litellm=_litellm(p, args.litellm, args.direct_only),
        ratelimit=ratelimit,
        redis_url=args.redis_url,
        allow_errors=args.allow_errors,
        gateway_cpus=args.gateway_cpus,
        aux_cpus=args.aux_cpus,
        no_pin=args.no_pin,
        startup_timeout_s=args.startup_timeout_s,
        rebuild=args.rebuild,
    )


def _concurrency(p: argparse.ArgumentParser, spec: str) -> list[int]:
    try:
        concurrency = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        p.error(f"--concurrency must be a comma-separated list of integers, got {spec!r}")
    if not concurrency or min(concurrency) < 1:
        p.error("--concurrency values must be >= 1")
    return concurrency


def _ratelimit(p: argparse.ArgumentParser, spec: str) -> list[str]:
    wanted = {v.strip() for v in spec.split(",") if v.strip()}
    unknown = sorted(wanted - set(RATELIMIT_VARIANTS))
    if unknown or not wanted:
        p.error(
            f"--ratelimit takes a comma-separated list of {', '.join(RATELIMIT_VARIANTS)}; "
            f"got {spec!r}"
        )
    # Always in this order within a cell: none, memory, redis.
    return [v for v in RATELIMIT_VARIANTS if v in wanted]


def _litellm(p: argparse.ArgumentParser, value: str | None, direct_only: bool) -> Path | None:
    """The `litellm` executable to start, if --litellm was given."""
    if value is None:
        return None
    if direct_only:
        p.error("--litellm cannot be combined with --direct-only")
    if value == "":
        value = os.environ.get(LITELLM_ENV) or str(DEFAULT_LITELLM)
    exe = Path(value).expanduser()
    if not (exe.is_file() and os.access(exe, os.X_OK)):
        p.error(
            f"--litellm: {exe} is not an executable file (install LiteLLM in its own "
            "virtualenv, see bench/README.md, and pass its bin/litellm)"
        )
    return exe.absolute()


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    """How long and how often each cell runs, and which cells there are."""
    p.add_argument(
        "--quick", action="store_true", help="smoke test: 1 round of 2 s per cell (0.5 s warm-up)"
    )
    p.add_argument("--rounds", type=int, help="interleaved rounds per cell (default 3; --quick: 1)")
    p.add_argument(
        "--duration-s", type=float, help="measured seconds per run (default 5; --quick: 2)"
    )
    p.add_argument(
        "--warmup-s",
        type=float,
        help="unrecorded warm-up seconds per run (default 1; --quick: 0.5)",
    )
    p.add_argument(
        "--concurrency",
        default="1,16,64",
        help="comma-separated connection counts (default 1,16,64)",
    )
    p.add_argument(
        "--stream",
        choices=("both", "off", "on"),
        default="both",
        help="which request kinds to run (default both)",
    )
    p.add_argument(
        "--chunks",
        type=int,
        default=8,
        help="SSE data events per streamed mock response (default 8)",
    )


def _add_target_flags(p: argparse.ArgumentParser) -> None:
    """Where results go, and which targets are measured besides the mock."""
    p.add_argument(
        "--out",
        type=Path,
        help=f"results JSON (default {DEFAULT_OUT.relative_to(REPO_ROOT)}; "
        "not written with --direct-only unless given)",
    )
    p.add_argument(
        "--direct-only",
        action="store_true",
        help="benchmark only the mock upstream, without starting the gateway",
    )
    p.add_argument(
        "--litellm",
        nargs="?",
        const="",
        default=None,
        metavar="PATH",
        help="also benchmark LiteLLM's proxy, started from this `litellm` executable "
        f"(without PATH: ${LITELLM_ENV}, else {DEFAULT_LITELLM}); it runs on the gateway's "
        "CPU, measured in turn with the gateway",
    )
    p.add_argument(
        "--ratelimit",
        default="none",
        metavar="none,memory,redis",
        help="comma-separated rate-limit variants of the gateway, each its own process measured "
        "in turn: none (no `ratelimit` section), memory or redis (limits too high to refuse "
        "anything, on every request; default none)",
    )
    p.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS_URL,
        help=f"Redis for --ratelimit redis (default {DEFAULT_REDIS_URL}); its keys get a "
        "random prefix and are deleted at the end",
    )
    p.add_argument(
        "--allow-errors",
        action="store_true",
        help="keep going when the pre-flight request through the gateway fails",
    )


def _add_machine_flags(p: argparse.ArgumentParser) -> None:
    """CPU pinning, start-up patience and rebuilding the C tools."""
    p.add_argument(
        "--gateway-cpus", default="0", help="taskset CPU list for the gateway (default 0)"
    )
    p.add_argument(
        "--aux-cpus", default="1", help="taskset CPU list for mock upstream + loadgen (default 1)"
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin processes with taskset")
    p.add_argument(
        "--startup-timeout-s",
        type=float,
        default=30.0,
        help="seconds to wait for the gateway's /healthz and LiteLLM's /health/liveliness "
        "(default 30)",
    )
    p.add_argument(
        "--rebuild", action="store_true", help="recompile the C tools even if they look up to date"
    )
