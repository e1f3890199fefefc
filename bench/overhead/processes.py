"""The child processes the benchmark starts, and stopping every one of them.

Each runs in its own session so its whole group can be signalled; its output file is read
back to explain a failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from overhead.errors import BenchError
from overhead.loopback import http_request


@dataclass(frozen=True)
class Server:
    """A proxy under test, started and answering: the gateway (a variant of it) or LiteLLM."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    cmd: list[str]
    log_path: Path


class Children:
    """Every process we start; all of them are stopped in stop_all()."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def add(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        self.procs.append((name, proc))

    def spawn(
        self, name: str, cmd: list[str], cwd: Path, env: dict[str, str], log_path: Path
    ) -> subprocess.Popen[bytes]:
        """Start a server in its own session, its stdout and stderr going to `log_path`."""
        with open(log_path, "wb") as out:
            proc = subprocess.Popen(
                cmd,
                cwd=str(cwd),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.add(name, proc)
        return proc

    def stop_all(self) -> None:
        for _name, proc in reversed(self.procs):
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        for _name, proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                try:
                    proc.wait(timeout=5.0)
                except subprocess.TimeoutExpired:
                    pass
        for _name, proc in self.procs:
            if proc.stdout is not None:
                proc.stdout.close()
        self.procs.clear()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Signal the process group we created for proc (start_new_session=True)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass


def tail(path: Path, max_chars: int = 4000) -> str:
    """The end of a process's output file, for an error message."""
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    text = data[-max_chars:].decode("utf-8", "replace")
    return ("...\n" if len(data) > max_chars else "") + text


def wait_healthy(
    name: str,
    proc: subprocess.Popen[bytes],
    cmd: list[str],
    out_path: Path,
    port: int,
    path: str,
    startup_timeout: float,
) -> None:
    """Poll GET path until it answers 200; fail with the process's output otherwise."""
    deadline = time.monotonic() + startup_timeout
    last_err = "no answer yet"
    while True:
        rc = proc.poll()
        if rc is not None:
            raise BenchError(
                f"{name} exited during start-up (rc={rc}). Command: {' '.join(cmd)}\n"
                f"--- {name} output ---\n{tail(out_path)}"
            )
        try:
            status, _h, body = http_request(port, "GET", path, timeout=1.0)
            if status == 200:
                return
            last_err = f"GET {path} -> {status}: {body[:200]!r}"
        except OSError as exc:
            last_err = f"GET {path}: {exc}"
        if time.monotonic() > deadline:
            raise BenchError(
                f"{name} did not answer GET {path} with 200 within {startup_timeout:g} s "
                f"({last_err}). "
                f"Command: {' '.join(cmd)}\n--- {name} output ---\n{tail(out_path)}"
            )
        time.sleep(0.1)
