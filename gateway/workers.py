"""`sluice serve --workers N`: N gateway processes on one socket under uvicorn's supervisor.

The parent validates the policy, refuses what several processes cannot share, makes a fresh
folder for the metric files and passes everything through the environment; each worker then
builds its own gateway from the policy file (`worker_app`, uvicorn's factory).
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
from uvicorn.supervisors.multiprocess import Multiprocess

from gateway.config.loader import PolicyError, load_policy
from gateway.config.schema import BuiltinBackend, Policy, unauthenticated_exposure

log = logging.getLogger("sluicegate")

ENV_POLICY = "SLUICE_WORKER_POLICY"
ENV_HOST = "SLUICE_WORKER_HOST"
ENV_LOG_LEVEL = "SLUICE_LOG_LEVEL"
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
    if policy.audit is not None:
        problems.append(
            f"audit: every worker would continue the same hash chain in {policy.audit.dir} and "
            "break it; run one `sluice serve` per core (each with its own audit.dir) behind a "
            "balancer instead"
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
    saved = {name: os.environ.get(name) for name in environment}
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
    two changes: SIGHUP goes on to every worker, which reloads its policy in place as a single
    process does (uvicorn would restart them all), and the live-gauge files of a worker that
    died are removed so that its values stop counting."""

    def __init__(self, config: Config, sockets: list[socket.socket], metrics_dir: str) -> None:
        super().__init__(config, sockets)
        self.metrics_dir = metrics_dir
        self.startup_failed = False

    def handle_hup(self) -> None:
        for process in self.processes:
            if process.pid is not None and process.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGHUP)

    def keep_subprocess_alive(self) -> None:
        before = self._pids()
        super().keep_subprocess_alive()
        self._bury(before)
        # uvicorn stops everything when a worker cannot start: the policy or the app is broken.
        if any(p.exitcode == STARTUP_FAILURE for p in self.processes):
            self.startup_failed = True

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
