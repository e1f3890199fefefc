"""One public model's routing: pick a target (weighted routes or an experiment's arm), then try
the chain (that target, then the fallbacks) until one answers.

On one backend, a failure worth retrying (refused, reset, connect timeout, 502/503/504) is
retried with jittered exponential backoff while `retries.attempts` and the retry budget allow;
other failures (500, read and total timeouts) and an exhausted backend move to the next target
of the chain. A client's own mistake (a relayed 4xx) ends the chain at once. A stream moves on
only before its first byte reached the client. The plain case (one target, one replica, no
breaker, fallback, shadow or experiment) costs one call more than calling the upstream.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import random
import time
from collections.abc import Sequence
from typing import Any

import httpx

from gateway.config.schema import Retries
from gateway.errors import GatewayError, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from gateway.routing.experiment import Split
from gateway.routing.pool import Replica
from gateway.routing.shadow import ShadowCopy, ShadowRunner
from gateway.routing.target import RouteSink, Selection, Target
from gateway.routing.tracked import TrackedReply
from gateway.upstream.builtin import BuiltinUpstream
from gateway.upstream.interface import Reply, Retryable


class Router:
    def __init__(
        self,
        public_model: str,
        targets: Sequence[tuple[Target, int]],
        fallback: Sequence[Target],
        shadow: ShadowRunner | None = None,
        split: Split | None = None,
        arm_targets: Sequence[Target] = (),
    ) -> None:
        self.public_model = public_model
        self.shadow = shadow
        self.split = split
        rest = tuple(fallback)

        def plain(chain: tuple[Target, ...]) -> bool:
            return len(chain) == 1 and chain[0].pool.single is not None and shadow is None

        self._selections = [Selection((t, *rest), plain=plain((t, *rest))) for t, _ in targets]
        self._cumulative = []
        total = 0
        for _, weight in targets:
            total += weight
            self._cumulative.append(total)
        self._total = total
        self._single = self._selections[0] if len(targets) == 1 else None
        self._arms: list[Selection] = []
        if split is not None:
            watched = split.canary is not None and split.canary.config.rollback is not None
            self._arms = [
                Selection(
                    (target, *rest),
                    split.name,
                    arm,
                    (b"x-sluice-arm", arm.encode()),
                    canary=watched and index == split.canary_index,
                )
                for index, (arm, target) in enumerate(zip(split.arms, arm_targets, strict=True))
            ]

    def targets(self) -> list[Target]:
        """Every target a request for this model may be sent to (shadows aside)."""
        chains = [s.chain for s in self._selections] + [s.chain for s in self._arms]
        return [target for chain in chains for target in chain]

    def select(
        self,
        user: str | None,
        key_id: str | None,
        headers: list[tuple[bytes, bytes]] | None,
        request_id: str,
    ) -> Selection:
        split = self.split
        if split is not None:
            key = split.key(user, key_id, headers, request_id)
            return self._arms[split.assign(key, time.monotonic())]
        if self._single is not None:
            return self._single
        at = bisect.bisect_right(self._cumulative, random.random() * self._total)
        return self._selections[min(at, len(self._selections) - 1)]

    async def open(
        self,
        path: str,
        body: bytes,
        request_id: str,
        traceparent: str | None,
        sink: RouteSink,
        selection: Selection,
        *,
        ask_usage: bool = False,
        streaming: bool = False,
    ) -> Reply:
        """An open 2xx reply from the first target of the chain that answers, else raises the
        last failure's error (a client's mistake at once)."""
        if selection.plain:
            target = selection.chain[0]
            replica = target.pool.single
            assert replica is not None
            sink.route = target.first_info
            budget = target.pool.budget
            if budget is not None:
                budget.sent()
            sent = target.body(body, ask_usage) if target.renames or ask_usage else body
            try:
                return await replica.upstream.open(path, sent, request_id, traceparent)
            except Retryable as failure:
                first_failure: GatewayError | None = failure.error
            # A retry goes through the general path below, which knows backoff and budgets.
        else:
            first_failure = None
        attempt = _Attempt(self, path, body, request_id, traceparent, sink, selection)
        return await attempt.run(ask_usage, streaming, first_failure)


class _Attempt:
    """The state of one request going down its chain (only off the fast path)."""

    __slots__ = (
        "attempts",
        "body",
        "path",
        "request_id",
        "router",
        "selection",
        "shadow",
        "sink",
        "started",
        "traceparent",
    )

    def __init__(
        self,
        router: Router,
        path: str,
        body: bytes,
        request_id: str,
        traceparent: str | None,
        sink: RouteSink,
        selection: Selection,
    ) -> None:
        self.router = router
        self.path = path
        self.body = body
        self.request_id = request_id
        self.traceparent = traceparent
        self.sink = sink
        self.selection = selection
        self.attempts = 0
        self.started = time.perf_counter()
        self.shadow: ShadowCopy | None = None

    async def run(
        self, ask_usage: bool, streaming: bool, first_failure: GatewayError | None
    ) -> Reply:
        runner = self.router.shadow
        if runner is not None and first_failure is None and runner.sample():
            self.shadow = self.sink.shadow = runner.start(
                self.path, self.body, self.request_id, streaming
            )
        try:
            reply = await self._chain(ask_usage, streaming, first_failure)
        except BaseException:
            if self.shadow is not None:
                self.shadow.primary_failed()
            raise
        return reply

    async def _chain(
        self, ask_usage: bool, streaming: bool, first_failure: GatewayError | None
    ) -> Reply:
        chain = self.selection.chain
        watched = self.selection.canary
        last: GatewayError | None = None
        unavailable: list[str] = []
        for position, target in enumerate(chain):
            pool = target.pool
            body = target.body(self.body, ask_usage)
            # A stream is checked for a first chunk while a fallback could still take over.
            peek = streaming and position < len(chain) - 1
            if position == 0 and first_failure is not None:
                self.attempts = 1
                last = first_failure
                outcome = await self._target(target, body, peek, 1, last)
            else:
                outcome = await self._target(target, body, peek, 0, None)
            if isinstance(outcome, _Opened):
                return self._finish(outcome, watched and position == 0)
            if isinstance(outcome, str):
                unavailable.append(outcome)
            else:
                last = outcome
            if watched and position == 0:
                split = self.router.split
                assert split is not None
                split.observe(time.monotonic(), False, (time.perf_counter() - self.started) * 1000)
            if position < len(chain) - 1:
                pool.failed_over += 1
        raise self._give_up(last, unavailable)

    async def _target(
        self,
        target: Target,
        body: bytes,
        peek: bool,
        done: int,
        last: GatewayError | None,
    ) -> _Opened | GatewayError | str:
        """Attempts on one backend: an open reply, the error that ended them, or why no
        replica could be tried at all."""
        pool = target.pool
        retries = pool.retries
        budget = pool.budget
        loop = asyncio.get_running_loop()
        deadline = loop.time() + target.total_s
        tried: set[int] = set()
        for attempt in range(done, retries.attempts):
            now = time.monotonic()
            if attempt == 0:
                if budget is not None:
                    budget.sent()
            else:
                if budget is not None and not budget.try_retry(now):
                    break
                delay = backoff_s(attempt, retries)
                if loop.time() + delay >= deadline:
                    break
                await asyncio.sleep(delay)
                pool.retried += 1
                now = time.monotonic()
            replica = pool.pick(now, tried)
            if replica is None:
                return last or f"backend '{pool.name}': {pool.unavailable_reason(now)}"
            self.attempts += 1
            self.sink.route = target.info(replica, self.attempts)
            tracks = pool.tracks_load
            if tracks:
                replica.outstanding += 1
            opened_at = time.perf_counter()
            try:
                reply = await replica.upstream.open(
                    self.path, body, self.request_id, self.traceparent, deadline
                )
                first = await _first_chunk(reply) if peek and _peekable(replica) else None
            except Retryable as failure:
                self._failed(replica, tracks)
                last = failure.error
                tried.add(replica.index)
                continue
            except UpstreamError as error:
                self._failed(replica, tracks)
                return error
            except BaseException:
                # A client's mistake relayed (the upstream works), or the request cancelled.
                replica.outcome(time.monotonic(), None)
                if tracks:
                    replica.outstanding -= 1
                raise
            now = time.monotonic()
            replica.outcome(now, True)
            replica.latency(now, (time.perf_counter() - opened_at) * 1000)
            return _Opened(reply, replica if tracks else None, first)
        return last or f"backend '{pool.name}': retry budget spent"

    def _failed(self, replica: Replica, tracks: bool) -> None:
        replica.outcome(time.monotonic(), False)
        if tracks:
            replica.outstanding -= 1

    def _finish(self, opened: _Opened, watched: bool) -> Reply:
        observe = None
        if watched:
            split = self.router.split
            assert split is not None
            observe = split.observe
        if opened.load is None and observe is None and self.shadow is None and opened.first is None:
            return opened.reply
        chunk, chunks = opened.first if opened.first is not None else (None, None)
        return TrackedReply(
            opened.reply, opened.load, observe, self.shadow, self.started, chunk, chunks
        )

    def _give_up(self, last: GatewayError | None, unavailable: list[str]) -> GatewayError:
        if last is not None:
            if len(self.selection.chain) > 1:
                tried = ", ".join(t.pool.name for t in self.selection.chain)
                last.message = f"{last.message} (model '{self.router.public_model}': tried {tried})"
            return last
        retry_in = [
            replica.breaker.retry_in_s(time.monotonic())
            for target in self.selection.chain
            for replica in target.pool.replicas
            if replica.breaker is not None
        ]
        waits = [w for w in retry_in if w > 0]
        headers = {"retry-after": str(max(1, math.ceil(min(waits))))} if waits else None
        return UpstreamUnavailable(
            f"No backend can take requests for model '{self.router.public_model}' now: "
            + "; ".join(unavailable),
            headers=headers,
        )


class _Opened:
    """A reply the chain opened, and what its end must report."""

    __slots__ = ("first", "load", "reply")

    def __init__(self, reply: Reply, load: Replica | None, first: tuple[bytes, Any] | None) -> None:
        self.reply = reply
        self.load = load
        self.first = first


def backoff_s(attempt: int, retries: Retries) -> float:
    """Full-jitter exponential backoff before retry number `attempt` (1 = the first retry)."""
    ceiling = min(retries.backoff_max_s, retries.backoff_initial_s * 2 ** (attempt - 1))
    return random.uniform(0.0, ceiling)


def _peekable(replica: Replica) -> bool:
    # The engine in-process already hands over a stream only with its first events in.
    return not isinstance(replica.upstream, BuiltinUpstream)


async def _first_chunk(reply: Reply) -> tuple[bytes, Any]:
    """Read a stream's first chunk before anything goes to the client, so a stream that fails
    before it starts can still move to a fallback."""
    chunks = reply.aiter_raw()
    try:
        async with asyncio.timeout_at(reply.deadline):
            return await anext(chunks), chunks
    except StopAsyncIteration:
        failure: UpstreamError = UpstreamError(
            f"Upstream '{reply.backend}' ended the stream before sending anything."
        )
    except (TimeoutError, httpx.TimeoutException):
        failure = UpstreamTimeout(f"Upstream '{reply.backend}' sent no stream in time.")
    except httpx.TransportError as exc:
        failure = UpstreamError(f"Upstream '{reply.backend}' broke the stream: {exc}")
    except BaseException:
        await reply.aclose()
        raise
    await reply.aclose()
    raise failure
