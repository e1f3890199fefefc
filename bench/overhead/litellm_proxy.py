"""LiteLLM's proxy as a third target (--litellm), in front of the same mock.

Its config, its start-up on the gateway's CPUs, its version and its pre-flight.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from overhead.errors import BenchError
from overhead.loopback import check_endpoint
from overhead.pinning import Pinning
from overhead.processes import Children, Server, tail, wait_healthy
from overhead.request import MODEL, chat_body, request_kind

# --litellm without a value: $SLUICE_BENCH_LITELLM, else this path.
LITELLM_ENV = "SLUICE_BENCH_LITELLM"
DEFAULT_LITELLM = Path("/tmp/litellm-venv/bin/litellm")
LITELLM_HEALTH_PATH = "/health/liveliness"
# Kept off the network (the bundled model cost map) and quiet (no access log).
LITELLM_SETTINGS_ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}

LITELLM_CONFIG_TEMPLATE = """\
model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{model}
      api_base: http://127.0.0.1:{mock_port}/v1
      api_key: sk-upstream
general_settings:
  master_key: {master_key}
litellm_settings:
  telemetry: false
"""


def start_litellm(
    binary: Path,
    port: int,
    mock_port: int,
    key: str,
    pin: Pinning,
    workdir: Path,
    children: Children,
    startup_timeout: float,
) -> Server:
    """LiteLLM's proxy (one uvicorn worker) in front of the mock, on the gateway's CPUs.

    Kept off the network: the bundled model cost map instead of a download,
    telemetry off, loopback only. LITELLM_LOG=ERROR also sets uvicorn's log level,
    which silences its access log (the CLI has no flag for that): like the gateway
    (access_log=False), it writes nothing per request.
    """
    config = workdir / "litellm.yaml"
    config.write_text(
        LITELLM_CONFIG_TEMPLATE.format(model=MODEL, mock_port=mock_port, master_key=key)
    )
    cmd = [
        *pin.gateway(),
        str(binary),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    env = dict(os.environ)
    env.update(LITELLM_SETTINGS_ENV, PYTHONUNBUFFERED="1")
    no_proxy = ",".join(x for x in (env.get("no_proxy"), "127.0.0.1,localhost") if x)
    env["no_proxy"] = env["NO_PROXY"] = no_proxy
    out_path = workdir / "litellm.log"
    proc = children.spawn("litellm", cmd, workdir, env, out_path)
    wait_healthy("litellm", proc, cmd, out_path, port, LITELLM_HEALTH_PATH, startup_timeout)
    return Server("litellm", proc, port, cmd, out_path)


def check_litellm(server: Server, headers: dict[str, str]) -> None:
    """Fail unless LiteLLM serves both request kinds, whatever --stream says.

    A LiteLLM that cannot serve either is not worth comparing with.
    """
    for s in (False, True):
        body = json.dumps(chat_body(s)).encode()
        problem = check_endpoint(server.port, body, headers, s, timeout=30.0)
        if problem:
            raise BenchError(
                f"request through LiteLLM ({request_kind(s)}) failed: {problem}\n"
                f"--- LiteLLM output ---\n{tail(server.log_path)}"
            )


def litellm_version(binary: Path) -> str | None:
    """The installed litellm version, asked of the interpreter its script runs under."""
    candidates = [binary.parent / "python"]
    try:
        first = binary.read_bytes()[:300].split(b"\n", 1)[0].decode("utf-8", "replace")
        if first.startswith("#!"):
            candidates.insert(0, Path(first[2:].strip().split()[0]))
    except OSError:
        pass
    code = "import importlib.metadata as m; print(m.version('litellm'))"
    for python in candidates:
        try:
            res = subprocess.run(
                [str(python), "-c", code], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if res.returncode == 0 and res.stdout.strip():
            return res.stdout.strip()
    return None


def config_for_results() -> str:
    """LiteLLM's config as the results record it, port and key left out."""
    return LITELLM_CONFIG_TEMPLATE.format(
        model=MODEL, mock_port="<mock port>", master_key="<bench key>"
    )


def env_for_results() -> dict[str, str]:
    return dict(LITELLM_SETTINGS_ENV)
