"""The command line: its flags and their checks, and main(), which runs one benchmark."""

from __future__ import annotations

import argparse
from pathlib import Path

from overhead.console import log
from overhead.errors import BenchError
from overhead.interrupts import catch_signals

from guardbench import benchmark
from guardbench.options import (
    DEFAULT_CLEAN_SAMPLES,
    DEFAULT_CONVERSATIONS,
    DEFAULT_PII_SAMPLES,
    DEFAULT_SAMPLES,
    GUARDS,
    QUICK_CLEAN_SAMPLES,
    QUICK_CONVERSATIONS,
    QUICK_PII_SAMPLES,
    QUICK_SAMPLES,
    TURNS,
    Options,
)
from guardbench.paths import DATA_DIR, DEFAULT_OUT


def main(argv: list[str] | None = None) -> int:
    try:
        opts = parse_args(argv)
    except SystemExit as exc:  # argparse: --help or a usage error
        return int(exc.code or 0)
    restore_signals = catch_signals()
    try:
        return benchmark.run(opts)
    except BenchError as exc:
        log(f"\nERROR: {exc}")
        return 1
    except KeyboardInterrupt:
        log("\ninterrupted (no results written)")
        return 130
    finally:
        restore_signals()


def parse_args(argv: list[str] | None) -> Options:
    p = argparse.ArgumentParser(
        prog="guards.py",
        description="Benchmark the guards: latency of each guard and of the input pipeline, "
        "and detection quality on labeled data.",
    )
    p.add_argument("--quick", action="store_true", help="a smaller run: smoke test")
    p.add_argument("--seed", type=int, default=0, help="seeds every generated text (0)")
    p.add_argument(
        "--samples",
        type=int,
        help=f"timed messages per guard and size ({DEFAULT_SAMPLES}; --quick: {QUICK_SAMPLES})",
    )
    p.add_argument(
        "--chats",
        type=int,
        help=f"{TURNS}-turn chats through the pipeline "
        f"({DEFAULT_CONVERSATIONS}; --quick: {QUICK_CONVERSATIONS})",
    )
    p.add_argument(
        "--pii-samples",
        type=int,
        help=f"labeled texts with PII ({DEFAULT_PII_SAMPLES}; --quick: {QUICK_PII_SAMPLES})",
    )
    p.add_argument(
        "--clean-samples",
        type=int,
        help=f"labeled texts without PII ({DEFAULT_CLEAN_SAMPLES}; --quick: {QUICK_CLEAN_SAMPLES})",
    )
    p.add_argument(
        "--guards",
        default=",".join(GUARDS),
        help="comma list of the guards to run (%(default)s)",
    )
    p.add_argument(
        "--no-presidio",
        action="store_true",
        help="the PII guard looks only for secrets (no spaCy: starts in a second, for tests)",
    )
    p.add_argument("--no-latency", action="store_true", help="skip the latency runs")
    p.add_argument("--no-quality", action="store_true", help="skip the quality runs")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=DATA_DIR,
        help="where injection.jsonl and moderation.jsonl are (bench/data)",
    )
    p.add_argument("--out", type=Path, help=f"results file ({DEFAULT_OUT.name} in bench/results)")
    args = p.parse_args(argv)
    guards = tuple(name.strip() for name in args.guards.split(",") if name.strip())
    unknown = sorted(set(guards) - set(GUARDS))
    if unknown or not guards:
        p.error(
            f"--guards: unknown {', '.join(unknown) or 'empty list'}; known: {', '.join(GUARDS)}"
        )
    if args.no_latency and args.no_quality:
        p.error("--no-latency and --no-quality leave nothing to run")
    quick = args.quick
    return Options(
        quick=quick,
        seed=args.seed,
        samples=_count(p, "--samples", args.samples, QUICK_SAMPLES, DEFAULT_SAMPLES, quick),
        conversations=_count(
            p, "--chats", args.chats, QUICK_CONVERSATIONS, DEFAULT_CONVERSATIONS, quick
        ),
        turns=TURNS,
        pii_samples=_count(
            p, "--pii-samples", args.pii_samples, QUICK_PII_SAMPLES, DEFAULT_PII_SAMPLES, quick
        ),
        clean_samples=_count(
            p,
            "--clean-samples",
            args.clean_samples,
            QUICK_CLEAN_SAMPLES,
            DEFAULT_CLEAN_SAMPLES,
            quick,
        ),
        guards=guards,
        presidio=not args.no_presidio,
        data_dir=args.data_dir,
        out=args.out,
        latency=not args.no_latency,
        quality=not args.no_quality,
    )


def _count(
    p: argparse.ArgumentParser, flag: str, value: int | None, quick: int, full: int, is_quick: bool
) -> int:
    if value is None:
        return quick if is_quick else full
    if value < 1:
        p.error(f"{flag} must be at least 1, got {value}")
    return value
