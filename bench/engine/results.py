"""The results JSON (schema_version 1): machine, settings, workloads, summaries, raw runs.

Each request's record is one row of a small table on one line, so the file stays readable.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from overhead.console import log
from overhead.provenance import git_info, machine_info

from engine.options import Options
from engine.paths import DEFAULT_OUT

RECORD_FIELDS = (
    "request_id",
    "prompt_tokens",
    "target_tokens",
    "output_tokens",
    "arrival_s",
    "first_token_s",
    "last_token_s",
    "cached_tokens",
    "finish_reason",
)


@dataclass
class Measured:
    """Everything one benchmark measured, filled in phase by phase."""

    model_folder: str
    cpu_busy_before: dict[int, float]
    workloads: dict[str, Any] = field(default_factory=dict)
    gemm: dict[str, Any] | None = None
    engine: dict[str, Any] | None = None  # raw worker results, then their summaries
    engine_summary: dict[str, Any] | None = None
    hf: dict[int, dict[str, Any]] = field(default_factory=dict)
    hf_summaries: dict[int, dict[str, Any]] = field(default_factory=dict)
    main_comparison: dict[str, Any] | None = None
    prefix: dict[str, dict[str, Any]] = field(default_factory=dict)  # "off" / "on"
    prefix_summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    prefix_comparison: dict[str, Any] | None = None
    report: str = ""

    def runs(self) -> dict[str, dict[str, Any]]:
        """Every system's raw result by phase name, in the order they ran (not the GEMM's)."""
        runs: dict[str, dict[str, Any]] = {}
        if self.engine is not None:
            runs["engine"] = self.engine
        runs.update({f"hf_batch_{b}": r for b, r in self.hf.items()})
        runs.update({f"prefix_caching_{k}": r for k, r in self.prefix.items()})
        return runs


def results_path(opts: Options) -> Path:
    out = opts.out if opts.out is not None else DEFAULT_OUT
    return out if out.is_absolute() else Path.cwd() / out


def results_document(opts: Options, m: Measured) -> dict[str, Any]:
    first = m.gemm or next(iter(m.runs().values()), {})
    process = first.get("process", {})
    machine = dict(
        machine_info(),
        cpu_busy_before_start=m.cpu_busy_before,
        torch=process.get("torch"),
        transformers=process.get("transformers"),
        threads=process.get("threads"),
        worker_cpus_allowed=process.get("cpus_allowed"),
    )
    return {
        "benchmark": "engine_throughput",
        "schema_version": 1,
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "git": git_info(),
        "machine": machine,
        "config": _config(opts, m),
        "workloads": m.workloads,
        "gemm": m.gemm,
        "main": {
            "engine": m.engine_summary,
            "hf": {str(b): s for b, s in m.hf_summaries.items()},
            "comparison": m.main_comparison,
        },
        "shared_prefix": _shared_prefix(m) if m.prefix else None,
        "record_fields": list(RECORD_FIELDS),
        "runs": {name: compact_run(r) for name, r in m.runs().items()},
        "report": m.report.splitlines(),
    }


def compact_run(result: dict[str, Any]) -> dict[str, Any]:
    """A worker's result with its records as rows of RECORD_FIELDS."""
    rows = [[r[k] for k in RECORD_FIELDS] for r in result["records"]]
    return dict(result, records=rows)


def write_results(out: Path, doc: dict[str, Any]) -> None:
    """Write doc to out (through a temporary file and a rename) and say where."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(dumps(doc) + "\n")
    os.replace(tmp, out)
    try:
        shown: Path | str = out.relative_to(Path.cwd())
    except ValueError:
        shown = out
    log(f"\nwrote {shown}")


def dumps(value: Any, indent: int = 0) -> str:
    """JSON indented by two spaces, except that a list of plain values stays on one line.

    Floats are rounded to the microsecond (times in seconds) or a millionth (everything else).
    """
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(str(k))}: {dumps(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list | tuple) and any(isinstance(v, dict | list | tuple) for v in value):
        return "[\n" + ",\n".join(f"{inner}{dumps(v, indent + 1)}" for v in value) + f"\n{pad}]"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(dumps(v) for v in value) + "]"
    if isinstance(value, float):
        return json.dumps(round(value, 6))
    return json.dumps(value)


def _config(opts: Options, m: Measured) -> dict[str, Any]:
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()}
    engine = m.engine or next(iter(m.prefix.values()), None)
    config.update(
        model_folder=m.model_folder,
        pinning={"cpus": opts.cpus, "taskset": opts.cpus is not None and not opts.in_process},
        process_per_phase=not opts.in_process,
        engine_config=engine.get("engine_config") if engine else None,
        kv_cache_blocks=engine.get("kv_cache_blocks") if engine else None,
        kv_cache_bytes=engine.get("kv_cache_bytes") if engine else None,
        weight_bytes=engine.get("weight_bytes") if engine else None,
        sampling="greedy (temperature 0), ignore_eos, max_tokens = the request's output length",
        hf_generate="AutoModelForCausalLM float32, do_sample=False, left padding, static "
        "batches in arrival order, eos_token_id=None",
    )
    return config


def _shared_prefix(m: Measured) -> dict[str, Any]:
    off = m.prefix.get("off", {})
    return {
        "rate_per_s": off.get("rate_per_s"),
        "rate_source": "auto" if off.get("calibration") else "--rate",
        "calibration": off.get("calibration"),
        "off": m.prefix_summaries.get("off"),
        "on": m.prefix_summaries.get("on"),
        "comparison": m.prefix_comparison,
    }
