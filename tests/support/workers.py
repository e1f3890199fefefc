"""`sluice serve --workers N` as a subprocess, for the tests that need several workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import KEYS_ENV
from tests.support.processes import AUTH, REPO, wait_until
from tests.support.servers import free_port

WORKERS = 2
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class Workers:
    """`python -m gateway serve --workers N` in a subprocess, its stderr in a file."""

    def __init__(self, config: Path, folder: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "stderr.log"
        # The parent makes its metrics folder under TMPDIR: here, where the test can look.
        self.tmp = folder / "tmp"
        self.tmp.mkdir()
        argv = ["serve", "--config", str(config), "--port", str(self.port)]
        with self.log.open("w") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", *argv, "--workers", str(WORKERS)],
                cwd=REPO,
                env={**os.environ, **KEYS_ENV, **env, "TMPDIR": str(self.tmp)},
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

    @property
    def stderr(self) -> str:
        return self.log.read_text()

    def scrape(self) -> Samples:
        # A new connection each time: any worker may answer.
        response = httpx.get(f"{self.url}/metrics", timeout=5)
        assert response.status_code == 200, response.text
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }

    def wait_all_serving(self) -> None:
        def serving() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"exited with {self.proc.returncode}:\n{self.stderr}")
            try:
                return self.scrape().get(("sluice_workers", ())) == WORKERS
            except httpx.TransportError:
                return False

        wait_until(serving, f"{WORKERS} workers serve", timeout=60)

    def metrics_dir(self) -> Path:
        (folder,) = self.tmp.glob("sluice-metrics-*")
        return folder

    def requests_by_worker(self) -> Counter[str]:
        """sluice_requests_total per worker pid, read from each worker's own file."""
        counts: Counter[str] = Counter()
        for path in self.metrics_dir().glob("counter_*.db"):
            pid = path.stem.removeprefix("counter_")
            for family in MultiProcessCollector.merge([str(path)]):
                for sample in family.samples:
                    if sample.name == "sluice_requests_total":
                        counts[pid] += sample.value
        return counts

    def live_pids(self) -> set[int]:
        """Workers whose live gauges count: the parent removes a dead worker's file."""
        files = self.metrics_dir().glob("gauge_livesum_*.db")
        return {int(path.stem.rsplit("_", 1)[1]) for path in files}

    def models(self) -> list[str]:
        response = httpx.get(f"{self.url}/v1/models", headers=AUTH, timeout=5)
        assert response.status_code == 200, response.text
        return [model["id"] for model in response.json()["data"]]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)


def chat(url: str, model: str, stream: bool = False) -> int:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    # httpx.post opens a new connection per call: the kernel hands each to either worker.
    response = httpx.post(f"{url}/v1/chat/completions", json=body, headers=AUTH, timeout=10)
    return response.status_code
