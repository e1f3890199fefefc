"""The closed-loop C load generator (bench/loadgen.c): one run against one target.

It shares the client-side CPU with the mock and prints its result as one JSON line.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from overhead.errors import BenchError
from overhead.pinning import Pinning
from overhead.request import CHAT_PATH

# Per-request timeout (loadgen --timeout-s). LiteLLM queues ~1 s of work at 64
# connections, so it gets a generous one; the gateway and the mock answer in ms.
# Gateway variants with a rate limiter (targets "gateway_rl_<store>") use the gateway's.
LOADGEN_TIMEOUT_S = {"direct": 15.0, "gateway": 15.0, "litellm": 60.0}


def loadgen_timeout(target: str) -> float:
    return LOADGEN_TIMEOUT_S.get(target, LOADGEN_TIMEOUT_S["gateway"])


def run_loadgen(
    binary: Path,
    port: int,
    body_file: Path,
    headers: list[str],
    concurrency: int,
    duration: float,
    warmup: float,
    pin: Pinning,
    timeout_s: float = 15.0,
) -> dict[str, Any]:
    cmd = [
        *pin.aux(),
        str(binary),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--path",
        CHAT_PATH,
        "--body-file",
        str(body_file),
    ]
    for h in headers:
        cmd += ["--header", h]
    cmd += [
        "--concurrency", str(concurrency),
        "--duration-s", f"{duration:g}",
        "--warmup-s", f"{warmup:g}",
        "--timeout-s", f"{timeout_s:g}",
        "--json",
    ]  # fmt: skip
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=warmup + duration + 60)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"loadgen did not finish: {' '.join(cmd)}") from exc
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if res.returncode != 0 or not lines:
        raise BenchError(
            f"loadgen failed (rc={res.returncode}): {' '.join(cmd)}\n{res.stderr}{res.stdout}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    if res.stderr.strip():
        result["loadgen_stderr"] = res.stderr.strip()[:2000]
    return result
