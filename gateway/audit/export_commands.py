"""`sluice audit export` and `sluice audit purge`: arguments, progress, messages, exit codes.

Exit codes follow `sluice audit verify`: 0 done, 1 the log is damaged, 2 usage errors.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from gateway.audit.chains import read_log
from gateway.audit.encryption import KeyProblem
from gateway.audit.export import (
    FORMATS,
    PARQUET_MISSING,
    ExportError,
    RecordFilter,
    export,
    parquet_available,
    parse_time,
    select,
)
from gateway.audit.key_options import add_enc_key_option, keyring_from_args
from gateway.audit.purge import purge
from gateway.audit.segment_files import AuditFileError, Line

DEFAULT_DIR = "./audit"
PROGRESS_EVERY = 100_000


def add_export_commands(audit_subparsers: Any) -> None:
    """Register `export` and `purge` under the `sluice audit` subparsers."""
    export_parser = audit_subparsers.add_parser(
        "export", help="write audit records as jsonl, csv or parquet"
    )
    export_parser.add_argument("--format", choices=FORMATS, required=True)
    export_parser.add_argument(
        "--since", help="from this time on, inclusive (RFC 3339, or YYYY-MM-DD: midnight UTC)"
    )
    export_parser.add_argument(
        "--until", help="before this time, exclusive (RFC 3339, or YYYY-MM-DD: midnight UTC)"
    )
    export_parser.add_argument("--tenant", help="only this tenant's records")
    export_parser.add_argument("--model", help="only records for this public model name")
    export_parser.add_argument("--out", help="output file (default: stdout; parquet needs one)")
    export_parser.add_argument("--dir", default=DEFAULT_DIR, help="audit directory (./audit)")
    add_enc_key_option(export_parser)
    export_parser.set_defaults(run=run_export)

    purge_parser = audit_subparsers.add_parser(
        "purge", help="erase the personal data of a tenant's or a user's records"
    )
    who = purge_parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--tenant", help="every record of this tenant")
    who.add_argument("--user", help="every record whose personal.user is this")
    purge_parser.add_argument("--dir", default=DEFAULT_DIR, help="audit directory (./audit)")
    purge_parser.add_argument(
        "--include-open",
        action="store_true",
        help="also rewrite the newest, unsealed segment: only with the gateway stopped, or "
        "what it appends meanwhile is lost",
    )
    add_enc_key_option(purge_parser)
    purge_parser.set_defaults(run=run_purge)


def run_export(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    out = Path(args.out) if args.out else None
    problem = _export_usage_problem(args.format, out, directory)
    if problem:
        return _fail("export", problem, 2)
    try:
        where = RecordFilter(
            since=parse_time(args.since) if args.since else None,
            until=parse_time(args.until) if args.until else None,
            tenant=args.tenant,
            model=args.model,
        )
        keys = keyring_from_args(args)
    except ValueError as exc:
        return _fail("export", f"{exc}", 2)
    try:
        count = export(select(_progress(read_log(directory, keys)), where), args.format, out)
    except KeyProblem as exc:
        return _fail("export", f"{exc}", 2)
    except (ExportError, AuditFileError) as exc:
        return _fail("export", f"{exc}", 1)
    except BrokenPipeError:
        _quiet_stdout()  # the reader (head, less) has what it wanted
        return 0
    print(f"sluice audit export: {_records(count)} exported", file=sys.stderr)
    return 0


def _export_usage_problem(fmt: str, out: Path | None, directory: Path) -> str | None:
    if not directory.is_dir():
        return f"no audit directory at {directory} (pass --dir)"
    if fmt == "parquet" and not parquet_available():
        return PARQUET_MISSING
    if fmt == "parquet" and out is None:
        return "parquet is written to a file: pass --out"
    if out is not None and not out.parent.is_dir():
        return f"cannot write {out}: {out.parent} is not a directory"
    return None


def _progress(lines: Iterator[Line]) -> Iterable[Line]:
    """Records read so far, on stderr: a tqdm bar on a terminal (shown once an export takes
    more than a second), otherwise a line every PROGRESS_EVERY records."""
    if sys.stderr.isatty():
        try:
            from tqdm import tqdm
        except ImportError:
            pass
        else:
            return tqdm(lines, unit=" records", file=sys.stderr, delay=1.0, leave=False)
    return _counted(lines)


def _counted(lines: Iterator[Line]) -> Iterator[Line]:
    for count, line in enumerate(lines, start=1):
        if count % PROGRESS_EVERY == 0:
            print(f"sluice audit export: {count} records read", file=sys.stderr, flush=True)
        yield line


def run_purge(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    if not directory.is_dir():
        return _fail("purge", f"no audit directory at {directory} (pass --dir)", 2)
    try:
        keys = keyring_from_args(args)
        done = purge(
            directory,
            tenant=args.tenant,
            user=args.user,
            include_open=args.include_open,
            keys=keys,
        )
    except (ValueError, KeyProblem) as exc:
        return _fail("purge", f"{exc}", 2)
    who = f"tenant {args.tenant}" if args.tenant is not None else f"user {args.user}"
    print(f"sluice audit purge: {_records(done.records)} of {who} purged")
    for skipped in done.skipped:
        name = skipped.name if skipped.parent == directory else skipped.relative_to(directory)
        print(
            f"sluice audit purge: skipped the open segment {name} (a running "
            "gateway may be writing it); purge again once it is sealed, or with --include-open "
            "while the gateway is stopped"
        )
    return 0


def _records(count: int) -> str:
    return f"{count} record" if count == 1 else f"{count} records"


def _fail(command: str, message: str, code: int) -> int:
    print(f"sluice audit {command}: {message}", file=sys.stderr)
    return code


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
