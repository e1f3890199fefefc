"""The targets of one benchmark, started and checked before any run.

The mock upstream ("direct"), one gateway per --ratelimit variant, and LiteLLM with --litellm.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from overhead.console import log
from overhead.errors import BenchError
from overhead.gateway_proxy import gateway_problems, start_gateway
from overhead.litellm_proxy import check_litellm, litellm_version, start_litellm
from overhead.loopback import check_endpoint, free_port
from overhead.mock_upstream import start_mock
from overhead.options import Options
from overhead.pinning import Pinning
from overhead.processes import Children, Server, tail
from overhead.ratelimit_variants import describe_variant, gateway_target
from overhead.redis_store import RedisStore
from overhead.request import BenchRequests, request_kind


@dataclass(frozen=True)
class Targets:
    """Every target, up and answering."""

    mock: subprocess.Popen[bytes]
    mock_port: int
    gateways: dict[str, Server]  # by target name, in --ratelimit order
    litellm: Server | None
    litellm_version: str | None

    @property
    def servers(self) -> dict[str, Server]:
        """The proxies under test by target name: the gateway variants, then LiteLLM."""
        servers = dict(self.gateways)
        if self.litellm is not None:
            servers["litellm"] = self.litellm
        return servers

    def port(self, target: str) -> int:
        return self.mock_port if target == "direct" else self.servers[target].port


@dataclass(frozen=True)
class Launcher:
    """Starts targets with one benchmark's settings, pinning, work folder and key."""

    opts: Options
    pin: Pinning
    workdir: Path
    children: Children
    requests: BenchRequests

    def start_direct(self, binary: Path) -> tuple[subprocess.Popen[bytes], int]:
        """The mock upstream and its port, checked with one request of each kind."""
        mock_port = free_port()
        proc = start_mock(
            binary, mock_port, self.opts.chunks, self.pin, self.workdir, self.children
        )
        log(f"mock upstream on 127.0.0.1:{mock_port} (cpu {self._cpus(self.pin.aux_cpus)})")
        for s, body in self.requests.body_bytes.items():
            problem = check_endpoint(mock_port, body, self.requests.json_headers, s)
            if problem:
                raise BenchError(f"mock upstream pre-flight ({request_kind(s)}) failed: {problem}")
        return proc, mock_port

    def start_gateways(
        self, mock_port: int, sections: dict[str, str], redis: RedisStore | None
    ) -> dict[str, Server]:
        """One gateway per --ratelimit variant, sections[variant] added to its policy."""
        return {
            gateway_target(v): self._start_gateway(v, mock_port, sections.get(v, ""), redis)
            for v in self.opts.ratelimit
        }

    def _start_gateway(
        self, variant: str, mock_port: int, section: str, redis: RedisStore | None
    ) -> Server:
        name = gateway_target(variant)
        port = free_port()
        what = describe_variant(variant)
        log(f"starting {what} on 127.0.0.1:{port} (cpu {self._cpus(self.pin.gateway_cpus)}) ...")
        server = start_gateway(
            port,
            mock_port,
            self.requests.key,
            self.pin,
            self.workdir,
            self.children,
            self.opts.startup_timeout_s,
            name=name,
            extra_policy=section,
        )
        log(f"{what} is up (pid {server.proc.pid})")
        problems = gateway_problems(
            server, variant, self.requests.body_bytes, self.requests.json_headers
        )
        if variant == "redis" and not problems and redis is not None and not redis.has_keys():
            problems.append((f"the {what}", f"wrote no keys under {redis.prefix!r} in Redis"))
        for msg, problem in problems:
            if not self.opts.allow_errors:
                raise BenchError(
                    f"{msg}: {problem}\n--- {name} output ---\n{tail(server.log_path)}\n"
                    "(use --allow-errors to benchmark anyway)"
                )
            log(f"warning: {msg}: {problem}")
        return server

    def start_litellm(self, binary: Path, mock_port: int) -> tuple[Server, str | None]:
        """LiteLLM's proxy and its version, checked with both request kinds."""
        version = litellm_version(binary)
        port = free_port()
        log(
            f"starting LiteLLM {version or '(version unknown)'} on 127.0.0.1:{port} "
            f"(cpu {self._cpus(self.pin.gateway_cpus)}; takes ~10 s) ..."
        )
        server = start_litellm(
            binary,
            port,
            mock_port,
            self.requests.key,
            self.pin,
            self.workdir,
            self.children,
            self.opts.startup_timeout_s,
        )
        log(f"LiteLLM is up (pid {server.proc.pid})")
        check_litellm(server, self.requests.json_headers)
        return server, version

    def _cpus(self, cpus: str) -> str:
        return cpus if self.pin.enabled else "any"
