"""The results JSON (schema_version 1): settings, summary, raw runs and the table.

Where it goes, what it holds, and writing it atomically.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overhead.console import log
from overhead.litellm_proxy import config_for_results, env_for_results
from overhead.loadgen import loadgen_timeout
from overhead.options import Options
from overhead.paths import DEFAULT_OUT
from overhead.pinning import Pinning
from overhead.provenance import git_info, machine_info
from overhead.ratelimit_variants import gateway_target
from overhead.request import CHAT_PATH, BenchRequests, request_kind
from overhead.targets import Targets


@dataclass(frozen=True)
class Setup:
    """How the targets were run: pinning, request bodies, started targets, policy sections."""

    pin: Pinning
    workdir: Path
    requests: BenchRequests
    targets: Targets
    policy_sections: dict[str, str]  # the `ratelimit` section of each variant but "none"
    cpu_busy_before: dict[int, float]


@dataclass(frozen=True)
class Outcome:
    """What the runs measured, and its summaries."""

    runs: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    idle: dict[str, Any]
    redis_summary: dict[str, Any] | None
    store_errors: dict[str, bool]  # variant -> whether its gateway logged a store failure
    table: str


def results_path(opts: Options) -> Path | None:
    """--out, else the default file; None (nothing written) for --direct-only without --out."""
    out = opts.out if opts.out is not None else (None if opts.direct_only else DEFAULT_OUT)
    if out is None:
        return None
    return out if out.is_absolute() else Path.cwd() / out


def results_document(opts: Options, setup: Setup, outcome: Outcome) -> dict[str, Any]:
    return {
        "benchmark": "gateway_overhead",
        "schema_version": 1,
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "git": git_info(),
        "machine": dict(machine_info(), cpu_busy_before_start=setup.cpu_busy_before),
        "config": _config(opts, setup, outcome),
        "summary": outcome.summary,
        "idle_proxies": outcome.idle,
        "redis_server": outcome.redis_summary,
        "runs": outcome.runs,
        "table": outcome.table.splitlines(),
    }


def write_results(out: Path, doc: dict[str, Any]) -> None:
    """Write doc to out (through a temporary file and a rename) and say where."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, out)
    try:
        shown: Path | str = out.relative_to(Path.cwd())
    except ValueError:
        shown = out
    log(f"\nwrote {shown}")


def redact_cmd(cmd: list[str], workdir: Path) -> list[str]:
    """The command with the temporary policy path made generic."""
    return [a.replace(str(workdir), "<tmp>") for a in cmd]


def _config(opts: Options, setup: Setup, outcome: Outcome) -> dict[str, Any]:
    gateways = setup.targets.gateways
    first_gateway = next(iter(gateways.values()), None)
    return {
        "rounds": opts.rounds,
        "duration_s": opts.duration_s,
        "warmup_s": opts.warmup_s,
        "concurrency": opts.concurrency,
        "stream": opts.streams,
        "mock_sse_events": opts.chunks,
        "quick": opts.quick,
        "direct_only": opts.direct_only,
        "pinning": setup.pin.describe(),
        "path": CHAT_PATH,
        "bodies": {request_kind(s): b.decode() for s, b in setup.requests.body_bytes.items()},
        "gateway_command": (
            redact_cmd(first_gateway.cmd, setup.workdir) if first_gateway else None
        ),
        "ratelimit": {
            "variants": opts.ratelimit,
            "targets": {v: gateway_target(v) for v in opts.ratelimit},
            "policy_sections": setup.policy_sections,
            "gateway_commands": {n: redact_cmd(s.cmd, setup.workdir) for n, s in gateways.items()},
            "store_errors_logged": outcome.store_errors,
        },
        "litellm": _litellm_config(opts, setup),
        "loadgen_timeout_s": {t: loadgen_timeout(t) for t in opts.targets},
        "order": "for each round, for each cell: " + " then ".join(opts.targets),
    }


def _litellm_config(opts: Options, setup: Setup) -> dict[str, Any] | None:
    server = setup.targets.litellm
    if server is None:
        return None
    return {
        "version": setup.targets.litellm_version,
        "executable": str(opts.litellm),
        "command": redact_cmd(server.cmd, setup.workdir) if server.cmd else None,
        "config": config_for_results(),
        "env": env_for_results(),
        "cpus": setup.pin.gateway_cpus if setup.pin.enabled else None,
    }
