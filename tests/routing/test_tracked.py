"""A tracked reply reports its end exactly once: in-flight count back down, the canary told
whether the upstream answered in full, the shadow given the primary's bytes; a client that went
away is no verdict."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.routing.tracked import TrackedReply


class FakeReply:
    backend = "up"
    content_type = "text/event-stream"

    def __init__(self, chunks: list[bytes], fail: Exception | None = None, hold: bool = False):
        self.deadline = 0.0
        self.chunks = chunks
        self.fail = fail
        self.hold = hold
        self.closed = 0

    async def read(self) -> bytes:
        if self.fail is not None:
            raise self.fail
        return b"".join(self.chunks)

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.hold:
            await asyncio.Event().wait()
        if self.fail is not None:
            raise self.fail

    async def aclose(self) -> None:
        self.closed += 1


class Load:
    outstanding = 1


class Shadow:
    def __init__(self) -> None:
        self.answered: list[Any] = []
        self.failed = 0

    def primary_answered(self, body: bytes | None) -> None:
        self.answered.append(body)

    def primary_failed(self) -> None:
        self.failed += 1


def tracked(reply: FakeReply) -> tuple[TrackedReply, Load, list[bool], Shadow]:
    load, verdicts, shadow = Load(), [], Shadow()
    observe = lambda now, ok, latency_ms: verdicts.append(ok)  # noqa: E731
    return TrackedReply(reply, load, observe, shadow, 0.0), load, verdicts, shadow  # type: ignore[arg-type]


async def test_a_whole_stream_is_a_success_and_its_bytes_go_to_the_shadow() -> None:
    reply = FakeReply([b"a", b"b"])
    wrapped, load, verdicts, shadow = tracked(reply)
    assert [chunk async for chunk in wrapped.aiter_raw()] == [b"a", b"b"]
    await wrapped.aclose()
    await wrapped.aclose()  # once only
    assert (load.outstanding, verdicts, shadow.answered, reply.closed) == (0, [True], [b"ab"], 1)


async def test_a_stream_left_at_done_is_a_success() -> None:
    wrapped, load, verdicts, shadow = tracked(FakeReply([b"a", b"b", b"c"]))
    chunks = wrapped.aiter_raw()
    assert await anext(chunks) == b"a"
    await wrapped.aclose()  # the relay stops reading after [DONE]
    assert (load.outstanding, verdicts, shadow.answered) == (0, [True], [b"a"])


async def test_a_broken_stream_is_a_failure() -> None:
    wrapped, load, verdicts, shadow = tracked(FakeReply([b"a"], fail=ConnectionError("reset")))
    with pytest.raises(ConnectionError):
        async for _ in wrapped.aiter_raw():
            pass
    await wrapped.aclose()
    assert (load.outstanding, verdicts, shadow.failed) == (0, [False], 1)


async def test_a_client_that_went_away_is_no_verdict() -> None:
    wrapped, load, verdicts, shadow = tracked(FakeReply([b"a"], hold=True))

    started = asyncio.Event()

    async def relay() -> None:
        try:
            async for _ in wrapped.aiter_raw():
                started.set()
        finally:
            await wrapped.aclose()

    task = asyncio.ensure_future(relay())
    await started.wait()  # the first chunk went out; the upstream holds the rest
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (load.outstanding, verdicts, shadow.failed) == (0, [], 1)


async def test_a_whole_answer_read_or_failed() -> None:
    wrapped, _, verdicts, shadow = tracked(FakeReply([b"{}"]))
    assert await wrapped.read() == b"{}"
    await wrapped.aclose()
    broken, _, broken_verdicts, broken_shadow = tracked(FakeReply([], fail=TimeoutError()))
    with pytest.raises(TimeoutError):
        await broken.read()
    await broken.aclose()
    assert (verdicts, shadow.answered, broken_verdicts, broken_shadow.failed) == (
        [True],
        [b"{}"],
        [False],
        1,
    )
