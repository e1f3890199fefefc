"""The live gateway: holds the current runtime and swaps it atomically on reload.

Old upstream clients are closed only after in-flight requests had time to finish.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping

from gateway.audit.encryption import Keyring
from gateway.audit.writer import AuditWriter
from gateway.config.schema import Policy
from gateway.metrics import Metrics
from gateway.runtime import Closable, Runtime
from gateway.telemetry.tracing import Tracing

log = logging.getLogger("sluicegate")


class Gateway:
    def __init__(
        self, policy: Policy, env: Mapping[str, str] | None = None, bind_host: str | None = None
    ) -> None:
        self.env: Mapping[str, str] = os.environ if env is None else env
        self.bind_host = bind_host or policy.server.host
        self.runtime = Runtime(policy, self.env)
        # The audit log outlives reloads: its chain must continue. Changes need a restart.
        self.audit: AuditWriter | None = None
        if policy.audit is not None:
            key = self.env.get(policy.audit.hmac_key_env)
            if not key:
                log.warning(
                    "audit: %s is not set; segment seals will not be authenticated",
                    policy.audit.hmac_key_env,
                )
            encryption = policy.audit.encryption
            # The policy loader checked these variables; a different `env` is checked here.
            keys = (
                Keyring.from_env([name for _, name in encryption.key_envs()], self.env)
                if encryption is not None
                else None
            )
            self.audit = AuditWriter(policy.audit, key.encode() if key else None, keys)
        self.metrics = Metrics(self)
        # None unless the policy names a trace exporter: then nothing traces on the request path.
        self.tracing: Tracing | None = Tracing.from_config(policy.telemetry)
        # Clients retired by a swap, closed once in-flight requests had time to finish.
        self._retired: dict[asyncio.Task[None], list[Closable]] = {}
        self._warming: set[asyncio.Task[None]] = set()

    @property
    def policy(self) -> Policy:
        return self.runtime.policy

    def swap(self, policy: Policy) -> None:
        """Make `policy` current; requests already running keep the runtime they started with."""
        old = self.runtime
        if policy.server != old.policy.server:
            log.warning("policy reload: changes under 'server' take effect only after a restart")
        for section in ("audit", "telemetry"):
            if getattr(policy, section) != getattr(old.policy, section):
                log.warning(
                    "policy reload: changes under '%s' take effect only after a restart", section
                )
        self.runtime = Runtime(policy, self.env, previous=old)
        self._warm_guards(self.runtime)
        retired = old.retired(self.runtime)
        if retired:
            task = asyncio.get_running_loop().create_task(
                self._close_later(retired, old.policy.server.drain_timeout_s)
            )
            self._retired[task] = retired
            task.add_done_callback(self._retired.pop)

    async def _close_later(self, clients: list[Closable], delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        for client in clients:
            await client.aclose()

    async def start(self) -> None:
        if self.audit is not None:
            await self.audit.start()
        self.runtime.start()
        self._warm_guards(self.runtime)

    def _warm_guards(self, runtime: Runtime) -> None:
        """Load the guards' models in the background; a request that comes first waits for them."""
        if runtime.guards is not None:
            task = asyncio.get_running_loop().create_task(runtime.guards.start())
            self._warming.add(task)
            task.add_done_callback(self._warmed)

    def _warmed(self, task: asyncio.Task[None]) -> None:
        self._warming.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("guards failed to warm up: %s", task.exception())

    async def aclose(self) -> None:
        """Close every client, retired ones still waiting out their drain period included;
        write the audit records still queued and seal the audit segment."""
        if self.audit is not None:
            await self.audit.aclose()
        for warming in list(self._warming):
            warming.cancel()
        pending = list(self._retired.items())
        for task, _ in pending:
            task.cancel()
        for _, clients in pending:
            for client in clients:
                await client.aclose()
        await self.runtime.aclose()
        if self.tracing is not None:
            self.tracing.shutdown()
