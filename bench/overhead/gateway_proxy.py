"""The Sluicegate gateway under test, one process per --ratelimit variant.

Its policy (the mock as its only backend, one bench key), its start-up and its pre-flight.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from overhead.loopback import check_endpoint
from overhead.paths import REPO_ROOT
from overhead.pinning import Pinning
from overhead.processes import Children, Server, wait_healthy
from overhead.ratelimit_variants import RATE_HEADER, describe_variant
from overhead.request import request_kind

KEY_ENV = "SLUICE_BENCH_KEY"

POLICY_TEMPLATE = """\
server:
  host: 127.0.0.1
  port: {gateway_port}
auth:
  keys:
    - id: bench
      tenant: bench
      key_env: {key_env}
      models: ["*"]
backends:
  mock:
    kind: openai
    base_url: http://127.0.0.1:{mock_port}/v1
models:
  mock-model:
    backend: mock
audit:
  dir: {audit_dir}
  fsync: batch
"""


def start_gateway(
    port: int,
    mock_port: int,
    key: str,
    pin: Pinning,
    workdir: Path,
    children: Children,
    startup_timeout: float,
    name: str = "gateway",
    extra_policy: str = "",
) -> Server:
    """The gateway as `name`, its policy the common one plus extra_policy (YAML sections)."""
    policy = workdir / ("policy.yaml" if name == "gateway" else f"policy_{name}.yaml")
    policy.write_text(
        POLICY_TEMPLATE.format(
            gateway_port=port,
            mock_port=mock_port,
            key_env=KEY_ENV,
            audit_dir=workdir / f"audit_{name}",
        )
        + extra_policy
    )
    cmd = [
        *pin.gateway(),
        sys.executable,
        "-m",
        "gateway",
        "serve",
        "--config",
        str(policy),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    env = dict(os.environ)
    env[KEY_ENV] = key
    env["SLUICE_AUDIT_HMAC_KEY"] = "bench-audit-key"
    env["PYTHONUNBUFFERED"] = "1"
    out_path = workdir / f"{name}.log"
    proc = children.spawn(name, cmd, REPO_ROOT, env, out_path)
    wait_healthy(name, proc, cmd, out_path, port, "/healthz", startup_timeout)
    return Server(name, proc, port, cmd, out_path)


def gateway_problems(
    server: Server,
    variant: str,
    body_bytes: dict[bool, bytes],
    headers: dict[str, str],
) -> list[tuple[str, str]]:
    """(what failed, how) for each request kind the gateway variant did not serve right."""
    what = describe_variant(variant)
    # With a limiter, every answer carries its headers: proof it is on the path.
    required: Sequence[str] = (RATE_HEADER,) if variant != "none" else ()
    return [
        (f"request through the {what} ({request_kind(s)}) failed", problem)
        for s, body in body_bytes.items()
        if (problem := check_endpoint(server.port, body, headers, s, require_headers=required))
    ]
