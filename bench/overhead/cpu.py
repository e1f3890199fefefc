"""CPU accounting from /proc: process trees, single processes and whole CPUs.

How much CPU time a proxy, the mock or redis-server used, when a process has gone quiet, and
how busy each CPU is.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after "(comm)": field n is at index n - 3."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after "(comm)"; rest[0] is field 3 (state), so field n is rest[n - 3].
    return raw[raw.rindex(")") + 2 :].split()


def process_tree_cpu_seconds(pid: int) -> float:
    """utime+stime (all threads) of pid, its reaped children, and its live descendants."""

    def own(fields: list[str]) -> int:
        # utime (14), stime (15), cutime (16), cstime (17)
        return int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])

    root = stat_fields(pid)
    if root is None:
        return float("nan")
    ticks = own(root)
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        f = stat_fields(int(entry))
        if f is None:
            continue
        stats[int(entry)] = f
        children.setdefault(int(f[1]), []).append(int(entry))
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        ticks += own(stats[child])
        todo.extend(children.get(child, []))
    return ticks / CLK_TCK


def process_cpu_seconds(pid: int) -> float | None:
    """utime + stime of pid, all its threads (not reaped children: a BGSAVE is not a request)."""
    f = stat_fields(pid)
    return None if f is None else (int(f[11]) + int(f[12])) / CLK_TCK


def wait_idle(
    pid: int, quiet_s: float = 0.3, max_wait_s: float = 30.0
) -> tuple[float, float, bool]:
    """Wait until pid's process tree stops using CPU (at most one clock tick in quiet_s).

    A closed-loop client that stops leaves its in-flight requests behind; a proxy
    may go on working on them after the run. Waiting here keeps that work out of
    the next run on the same CPU. Returns (CPU seconds used meanwhile, seconds
    waited, whether it went quiet).
    """
    t0 = time.monotonic()
    c0 = last = process_tree_cpu_seconds(pid)
    last_t = t0
    while True:
        time.sleep(0.1)
        now = time.monotonic()
        c = process_tree_cpu_seconds(pid)
        if c != c:  # NaN: the process is gone
            return 0.0, now - t0, False
        if c - last > 1.5 / CLK_TCK:
            last, last_t = c, now
        elif now - last_t >= quiet_s:
            return c - c0, now - t0, True
        if now - t0 > max_wait_s:
            return c - c0, now - t0, False


def cpu_busy(interval: float = 0.5) -> dict[int, float]:
    """Fraction of each CPU that was busy (not idle/iowait) over interval seconds."""
    a = _cpu_ticks()
    time.sleep(interval)
    b = _cpu_ticks()
    busy: dict[int, float] = {}
    for cpu, (total_b, idle_b) in b.items():
        if cpu not in a:
            continue
        total = total_b - a[cpu][0]
        idle = idle_b - a[cpu][1]
        busy[cpu] = round(1.0 - idle / total, 3) if total > 0 else 0.0
    return busy


def _cpu_ticks() -> dict[int, tuple[int, int]]:
    """Per CPU in /proc/stat: (all ticks, idle + iowait ticks)."""
    out: dict[int, tuple[int, int]] = {}
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.split()
        if not parts or not parts[0].startswith("cpu") or parts[0] == "cpu":
            continue
        vals = [int(v) for v in parts[1:9]]  # user nice system idle iowait irq softirq steal
        out[int(parts[0][3:])] = (sum(vals), vals[3] + vals[4])
    return out
