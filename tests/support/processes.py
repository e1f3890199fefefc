"""`python -m gateway serve` as a real subprocess, for tests that need whole processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.conftest import ALICE_KEY
from tests.support.servers import free_port

REPO = Path(__file__).resolve().parent.parent.parent
AUTH = {"authorization": f"Bearer {ALICE_KEY}"}
DEADLINE_S = 10.0


def wait_until(condition: Callable[[], object], what: str, timeout: float = DEADLINE_S) -> object:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting until {what}")
        time.sleep(0.05)


class GatewayProcess:
    """`python -m gateway serve` in a subprocess, with its stderr collected as it comes."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway",
                "serve",
                "--config",
                str(config),
                "--port",
                str(self.port),
            ],
            cwd=REPO,
            env={**os.environ, **env, "SLUICE_LOG_LEVEL": "warning"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()

    @property
    def stderr(self) -> str:
        with self._changed:
            return "".join(self._lines)

    def wait_for_stderr(self, pattern: str, timeout: float = DEADLINE_S) -> re.Match[str]:
        found: list[re.Match[str]] = []

        def seen() -> bool:
            match = re.search(pattern, "".join(self._lines))
            if match:
                found.append(match)
            return match is not None or self.proc.poll() is not None

        with self._changed:
            self._changed.wait_for(seen, timeout)
        assert found, f"stderr never matched {pattern!r}:\n{self.stderr}"
        return found[0]

    def wait_healthy(self) -> None:
        def healthy() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited with {self.proc.returncode}:\n{self.stderr}")
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, "the gateway answers /healthz", timeout=20)

    def models(self) -> list[str]:
        response = httpx.get(f"{self.url}/v1/models", headers=AUTH, timeout=5)
        assert response.status_code == 200, response.text
        return [m["id"] for m in response.json()["data"]]

    def chat(self, model: str) -> httpx.Response:
        return httpx.post(
            f"{self.url}/v1/chat/completions",
            headers=AUTH,
            timeout=10,
            json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._reader.join(timeout=5)
