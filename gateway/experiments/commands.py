"""`sluice experiments ...`: the command group, and `report NAME` (arguments, messages, exit
codes: 0 done, 1 the log is damaged or holds no records of the experiment, 2 usage errors).

Another subcommand joins the group with one line in `register`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gateway.audit.encryption import KeyProblem
from gateway.audit.export import ExportError, RecordFilter, parse_time
from gateway.audit.key_options import add_enc_key_option, keyring_from_args
from gateway.audit.segment_files import AuditFileError
from gateway.experiments.records import ExperimentSamples, read_experiment
from gateway.experiments.weights import (
    Weights,
    equal_weights,
    parse_weights,
    weights_from_policy,
)

DEFAULT_DIR = "./audit"


def register(commands: Any) -> Any:
    """Add `sluice experiments` to the top-level subparsers; returns its own subparsers."""
    group = commands.add_parser("experiments", help="experiments: reports on the audit log")
    subcommands = group.add_subparsers(dest="experiments_command", required=True)
    add_report_command(subcommands)
    return subcommands


def add_report_command(subcommands: Any) -> None:
    report = subcommands.add_parser(
        "report",
        help="per-arm metrics with confidence intervals and significance tests",
        description="Per-arm requests, error rate, latency and TTFT percentiles, tokens and "
        "feedback of one experiment, read from the audit log; each arm against the control, "
        "and a sample-ratio check of the split. See docs/experiments.md.",
    )
    report.add_argument("name", metavar="NAME", help="the experiment, as in the audit records")
    report.add_argument("--dir", default=DEFAULT_DIR, help="audit directory (./audit)")
    report.add_argument("--format", choices=("text", "json"), default="text")
    report.add_argument(
        "--since", help="requests from this time on, inclusive (RFC 3339, or YYYY-MM-DD)"
    )
    report.add_argument("--until", help="requests before this time, exclusive")
    report.add_argument("--plot", metavar="FILE.png", help="write per-arm latency distributions")
    source = report.add_mutually_exclusive_group()
    source.add_argument(
        "--weights",
        metavar="ARM=W,...",
        help="the split the experiment should have, e.g. control=50,treatment=50",
    )
    source.add_argument(
        "--config", metavar="POLICY", help="read the split from this policy's experiments section"
    )
    report.add_argument("--control", metavar="ARM", help="the arm others are compared with")
    report.add_argument(
        "--alpha",
        type=float,
        default=0.05,
        help="significance level; intervals are at 1 - alpha (default 0.05)",
    )
    add_enc_key_option(report)
    report.set_defaults(run=run_report)


def run_report(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    if not directory.is_dir():
        return _fail(f"no audit directory at {directory} (pass --dir)", 2)
    if not 0 < args.alpha < 1:
        return _fail(f"--alpha must be between 0 and 1, not {args.alpha}", 2)
    plot = Path(args.plot) if args.plot else None
    if plot is not None and not plot.parent.is_dir():
        return _fail(f"cannot write {plot}: {plot.parent} is not a directory", 2)
    try:
        where = RecordFilter(
            since=parse_time(args.since) if args.since else None,
            until=parse_time(args.until) if args.until else None,
        )
        configured = _configured_weights(args)
        keys = keyring_from_args(args)
    except ValueError as exc:
        return _fail(f"{exc}", 2)
    try:
        samples = read_experiment(directory, args.name, where, keys)
    except KeyProblem as exc:
        return _fail(f"{exc}", 2)
    except (AuditFileError, ExportError) as exc:
        return _fail(f"{exc} (run `sluice audit verify`)", 1)
    if not samples.arms:
        return _fail(_nothing_found(samples, directory, bool(args.since or args.until)), 1)
    # numpy and scipy load only here: every other `sluice` command starts without them.
    from gateway.experiments.analysis import analyse, choose_control
    from gateway.experiments.report import render_json, render_text

    arms = list(samples.arms)
    weights, source = (configured, "configured") if configured else (equal_weights(arms), "equal")
    try:
        control = choose_control(arms, weights, args.control)
    except ValueError as exc:
        return _fail(f"{exc}", 2)
    window = {"since": args.since, "until": args.until}
    report = analyse(samples, weights, source, control, args.alpha, window)
    sys.stdout.write(render_json(report) if args.format == "json" else render_text(report))
    if plot is not None:
        from gateway.experiments.plot import plot_latencies

        plot_latencies(samples, [arm["arm"] for arm in report["arms"]], plot)
        print(f"sluice experiments report: wrote {plot}", file=sys.stderr)
    return 0


def _configured_weights(args: argparse.Namespace) -> Weights | None:
    if args.weights:
        return parse_weights(args.weights)
    if args.config:
        return weights_from_policy(Path(args.config), args.name)
    return None


def _nothing_found(samples: ExperimentSamples, directory: Path, windowed: bool) -> str:
    message = f"no request records of experiment {samples.name!r} in {directory}"
    if samples.without_arm:
        message += f" with an arm ({samples.without_arm} without one)"
    if samples.experiments_seen:
        message += f"; experiments with records: {', '.join(sorted(samples.experiments_seen))}"
    return message + (" between --since and --until" if windowed else "")


def _fail(message: str, code: int) -> int:
    print(f"sluice experiments report: {message}", file=sys.stderr)
    return code
