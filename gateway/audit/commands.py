"""`sluice audit verify`: its arguments, where the keys come from, and the summary it prints.

The checks themselves live in verify.py; export, purge and consume register their own commands.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gateway.audit.chains import ROOT, ChainDir
from gateway.audit.consume_command import add_consume_command
from gateway.audit.encryption import KeyProblem
from gateway.audit.key_options import add_enc_key_option, keyring_from_args
from gateway.audit.verify import Report, verify_chains

DEFAULT_DIR = Path("audit")
DEFAULT_KEY_ENV = "SLUICE_AUDIT_HMAC_KEY"


def add_audit_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """Register `audit verify`; returns the `audit` subcommands so others can add theirs."""
    audit = subparsers.add_parser("audit", help="the tamper-evident audit log")
    commands = audit.add_subparsers(dest="audit_command", required=True)
    verify = commands.add_parser(
        "verify",
        help="check the audit log's chain and seals",
        description="Check every segment's records, chain and seals (each worker's chain on "
        "its own, for `sluice serve --workers N`); exit 0 when the log verifies, 1 when "
        "tampering or damage is found, 2 on usage errors.",
    )
    verify.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        help=f"the audit directory (default: ./{DEFAULT_DIR})",
    )
    verify.add_argument(
        "--key-env",
        metavar="NAME",
        help=f"env var holding the seals' HMAC key (default: {DEFAULT_KEY_ENV}, if set)",
    )
    add_enc_key_option(verify)
    verify.set_defaults(run=run_verify)
    add_consume_command(commands)
    return commands


def run_verify(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    if not directory.is_dir():
        return _usage(f"{directory} is not a directory (point --dir at the audit directory)")
    key_env: str = args.key_env or DEFAULT_KEY_ENV
    key = os.environ.get(key_env)
    if args.key_env and not key:
        return _usage(f"--key-env {key_env}: that environment variable is not set or empty")
    try:
        keys = keyring_from_args(args)
        reports = verify_chains(directory, os.fsencode(key) if key else None, keys)
    except (ValueError, KeyProblem) as exc:
        return _usage(str(exc))
    except OSError as exc:
        return _usage(f"cannot read the audit log: {exc}")
    if len(reports) == 1 and reports[0][0].name == ROOT:
        print(summary(reports[0][1]))  # one process's log: as before workers existed
    else:
        print(chains_summary(reports))
    return 0 if all(report.ok for _, report in reports) else 1


def summary(report: Report) -> str:
    """A few lines: the verdict first, then what the reader may need to act on it."""
    if report.ok:
        hmac_state = "HMAC checked" if report.hmac_checked else "HMAC not checked"
        counts = f"{_count(report.records, 'record')} in {_count(report.segments, 'segment')}"
        anchor = (
            f", last seq {report.last_seq}, last digest {report.last_digest}"
            if report.last_seq is not None
            else ""
        )
        lines = [f"OK: {counts} verified{anchor}, {hmac_state}"]
    else:
        lines = [f"TAMPERED: {report.problem}"]
        if report.last_seq is not None:
            lines.append(
                f"chain consistent up to seq {report.last_seq}, digest {report.last_digest}"
            )
    if report.open_segment is not None:
        lines.append(f"open segment (not sealed yet): {report.open_segment}")
    lines.extend(f"note: {note}" for note in report.notes)
    return "\n".join(lines)


def chains_summary(reports: list[tuple[ChainDir, Report]]) -> str:
    """The verdict over all chains, then each chain's summary under its folder's name."""
    bad = [chain.name for chain, report in reports if not report.ok]
    if bad:
        lines = [f"TAMPERED: {len(bad)} of {_count(len(reports), 'chain')} ({', '.join(bad)})"]
    else:
        records = sum(report.records for _, report in reports)
        lines = [f"OK: {_count(len(reports), 'chain')}, {_count(records, 'record')} verified"]
    for chain, report in reports:
        first, *rest = summary(report).splitlines()
        lines.append(f"{chain.name}: {first}")
        lines.extend(f"  {line}" for line in rest)
    return "\n".join(lines)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _usage(message: str) -> int:
    print(f"sluice audit verify: {message}", file=sys.stderr)
    return 2
