"""The `sluice` command: serve the gateway or the engine, check policies, run benchmarks."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import runpy
import sys
from pathlib import Path
from typing import Any

from backend.cli import add_backend_commands
from gateway.audit.commands import add_audit_commands
from gateway.audit.export_commands import add_export_commands
from gateway.config.loader import PolicyError, load_policy
from gateway.config.schema import unauthenticated_exposure
from gateway.experiments.commands import register as add_experiments_commands
from gateway.routing.commands import add_admin_commands

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POLICY = REPO_ROOT / "policies" / "default.yaml"
log = logging.getLogger("sluicegate")


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.app import create_app

    path = Path(args.config) if args.config else DEFAULT_POLICY
    try:
        policy = load_policy(path)
    except PolicyError as exc:
        print(f"sluice serve: the policy cannot be used:\n{exc}", file=sys.stderr)
        return 2
    host = args.host or policy.server.host
    port = args.port or policy.server.port
    exposed = unauthenticated_exposure(policy, host)
    if exposed:
        print(f"sluice serve: refusing to start: {exposed}", file=sys.stderr)
        return 2
    if args.workers > 1:
        from gateway.workers import worker_conflicts

        problems = worker_conflicts(policy)
        if problems:
            listed = "".join(f"\n  - {problem}" for problem in problems)
            print(
                f"sluice serve: {path} cannot run with --workers {args.workers}:{listed}",
                file=sys.stderr,
            )
            return 2
    if policy.auth.mode == "none":
        log.warning(
            "AUTHENTICATION IS OFF (auth: none): anyone who can reach %s:%s can use every model",
            host,
            port,
        )
    logs = policy.telemetry.logs if policy.telemetry is not None else None
    json_logs = logs is not None and logs.format == "json"
    if logs is not None:
        from gateway.telemetry.logs import configure_logging

        configure_logging(logs.format, logs.level)
    options: dict[str, Any] = {
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "on",
        "access_log": False,
        "log_level": logs.level if logs is not None else args.log_level,
        # JSON logs: keep uvicorn from installing its own text handlers over ours.
        "log_config": None if json_logs else uvicorn.config.LOGGING_CONFIG,
        "timeout_graceful_shutdown": int(policy.server.drain_timeout_s),
    }
    if args.workers > 1:
        from gateway.workers import serve_workers

        log.warning(
            "sluicegate serving on http://%s:%s with policy %s (%d workers)",
            host,
            port,
            path,
            args.workers,
        )
        return serve_workers(path, host, port, args.workers, options)
    app = create_app(policy, policy_path=path, bind_host=host)
    _tune_gc()
    log.warning("sluicegate serving on http://%s:%s with policy %s", host, port, path)
    uvicorn.run(app, host=host, port=port, **options)
    return 0


def _worker_count(text: str) -> int:
    count = int(text) if text.isdigit() else 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return count


def _tune_gc() -> None:
    """Keep the collector off the request path.

    Everything alive after start-up (modules, schemas, the policy) lives as long as the process:
    frozen, full collections stop walking it. With the default gen-0 threshold (700) a busy
    gateway ran a collection every few requests, and the rare full ones showed as 40-60 ms
    stalls at p99 (bench/README.md). The request path makes few reference cycles, so collecting
    less often costs little memory.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _policy_check(args: argparse.Namespace) -> int:
    try:
        policy = load_policy(args.file)
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(
        f"{args.file}: ok ({len(policy.backends)} backends, {len(policy.models)} models, "
        f"auth: {policy.auth.mode})"
    )
    return 0


# `sluice bench NAME`: the script in bench/ that runs it.
BENCH_SCRIPTS = {
    "gateway": "gateway_overhead.py",
    "engine": "engine_throughput.py",
    "guards": "guards.py",
}


def _bench(args: argparse.Namespace, rest: list[str]) -> int:
    script = REPO_ROOT / "bench" / BENCH_SCRIPTS[args.what]
    if not script.exists():
        print(
            f"sluice bench: {script} is missing (bench/ ships with the source tree)",
            file=sys.stderr,
        )
        return 2
    namespace = runpy.run_path(str(script))
    return int(namespace["main"](rest))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sluice", description="Sluicegate inference gateway")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("SLUICE_LOG_LEVEL", "warning"),
        choices=["debug", "info", "warning", "error"],
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", help=f"policy file (default: {DEFAULT_POLICY})")
    serve.add_argument("--host", help="bind address (default: server.host of the policy)")
    serve.add_argument("--port", type=int, help="port (default: server.port of the policy)")
    serve.add_argument(
        "--workers",
        type=_worker_count,
        default=1,
        help="gateway processes sharing the port, one per core (default: 1; docs/operations.md)",
    )
    serve.set_defaults(run=_serve)

    policy = commands.add_parser("policy", help="policy files")
    policy_commands = policy.add_subparsers(dest="policy_command", required=True)
    check = policy_commands.add_parser("check", help="validate a policy file")
    check.add_argument("file")
    check.set_defaults(run=_policy_check)

    add_export_commands(add_audit_commands(commands))
    add_backend_commands(commands)
    add_admin_commands(add_experiments_commands(commands))

    # No -h of its own: `sluice bench gateway --help` shows the benchmark's options.
    bench = commands.add_parser(
        "bench", help="benchmarks (options after the name go to it)", add_help=False
    )
    bench.add_argument("what", choices=list(BENCH_SCRIPTS))
    bench.set_defaults(run=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.command == "bench":
        return _bench(args, rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
