"""The results JSON (schema_version 1): machine, settings, the guards' entries, every figure.

Raw latency samples are kept (in seconds) beside their percentiles; the report printed at the end
is kept too.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict
from pathlib import Path
from typing import Any

from overhead.provenance import git_info, machine_info

from guardbench.options import Options
from guardbench.paths import DEFAULT_OUT


def results_path(opts: Options) -> Path:
    out = opts.out if opts.out is not None else DEFAULT_OUT
    return out if out.is_absolute() else Path.cwd() / out


def results_document(
    opts: Options, measured: dict[str, Any], busy_before: dict[int, float], report: str
) -> dict[str, Any]:
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()}
    return {
        "benchmark": "guards",
        "schema_version": 1,
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "git": git_info(),
        "machine": dict(machine_info(), cpu_busy_before_start=busy_before),
        "config": config,
        **measured,
        "report": report,
    }
