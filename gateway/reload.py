"""Reloads the policy on SIGHUP and when its file changes; a broken file never replaces a good one.

Editors replace files by rename, so the watch is on the folder, filtered to the policy's name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path

import watchfiles

from gateway.config.loader import PolicyError, load_policy
from gateway.config.schema import unauthenticated_exposure
from gateway.service import Gateway

log = logging.getLogger("sluicegate.reload")


class PolicyReloader:
    def __init__(self, gateway: Gateway, path: Path) -> None:
        self.gateway = gateway
        # Not resolved: a symlinked policy (a Kubernetes ConfigMap, `ln -sfn` deploys) is followed
        # anew on every reload instead of pinning the file it pointed to at start-up.
        self.path = path.absolute()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sighup = False

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, self.reload, "SIGHUP")
            self._sighup = True
        self._task = loop.create_task(self._watch())

    async def stop(self) -> None:
        self._stop.set()
        if self._sighup:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def reload(self, reason: str) -> bool:
        """Load the file and swap it in; on any problem keep the current policy and say why."""
        try:
            policy = load_policy(self.path, self.gateway.env)
        except PolicyError as exc:
            log.error("policy reload (%s) refused; the current policy stays:\n%s", reason, exc)
            return False
        exposed = unauthenticated_exposure(policy, self.gateway.bind_host)
        if exposed:
            log.error("policy reload (%s) refused; the current policy stays: %s", reason, exposed)
            return False
        if policy == self.gateway.policy:
            return False
        self.gateway.swap(policy)
        log.warning("policy reloaded from %s (%s)", self.path, reason)
        return True

    async def _watch(self) -> None:
        def is_policy(change: watchfiles.Change, path: str) -> bool:
            changed = Path(path)
            return changed == self.path or changed.resolve() == self.path.resolve()

        async for _changes in watchfiles.awatch(
            self.path.parent, watch_filter=is_policy, stop_event=self._stop, debounce=200
        ):
            try:
                self.reload("file changed")
            except Exception:
                # A bug here must not end the watch: later edits still deserve a reload.
                log.exception("policy reload failed unexpectedly; the current policy stays")
