"""Runs a policy's guards: builds them once per policy, calls them in order, and owns what the
pipeline owns for every stage — timeouts, failures, metrics, trace spans and audit records.

Guards never call each other and never raise to the client themselves: a block becomes one
`ContentFiltered` error here; a crash or an overrun becomes `GuardUnavailable` (fail closed) or
a recorded `error` decision (fail open), as the policy's `on_error` says.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

from gateway.config.guards import GuardsConfig, guard_class
from gateway.errors import ContentFiltered, GuardUnavailable
from gateway.guards.base import Decision, Guard, GuardContext, Stage, Verdict

log = logging.getLogger("sluicegate.guards")

# (guard name, stage, decision, seconds): how the pipeline's metrics hear of each decision.
Observe = Callable[[str, Stage, Decision, float], None]
# A trace span per guard, or a no-op context.
SpanFor = Callable[[str], AbstractContextManager[Any]]


def build_guard(config: Any) -> Guard:
    """One guard from its validated config entry."""
    if config.type == "plugin":
        from gateway.guards.plugins import load_guard

        plugin: Guard = load_guard(config.path, dict(config.options), name=config.name)
        return plugin
    guard: Guard = guard_class(config.type)(config)
    return guard


class GuardSet:
    """The guards of one policy, input and output, ready to run."""

    def __init__(
        self,
        config: GuardsConfig,
        previous: GuardSet | None = None,
        upstreams: Mapping[str, Any] | None = None,
    ) -> None:
        self.config = config
        reuse: dict[Any, Guard | None] = dict(previous._by_config()) if previous else {}
        self.input: list[Guard] = [reuse.pop(_key(c), None) or build_guard(c) for c in config.input]
        self.output: list[Guard] = [
            reuse.pop(_key(c), None) or build_guard(c) for c in config.output
        ]
        self._configs = [*config.input, *config.output]
        self._warming: asyncio.Future[None] | None = None
        if upstreams is not None:
            self._bind(upstreams)

    def _bind(self, upstreams: Mapping[str, Any]) -> None:
        # Guards that call a backend (the moderation judge) get this policy's upstreams; again
        # on every reload, since the pools may have been rebuilt.
        bound = [g for g in [*self.input, *self.output] if hasattr(g, "bind_upstreams")]
        if not bound:
            return
        from gateway.guards.moderation.judge import judge_upstreams

        clients = judge_upstreams(upstreams)
        for guard in bound:
            guard.bind_upstreams(clients)

    def _by_config(self) -> dict[Any, Guard]:
        return {_key(c): g for c, g in zip(self._configs, [*self.input, *self.output], strict=True)}

    @property
    def restores(self) -> bool:
        return self.config.restore_pseudonyms

    async def start(self) -> None:
        """Warm up every guard that has something to load (models, analyzers), once; callers
        that come while it runs wait for the same warm-up."""
        if self._warming is None:
            self._warming = asyncio.ensure_future(self._warm_up())
        await asyncio.shield(self._warming)

    @property
    def warm(self) -> bool:
        return self._warming is not None and self._warming.done()

    async def _warm_up(self) -> None:
        for guard in [*self.input, *self.output]:
            start = getattr(guard, "start", None)
            if start is not None:
                await start()

    async def aclose(self) -> None:
        for guard in [*self.input, *self.output]:
            close = getattr(guard, "aclose", None)
            if close is not None:
                await close()

    def retired(self, successor: GuardSet | None) -> list[Guard]:
        """Guards of this set that `successor` does not reuse."""
        kept = {id(g) for g in [*successor.input, *successor.output]} if successor else set()
        return [g for g in [*self.input, *self.output] if id(g) not in kept]

    async def run(
        self,
        ctx: GuardContext,
        records: list[dict[str, Any]],
        observe: Observe | None = None,
        span_for: SpanFor | None = None,
    ) -> None:
        """Run the stage's guards in order; every decision lands in `records`.

        Raises ContentFiltered on the first block, GuardUnavailable when a guard fails and
        the policy fails closed.
        """
        guards = self.input if ctx.stage == "input" else self.output
        if not self.warm:
            # Models still loading: wait for them outside every guard's own timeout.
            await self.start()
        for guard in guards:
            started = time.perf_counter()
            try:
                if span_for is None:
                    decision = await self._check(guard, ctx)
                else:
                    with span_for(guard.name):
                        decision = await self._check(guard, ctx)
            except GuardUnavailable:
                decision = Decision(guard.name, Verdict.ALLOW, "error", "guard failed")
                records.append(decision.record(ctx.stage))
                if observe is not None:
                    observe(guard.name, ctx.stage, decision, time.perf_counter() - started)
                if self.config.on_error == "block":
                    raise
                continue
            records.append(decision.record(ctx.stage))
            if observe is not None:
                observe(guard.name, ctx.stage, decision, time.perf_counter() - started)
            if decision.blocked:
                raise blocked_error(decision, ctx.stage)

    async def _check(self, guard: Guard, ctx: GuardContext) -> Decision:
        try:
            async with asyncio.timeout(self.config.timeout_s):
                return await guard.check(ctx)
        except TimeoutError:
            log.warning("guard %s overran %.1fs", guard.name, self.config.timeout_s)
            raise GuardUnavailable(
                f"The guard '{guard.name}' did not decide in time; try again later."
            ) from None
        except Exception:
            log.exception("guard %s failed", guard.name)
            raise GuardUnavailable(f"The guard '{guard.name}' failed; try again later.") from None


def blocked_error(decision: Decision, stage: Stage) -> ContentFiltered:
    what = "request" if stage == "input" else "response"
    reason = f": {decision.reason}" if decision.reason else ""
    return ContentFiltered(f"The {what} was blocked by the guard '{decision.guard}'{reason}.")


def _key(config: Any) -> tuple[str, str]:
    return (type(config).__name__, config.model_dump_json())
