"""Timing: one guard's `check` on fresh messages, and the whole input pipeline on a chat.

Messages are made before a series starts, so only the guard (or the pipeline: slots, context
and every guard in order, as the gateway runs them) is inside the clock. Every message is new,
so a cache helps only where the run means it to: the chat's earlier turns.
"""

from __future__ import annotations

import gc
import sys
import time
from typing import Any

from tqdm import tqdm

from gateway.errors import ContentFiltered
from gateway.guards.base import GuardContext
from gateway.guards.texts import request_slots
from guardbench.corpus import Prose, conversation, user_body


def _context(body: dict[str, Any]) -> GuardContext:
    return GuardContext("input", request_slots(body), metadata={"request": body})


async def time_guard(
    guard: Any, bodies: list[dict[str, Any]], warmup: int, label: str
) -> list[float]:
    """Seconds per `check`, one fresh body each (the first `warmup` are not recorded)."""
    samples: list[float] = []
    gc.collect()
    for index, body in enumerate(
        tqdm(bodies, desc=label, unit="msg", file=sys.stderr, leave=False)
    ):
        ctx = _context(body)
        started = time.perf_counter()
        await guard.check(ctx)
        elapsed = time.perf_counter() - started
        if index >= warmup:
            samples.append(elapsed)
    return samples


def messages(seed: int, size_bytes: int, count: int) -> list[dict[str, Any]]:
    prose = Prose(seed * 1_000_003 + size_bytes)
    return [user_body(prose.message(size_bytes)) for _ in range(count)]


async def time_pipeline(
    guards: Any, bodies: list[dict[str, Any]], record_from: int
) -> tuple[list[float], int]:
    """Seconds per request through the pipeline's input stage, and how many it blocked.

    `record_from`: the first index recorded (the ones before warm it up, or fill its cache).
    """
    samples: list[float] = []
    blocked = 0
    gc.collect()
    for index, body in enumerate(bodies):
        started = time.perf_counter()
        try:
            await guards.run(_context(body), [])
        except ContentFiltered:
            blocked += 1
        elapsed = time.perf_counter() - started
        if index >= record_from:
            samples.append(elapsed)
    return samples, blocked


async def time_chats(guards: Any, seed: int, chats: int, turns: int) -> dict[str, Any]:
    """Each chat's turns 2..N through the pipeline, turn 1 filling its cache first.

    A fresh pipeline per chat is not needed: every chat's text is new, so its history is
    cached only by its own earlier turns, as in a real conversation.
    """
    samples: list[float] = []
    sizes: list[int] = []
    blocked = 0
    bar = tqdm(
        total=chats * turns,
        desc="pipeline, 20-turn chats",
        unit="turn",
        file=sys.stderr,
        leave=False,
    )
    for chat in range(chats):
        talk = conversation(Prose(seed * 7_919 + chat), turns)
        bodies = [talk.request(turn) for turn in range(1, turns + 1)]
        sizes += [sum(len(m["content"].encode()) for m in body["messages"]) for body in bodies[1:]]
        chat_samples, chat_blocked = await time_pipeline(guards, bodies, record_from=1)
        samples += chat_samples
        blocked += chat_blocked
        bar.update(turns)
    bar.close()
    return {"samples_s": samples, "request_bytes": sizes, "blocked": blocked}
