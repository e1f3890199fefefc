"""Which CPUs the proxies and the client side (mock + loadgen) run on.

taskset prefixes for their commands, or none when pinning is off or impossible.
"""

from __future__ import annotations

import os
import shutil
from typing import Any


class Pinning:
    """taskset prefixes for the gateway CPU and the CPU shared by mock + loadgen."""

    def __init__(self, gateway_cpus: str, aux_cpus: str, enabled: bool) -> None:
        self.gateway_cpus = gateway_cpus
        self.aux_cpus = aux_cpus
        self.enabled = enabled
        self.note = ""
        if enabled and shutil.which("taskset") is None:
            self.enabled = False
            self.note = "taskset not found; running unpinned"
        elif enabled:
            allowed = os.sched_getaffinity(0)
            wanted = parse_cpu_list(gateway_cpus) | parse_cpu_list(aux_cpus)
            if not wanted <= allowed:
                self.enabled = False
                missing = sorted(wanted - allowed)
                self.note = (
                    f"CPUs {missing} not available (allowed: {sorted(allowed)}); running unpinned"
                )

    def gateway(self) -> list[str]:
        return ["taskset", "-c", self.gateway_cpus] if self.enabled else []

    def aux(self) -> list[str]:
        return ["taskset", "-c", self.aux_cpus] if self.enabled else []

    def describe(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "gateway_cpus": self.gateway_cpus if self.enabled else None,
            "mock_and_loadgen_cpus": self.aux_cpus if self.enabled else None,
            "note": self.note or None,
        }


def parse_cpu_list(spec: str) -> set[int]:
    """The CPUs of a taskset-style list such as "0,2-3"."""
    cpus: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            cpus.update(range(int(lo), int(hi) + 1))
        else:
            cpus.add(int(part))
    return cpus
