"""What the benchmark tells the person watching it, on stderr.

Log lines, and the progress of the runs (a tqdm bar when tqdm is installed, else one line a run).
"""

from __future__ import annotations

import sys
from typing import Any


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Progress:
    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self._bar: Any = None
        try:
            from tqdm import tqdm

            self._bar = tqdm(total=total, file=sys.stderr, unit="run", dynamic_ncols=True)
        except ImportError:
            pass

    def step(self, label: str, result: dict[str, Any]) -> None:
        self.done += 1
        summary = (
            f"{result['rps']:>9,.0f} req/s  p50 {result['lat_p50_ms']:7.3f} ms"
            f"  p99 {result['lat_p99_ms']:7.3f} ms"
        )
        if result.get("non_2xx") or result.get("errors"):
            summary += f"  non-2xx {result['non_2xx']} errors {result['errors']}"
        if self._bar is not None:
            self._bar.set_postfix_str(f"{label}: {summary.strip()}", refresh=False)
            self._bar.update(1)
        else:
            log(f"[{self.done:>{len(str(self.total))}}/{self.total}] {label:<36} {summary}")

    def write(self, msg: str) -> None:
        if self._bar is not None:
            self._bar.write(msg, file=sys.stderr)
        else:
            log(msg)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
