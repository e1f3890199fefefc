"""Runs each job in a worker process (under `taskset -c CPUS` with --cpus) and reads its result.

With --in-process the job runs right here instead: for tests and debugging, with no pinning.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from overhead.errors import BenchError
from overhead.pinning import parse_cpu_list

from engine.jobs import Job, job_to_json
from engine.paths import BENCH_DIR


class Launcher:
    def __init__(self, workdir: Path, cpus: str | None, in_process: bool) -> None:
        self.workdir = workdir
        self.cpus = cpus
        self.in_process = in_process
        self._ids = itertools.count()
        if cpus is not None:
            check_cpus(cpus)

    def run(self, job: Job) -> dict[str, Any]:
        if self.in_process:
            from engine.worker import run_job

            return run_job(job)
        n = next(self._ids)
        job_path = self.workdir / f"job-{n}.json"
        result_path = self.workdir / f"result-{n}.json"
        job_path.write_text(json.dumps(job_to_json(job)))
        pin = ["taskset", "-c", self.cpus] if self.cpus is not None else []
        cmd = [*pin, sys.executable, "-m", "engine.worker", str(job_path), str(result_path)]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BENCH_DIR), env.get("PYTHONPATH")]))
        # stdout to our stderr: stdout is for the report; progress bars are on stderr anyway.
        proc = subprocess.Popen(cmd, env=env, stdout=sys.stderr)
        try:
            status = proc.wait()
        except BaseException:
            _stop(proc)
            raise
        if status != 0 or not result_path.exists():
            raise BenchError(
                f"the {job.kind} worker failed (exit status {status}); its output is above"
            )
        result: dict[str, Any] = json.loads(result_path.read_text())
        return result


def check_cpus(cpus: str) -> None:
    """--cpus must name CPUs this process may use, and taskset must exist."""
    if shutil.which("taskset") is None:
        raise BenchError("--cpus needs taskset (util-linux), which is not installed")
    try:
        wanted = parse_cpu_list(cpus)
    except ValueError as exc:
        raise BenchError(f"--cpus {cpus!r} is not a CPU list like 0-3 or 0,2") from exc
    allowed = os.sched_getaffinity(0)
    if not wanted or not wanted <= allowed:
        raise BenchError(
            f"--cpus {cpus!r} names CPUs {sorted(wanted - allowed)} that this process may not "
            f"use (allowed: {sorted(allowed)})"
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
