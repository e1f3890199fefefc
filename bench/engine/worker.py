"""One measured phase in its own process: read a job, run it, write what it measured.

`python -m engine.worker JOB.json RESULT.json`, started by launcher.py (under taskset with --cpus).
A process per phase gives each system its own peak RSS and a clean heap.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path
from typing import Any

from engine.jobs import EngineJob, GemmJob, HFJob, Job, job_from_json


def run_job(job: Job) -> dict[str, Any]:
    """Run one job here; its result, with the process's threads, CPUs and peak RSS."""
    # Models are local folders; never reach for a hub.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    result: dict[str, Any]
    if isinstance(job, GemmJob):
        from engine.gemm import run_gemm

        result = run_gemm(job)
    elif isinstance(job, EngineJob):
        from engine.engine_driver import run_engine

        result = run_engine(job)
    elif isinstance(job, HFJob):
        from engine.hf_driver import run_hf

        result = run_hf(job)
    else:
        raise TypeError(f"not a job: {job!r}")
    return dict(result, kind=job.kind, process=process_info())


def process_info() -> dict[str, Any]:
    """What the process ran with, and its peak resident memory so far."""
    import torch
    import transformers

    # Linux reports ru_maxrss in KiB.
    peak_rss_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "pid": os.getpid(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "cpus_allowed": sorted(os.sched_getaffinity(0)),
        "peak_rss_bytes": peak_rss_bytes,
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m engine.worker JOB.json RESULT.json", file=sys.stderr)
        return 2
    job = job_from_json(json.loads(Path(args[0]).read_text()))
    result = run_job(job)
    Path(args[1]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
