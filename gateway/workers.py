"""`sluice serve --workers N`: N gateway processes on one socket under uvicorn's supervisor.

The parent validates the policy, refuses what several processes cannot share, makes a fresh
folder for the metric files and passes everything through the environment, each worker's
index too; each worker then builds its own gateway from the policy file (`worker_app`,
uvicorn's factory) and writes its audit chain in its index's subfolder of audit.dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

from prometheus_client.multiprocess import mark_process_dead
from starlette.routing import Router
from uvicorn.config import STARTUP_FAILURE, Config
from uvicorn.supervisors.multiprocess import Multiprocess, Process

from gateway.config.loader import PolicyError, load_policy
from gateway.config.schema import BuiltinBackend, Policy, unauthenticated_exposure

log = logging.getLogger("sluicegate")

ENV_POLICY = "SLUICE_WORKER_POLICY"
ENV_HOST = "SLUICE_WORKER_HOST"
ENV_LOG_LEVEL = "SLUICE_LOG_LEVEL"
# Which worker this is: its place among the workers, kept by the worker that replaces it.
ENV_WORKER_INDEX = "SLUICE_WORKER_INDEX"
# prometheus_client picks its multiprocess mode from this when it is first imported.
ENV_METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def worker_conflicts(policy: Policy) -> list[str]:
    """What in `policy` cannot work when several processes serve it (empty: nothing)."""
    problems = []
    builtin = sorted(n for n, b in policy.backends.items() if isinstance(b, BuiltinBackend))
    if builtin:
        problems.append(
            f"backends {', '.join(builtin)}: a `kind: builtin` engine runs inside the gateway "
            "process, so every worker would load its own copy of the model. Run the engine once "
            "(`sluice backend serve --model M --port P`) and point a `kind: openai` backend at "
            "it (base_url: http://127.0.0.1:P/v1)"
        )
    if policy.ratelimit is not None and policy.ratelimit.store == "memory":
        problems.append(
            "ratelimit.store: memory keeps its counters in one process, so every worker would "
            "admit the full limits; use store: redis"
        )
    return problems


def serve_workers(
    policy_path: Path, host: str, port: int, workers: int, options: Mapping[str, Any]
) -> int:
    """Serve with `workers` processes until SIGINT/SIGTERM; the exit status for the command."""
    config = Config(
        "gateway.workers:worker_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        **options,
    )
    listener = config.bind_socket()  # exits, saying why, if the port is taken
    metrics_dir = tempfile.mkdtemp(prefix="sluice-metrics-")
    environment = {
        ENV_POLICY: str(policy_path.absolute()),
        ENV_HOST: host,
        ENV_LOG_LEVEL: str(options.get("log_level", "warning")),
        # Always a fresh folder, never one given from outside: old files would be counted.
        ENV_METRICS_DIR: metrics_dir,
    }
    saved = {name: os.environ.get(name) for name in (*environment, ENV_WORKER_INDEX)}
    os.environ.update(environment)  # spawned workers start with a copy of it
    supervisor = Supervisor(config, [listener], metrics_dir)
    try:
        supervisor.run()
    finally:
        listener.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return 2 if supervisor.startup_failed else 0


class Supervisor(Multiprocess):
    """uvicorn's supervisor (restarts dead workers, SIGTTIN/SIGTTOU add or remove one) with
    three changes: SIGHUP goes on to every worker, which reloads its policy in place as a single
    process does (uvicorn would restart them all); the live-gauge files of a worker that died
    are removed so that its values stop counting; and each worker is started with its index,
    its place in `processes`, so the worker that replaces a dead one continues its audit chain.
    """

    def __init__(self, config: Config, sockets: list[socket.socket], metrics_dir: str) -> None:
        super().__init__(config, sockets)
        self.metrics_dir = metrics_dir
        self.startup_failed = False

    def handle_hup(self) -> None:
        for process in self.processes:
            if process.pid is not None and process.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGHUP)

    def init_processes(self) -> None:
        for index in range(self.processes_num):
            self.processes.append(self._start(index))

    def keep_subprocess_alive(self) -> None:
        """uvicorn's, but the replacement gets the dead worker's index."""
        if self.should_exit.is_set():
            return
        for index, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()  # hung, or dead already
            process.join()  # gone, its audit folder's lock with it
            if process.pid is not None:
                mark_process_dead(process.pid, self.metrics_dir)
            if process.exitcode == STARTUP_FAILURE:
                # It could not use the policy (or its audit folder): a replacement would fail
                # the same way, so everything stops.
                log.error("worker %d failed to start; stopping every worker", process.pid)
                self.startup_failed = True
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            log.warning("worker %d (index %d) died; starting another", process.pid, index)
            self.processes[index] = self._start(index)

    def handle_ttin(self) -> None:
        self.processes_num += 1
        self.processes.append(self._start(len(self.processes)))

    def _start(self, index: int) -> Process:
        process = Process(self.config, self.sockets)
        # A spawned worker starts with a copy of this process's environment as it is now.
        os.environ[ENV_WORKER_INDEX] = str(index)
        process.start()
        return process

    def handle_ttou(self) -> None:
        before = self._pids()
        super().handle_ttou()
        self._bury(before)

    def _pids(self) -> set[int]:
        return {p.pid for p in self.processes if p.pid is not None}

    def _bury(self, before: set[int]) -> None:
        for pid in before - self._pids():
            mark_process_dead(pid, self.metrics_dir)


def worker_app() -> Router:
    """uvicorn's factory, in each worker: the gateway for the policy file the parent checked."""
    from gateway.app import create_app
    from gateway.cli import _tune_gc
    from gateway.service import Gateway
    from gateway.worker_metrics import SharedMetrics, publish_every

    logging.basicConfig(level=os.environ.get(ENV_LOG_LEVEL, "warning").upper(), format=LOG_FORMAT)
    path, host = Path(os.environ[ENV_POLICY]), os.environ[ENV_HOST]
    # The file may have changed since the parent read it: check it again, all of it.
    try:
        policy = load_policy(path)
    except PolicyError as exc:
        _refuse(f"the policy cannot be used:\n{exc}")
    problems = worker_conflicts(policy)
    exposed = unauthenticated_exposure(policy, host)
    if problems or exposed:
        _refuse("; ".join(problems + ([exposed] if exposed else [])))
    logs = policy.telemetry.logs if policy.telemetry is not None else None
    if logs is not None:
        from gateway.telemetry.logs import configure_logging

        configure_logging(logs.format, logs.level)
    app = create_app(policy, policy_path=path, bind_host=host)
    assert isinstance(app, Router)
    gateway: Gateway = app.state  # type: ignore[attr-defined]
    if gateway.audit is not None:
        # Its own chain, in audit.dir/w<index>: the lock there refuses a second writer.
        gateway.audit.write_as_worker(int(os.environ[ENV_WORKER_INDEX]))
    shared = SharedMetrics(os.environ[ENV_METRICS_DIR], gateway.metrics.registry.live)
    gateway.metrics.shared = shared
    serve = app.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(router: Any) -> AsyncIterator[None]:
        async with serve(router):
            task = asyncio.get_running_loop().create_task(publish_every(shared.mirror))
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                shared.mirror.publish()

    app.lifespan_context = lifespan
    _tune_gc()
    return app


def _refuse(reason: str) -> NoReturn:
    log.error("worker %d refuses to start: %s", os.getpid(), reason)
    # uvicorn's supervisor stops (instead of restarting the worker) on this status.
    sys.exit(STARTUP_FAILURE)
