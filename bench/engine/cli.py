"""The command line: its flags and their checks, and main(), which runs one benchmark.

main() stops the running worker and removes its temporary files on errors, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from overhead.console import log
from overhead.errors import BenchError
from overhead.interrupts import catch_signals
from overhead.pinning import parse_cpu_list

from engine import benchmark
from engine.options import (
    DEFAULT_HF_BATCH_SIZES,
    DEFAULT_MODEL,
    DEFAULT_OUTPUT_TOKENS,
    DEFAULT_PREFIX_REQUESTS,
    DEFAULT_PROMPT_TOKENS,
    DEFAULT_REQUESTS,
    DEFAULT_SYSTEM_PROMPT_TOKENS,
    QUICK_HF_BATCH_SIZES,
    QUICK_PREFIX_REQUESTS,
    QUICK_REQUESTS,
    Options,
)
from engine.paths import DEFAULT_OUT


def main(argv: list[str] | None = None) -> int:
    try:
        opts = parse_args(argv)
    except SystemExit as exc:  # argparse: --help or a usage error
        return int(exc.code or 0)
    os.environ["HF_HUB_OFFLINE"] = "1"  # models are local; never reach for a hub
    restore_signals = catch_signals()
    workdir = Path(tempfile.mkdtemp(prefix="sluice-engine-bench-"))
    try:
        return benchmark.run(opts, workdir)
    except BenchError as exc:
        log(f"\nERROR: {exc}")
        return 1
    except KeyboardInterrupt:
        log("\ninterrupted (no results written)")
        return 130
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        restore_signals()


def parse_args(argv: list[str] | None) -> Options:
    p = argparse.ArgumentParser(
        prog="engine_throughput.py",
        description="Benchmark the engine's offline throughput and latency against "
        "transformers generate() on the same workload, and what prefix caching does to TTFT.",
    )
    _add_workload_flags(p)
    _add_system_flags(p)
    args = p.parse_args(argv)
    if args.shared_prefix and args.no_shared_prefix:
        p.error("--shared-prefix (only the shared-prefix variant) and --no-shared-prefix conflict")
    if args.in_process and args.cpus:
        p.error("--cpus pins the worker processes; it cannot be combined with --in-process")
    for flag, value in (
        ("--system-prompt-tokens", args.system_prompt_tokens),
        ("--max-num-seqs", args.max_num_seqs),
        ("--max-num-batched-tokens", args.max_num_batched_tokens),
        ("--kv-cache-gb", args.kv_cache_gb),
    ):
        if value is not None and not value > 0:
            p.error(f"{flag} must be positive, got {value}")
    quick = args.quick
    cpus = _cpus(p, args.cpus)
    threads = args.threads or len(parse_cpu_list(cpus) if cpus else os.sched_getaffinity(0))
    default_sizes = QUICK_HF_BATCH_SIZES if args.quick else DEFAULT_HF_BATCH_SIZES
    sizes = args.hf_batch_sizes or _csv(default_sizes)
    return Options(
        quick=args.quick,
        requests=_count(p, "--requests", args.requests, QUICK_REQUESTS, DEFAULT_REQUESTS, quick),
        seed=args.seed,
        model=args.model,
        hf_batch_sizes=_batch_sizes(p, sizes),
        max_num_seqs=args.max_num_seqs,
        max_num_batched_tokens=args.max_num_batched_tokens,
        kv_cache_gb=args.kv_cache_gb,
        weights=args.weights,
        kv_cache=args.kv_cache,
        cpus=cpus,
        threads=max(1, threads),
        no_hf=args.no_hf,
        main=not args.shared_prefix,
        shared_prefix=not args.no_shared_prefix,
        prefix_requests=_count(
            p,
            "--prefix-requests",
            args.prefix_requests,
            QUICK_PREFIX_REQUESTS,
            DEFAULT_PREFIX_REQUESTS,
            quick,
        ),
        system_prompt_tokens=args.system_prompt_tokens,
        rate=_rate(p, args.rate),
        prompt_tokens=_range(p, "--prompt-tokens", args.prompt_tokens),
        output_tokens=_range(p, "--output-tokens", args.output_tokens),
        out=args.out,
        in_process=args.in_process,
    )


def _add_workload_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="a smaller run: smoke test")
    p.add_argument(
        "--requests",
        type=int,
        help=f"main workload size ({DEFAULT_REQUESTS}; --quick: {QUICK_REQUESTS})",
    )
    p.add_argument("--seed", type=int, default=0, help="workload and engine seed (0)")
    p.add_argument(
        "--prompt-tokens",
        default="{}-{}".format(*DEFAULT_PROMPT_TOKENS),
        metavar="MIN-MAX",
        help="main workload prompt lengths are clipped to this range (%(default)s)",
    )
    p.add_argument(
        "--output-tokens",
        default="{}-{}".format(*DEFAULT_OUTPUT_TOKENS),
        metavar="MIN-MAX",
        help="output lengths are clipped to this range (%(default)s)",
    )
    p.add_argument(
        "--shared-prefix",
        action="store_true",
        help="run only the shared-prefix variant (it also runs after the main one "
        "unless --no-shared-prefix)",
    )
    p.add_argument("--no-shared-prefix", action="store_true", help="skip the shared-prefix variant")
    p.add_argument(
        "--prefix-requests",
        type=int,
        help="shared-prefix workload size "
        f"({DEFAULT_PREFIX_REQUESTS}; --quick: {QUICK_PREFIX_REQUESTS})",
    )
    p.add_argument(
        "--system-prompt-tokens",
        type=int,
        default=DEFAULT_SYSTEM_PROMPT_TOKENS,
        help="length of the shared system prompt (%(default)s)",
    )
    p.add_argument(
        "--rate",
        default="auto",
        help="shared-prefix arrivals per second (Poisson), "
        "or auto: calibrated on this machine (see bench/README.md)",
    )
    p.add_argument("--out", type=Path, help=f"results file (default: {DEFAULT_OUT})")


def _add_system_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="an embedded model name, a Hugging Face folder or a .gguf file (%(default)s)",
    )
    p.add_argument(
        "--hf-batch-sizes",
        metavar="B,B,...",
        help="transformers generate() batch sizes; the best is compared "
        f"({_csv(DEFAULT_HF_BATCH_SIZES)}; --quick: {_csv(QUICK_HF_BATCH_SIZES)})",
    )
    p.add_argument("--no-hf", action="store_true", help="skip transformers generate()")
    p.add_argument("--max-num-seqs", type=int, help="engine: sequences per step (engine default)")
    p.add_argument(
        "--max-num-batched-tokens", type=int, help="engine: tokens per step (engine default)"
    )
    p.add_argument("--kv-cache-gb", type=float, help="engine: KV cache size (engine default)")
    p.add_argument(
        "--weights",
        choices=["auto", "int8"],
        help="engine: int8 weight-only linear layers (engine default: auto)",
    )
    p.add_argument(
        "--kv-cache",
        choices=["auto", "int8"],
        help="engine: int8 KV cache with per-token, per-head scales (engine default: auto)",
    )
    p.add_argument("--cpus", metavar="LIST", help="run every worker under taskset -c LIST")
    p.add_argument(
        "--threads",
        type=int,
        help="torch threads for every system (default: the "
        "CPUs in --cpus, else all this process may use)",
    )
    p.add_argument(
        "--in-process",
        action="store_true",
        help="run every phase in this process (tests, debugging): no pinning, one peak RSS for all",
    )


def _csv(values: tuple[int, ...]) -> str:
    return ",".join(map(str, values))


def _count(
    p: argparse.ArgumentParser,
    flag: str,
    value: int | None,
    quick_default: int,
    default: int,
    quick: bool,
) -> int:
    """value, else the default for this kind of run; at least 1."""
    n = value if value is not None else (quick_default if quick else default)
    if n < 1:
        p.error(f"{flag} must be at least 1, got {n}")
    return n


def _batch_sizes(p: argparse.ArgumentParser, spec: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(x) for x in spec.split(",") if x.strip())
    except ValueError:
        p.error(f"--hf-batch-sizes must be a comma-separated list of integers, got {spec!r}")
    if not sizes or min(sizes) < 1:
        p.error("--hf-batch-sizes values must be >= 1")
    return tuple(dict.fromkeys(sizes))


def _range(p: argparse.ArgumentParser, flag: str, spec: str) -> tuple[int, int]:
    try:
        low, high = (int(x) for x in spec.split("-", 1))
    except ValueError:
        p.error(f"{flag} must look like MIN-MAX, e.g. 16-256; got {spec!r}")
    if not 1 <= low <= high:
        p.error(f"{flag} needs 1 <= MIN <= MAX, got {spec!r}")
    return low, high


def _rate(p: argparse.ArgumentParser, spec: str) -> float | None:
    if spec == "auto":
        return None
    try:
        rate = float(spec)
    except ValueError:
        p.error(f"--rate must be a number of requests per second or auto, got {spec!r}")
    if not rate > 0:
        p.error(f"--rate must be positive, got {spec!r}")
    return rate


def _cpus(p: argparse.ArgumentParser, spec: str | None) -> str | None:
    if spec is None:
        return None
    try:
        cpus = parse_cpu_list(spec)
    except ValueError:
        p.error(f"--cpus must be a CPU list like 0-3 or 0,2; got {spec!r}")
    if not cpus:
        p.error("--cpus names no CPU")
    return spec
