"""What Redis did during one run: its CPU time, where it ran, and its script calls.

Started before and stopped after every run, so the runs of other targets show Redis idle.
"""

from __future__ import annotations

import threading
from typing import Any

from overhead.cpu import process_cpu_seconds, stat_fields
from overhead.errors import BenchError


class RedisWatch:
    """What Redis did during one run.

    The CPU time of redis-server (from /proc, when it runs on this machine; the benchmark
    does not pin it), the CPUs its main thread was seen on (sampled every interval_s), and
    its command counters from INFO (EVALSHA calls and the time Redis spent in them).
    """

    def __init__(self, client: Any, pid: int | None, interval_s: float = 0.05) -> None:
        self.client = client
        self.pid = pid
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: dict[int, int] = {}
        self._before: dict[str, Any] = {}

    def _snapshot(self) -> dict[str, Any]:
        try:
            info = self.client.info("stats", "commandstats")
        except Exception as exc:  # redis.RedisError, OSError
            raise BenchError(f"Redis stopped answering INFO: {exc}") from exc
        evalsha = info.get("cmdstat_evalsha") or {}
        return {
            "cpu_s": process_cpu_seconds(self.pid) if self.pid else None,
            "commands": int(info.get("total_commands_processed", 0)),
            "evalsha_calls": int(evalsha.get("calls", 0)),
            "evalsha_usec": int(evalsha.get("usec", 0)),
        }

    def start(self) -> None:
        self._seen = {}
        self._before = self._snapshot()
        if self.pid:
            self._stop.clear()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def _sample(self) -> None:
        assert self.pid is not None
        while not self._stop.wait(self.interval_s):
            f = stat_fields(self.pid)
            if f is None:
                return
            cpu = int(f[36])  # field 39, processor: the CPU it last ran on
            self._seen[cpu] = self._seen.get(cpu, 0) + 1

    def stop(self) -> dict[str, Any]:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        a, b = self._snapshot(), self._before
        cpu = None if a["cpu_s"] is None or b["cpu_s"] is None else a["cpu_s"] - b["cpu_s"]
        return {
            "redis_server_cpu_s": cpu,
            "redis_server_cpus_seen": {str(k): v for k, v in sorted(self._seen.items())},
            # All commands Redis executed, those run inside scripts included, less our INFO.
            "redis_commands": a["commands"] - b["commands"] - 1,
            "redis_evalsha_calls": a["evalsha_calls"] - b["evalsha_calls"],
            "redis_evalsha_usec": a["evalsha_usec"] - b["evalsha_usec"],
        }
