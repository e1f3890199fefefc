"""Output guards on a stream: rewrites whole SSE events as they pass.

Each choice's text (and each of its tool calls' arguments) runs through a chain of filters —
the output guards' stream filters, then the pseudonym restorer — that may hold text back while a
match could still be forming. What they hold is let out when the choice finishes. A guard that
blocks ends the stream: the client gets the events before it, then a last chunk whose
`finish_reason` is `content_filter`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

from gateway.guards.base import (
    Decision,
    GuardBlocked,
    GuardContext,
    StreamFilter,
    StreamingGuard,
    TextSlot,
)
from gateway.guards.window import SlidingWindow, Span

_EVENT_END = re.compile(rb"\r?\n\r?\n")
_DATA = b"data: "

# A chain of filters: first the guards', then the restorer.
Chain = list[StreamFilter]
# Hears the text each choice sends, before pseudonyms are restored (what the audit may keep).
RecordText = Callable[[str], None]


class StreamBlocked(Exception):
    """The stream must end: `tail` is what still goes to the client before `[DONE]`."""

    def __init__(self, decision: Decision, tail: bytes) -> None:
        super().__init__(decision.reason or decision.guard)
        self.decision = decision
        self.tail = tail


class GuardedStream:
    """The transform `relay_stream` applies to whole events (see the module docstring)."""

    def __init__(
        self,
        guards: list[Any],
        ctx: GuardContext,
        restorer: Callable[[], StreamFilter] | None = None,
        record_text: RecordText | None = None,
    ) -> None:
        self.guards = guards
        self.ctx = ctx
        self.restorer = restorer
        self.record_text = record_text
        self._chains: dict[tuple[int, int], Chain] = {}
        self._restorers: dict[tuple[int, int], StreamFilter] = {}
        self._finished: set[int] = set()
        self._template: dict[str, Any] | None = None

    # -- relay_stream's interface ----------------------------------------------------------
    async def events(self, data: bytes) -> bytes:
        """Whole SSE events in, the same events with their texts filtered out."""
        out: list[bytes] = []
        pos = 0
        for match in _EVENT_END.finditer(data):
            event = data[pos : match.end()]
            pos = match.end()
            try:
                out.append(await self._event(event))
            except GuardBlocked as blocked:
                self._note(blocked.decision)
                tail = b"".join(out) + self._blocked_tail()
                raise StreamBlocked(blocked.decision, tail) from None
        if pos < len(data):
            out.append(data[pos:])
        return b"".join(out)

    async def finish(self) -> bytes:
        """At the upstream's `[DONE]`: what is still held, for choices that never finished."""
        pending = sorted({choice for choice, _ in self._chains} - self._finished)
        if not pending or self._template is None:
            return b""
        choices = []
        try:
            for index in pending:
                choice: dict[str, Any] = {"index": index, "delta": {}, "finish_reason": None}
                await self._flush_choice(index, choice)
                choices.append(choice)
        except GuardBlocked as blocked:
            self._note(blocked.decision)
            raise StreamBlocked(blocked.decision, self._blocked_tail()) from None
        return _event_bytes({**self._template, "choices": choices})

    def _note(self, decision: Decision) -> None:
        if not any(d is decision for d in self.ctx.decisions):
            self.ctx.decisions.append(decision)

    # -- one event -------------------------------------------------------------------------
    async def _event(self, event: bytes) -> bytes:
        if not event.startswith(_DATA + b"{"):
            return event
        try:
            chunk = orjson.loads(event[len(_DATA) :])
        except orjson.JSONDecodeError:
            return event
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        if not isinstance(choices, list) or not choices:
            return event
        if self._template is None:
            self._template = {k: v for k, v in chunk.items() if k not in ("choices", "usage")}
        for choice in choices:
            if isinstance(choice, dict):
                await self._choice(choice)
        return _event_bytes(chunk)

    async def _choice(self, choice: dict[str, Any]) -> None:
        index = choice.get("index", 0)
        index = index if isinstance(index, int) else 0
        delta = choice.get("delta")
        if isinstance(delta, dict):
            text = delta.get("content")
            if isinstance(text, str) and text:
                delta["content"] = self._feed((index, -1), text)
            for call in delta.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    key = (index, call.get("index", 0))
                    function["arguments"] = self._feed(key, function["arguments"])
        elif isinstance(choice.get("text"), str) and choice["text"]:
            choice["text"] = self._feed((index, -1), choice["text"])
        if choice.get("finish_reason") is not None:
            await self._flush_choice(index, choice)
            self._finished.add(index)

    def _feed(self, key: tuple[int, int], text: str) -> str:
        chain = self._chains.get(key)
        if chain is None:
            chain = self._chains[key] = [self._filter(g) for g in self.guards]
            if self.restorer is not None:
                self._restorers[key] = self.restorer()
        for step in chain:
            text = step.feed(text)
        return self._restore(key, text) if text else text

    async def _flush_choice(self, index: int, choice: dict[str, Any]) -> None:
        for key in [k for k in self._chains if k[0] == index]:
            rest = ""
            for step in self._chains[key]:
                if isinstance(step, WholeTextFilter):
                    rest = await step.aflush(rest)
                else:
                    rest = step.feed(rest) + step.flush() if rest else step.flush()
            rest = self._restore(key, rest)
            restorer = self._restorers.get(key)
            if restorer is not None:
                rest += restorer.flush()
            if rest:
                _append(choice, key[1], rest)

    def _restore(self, key: tuple[int, int], text: str) -> str:
        if key[1] == -1 and self.record_text is not None and text:
            self.record_text(text)
        restorer = self._restorers.get(key)
        return restorer.feed(text) if restorer is not None else text

    def _filter(self, guard: Any) -> StreamFilter:
        if isinstance(guard, StreamingGuard):
            return guard.stream_filter(self.ctx)
        return WholeTextFilter(guard, self.ctx)

    def _blocked_tail(self) -> bytes:
        template = self._template or {"object": "chat.completion.chunk"}
        indexes = sorted({choice for choice, _ in self._chains} - self._finished) or [0]
        choices = [{"index": i, "delta": {}, "finish_reason": "content_filter"} for i in indexes]
        return _event_bytes({**template, "choices": choices})


class WholeTextFilter:
    """For an output guard with no stream filter: holds the whole text and runs its check at the
    end. Safe, but the client sees nothing of that choice until the upstream finishes it."""

    def __init__(self, guard: Any, ctx: GuardContext) -> None:
        self.guard = guard
        self.ctx = ctx
        self._held: list[str] = []

    def feed(self, text: str) -> str:
        self._held.append(text)
        return ""

    def flush(self) -> str:
        raise TypeError("WholeTextFilter runs its guard's check: call aflush")

    async def aflush(self, rest: str) -> str:
        holder = {"text": "".join(self._held) + rest}
        self._held = []
        slot = TextSlot("stream", "content", "assistant", holder["text"], True, holder, "text")
        ctx = GuardContext(
            "output",
            [slot],
            model=self.ctx.model,
            principal=self.ctx.principal,
            request_id=self.ctx.request_id,
            pseudonyms=self.ctx.pseudonyms,
        )
        decision = await self.guard.check(ctx)
        self.ctx.decisions.append(decision)
        if decision.blocked:
            raise GuardBlocked(decision)
        return slot.text


# Which action names a stream's merged decision when a guard did several things.
_STRENGTH = {"flag": 1, "pseudonymize": 2, "mask": 3, "hash": 4, "redact": 5}


def merged_decisions(guards: list[Any], decisions: list[Decision]) -> list[Decision]:
    """One decision per output guard for a whole stream, from the many its filter made:
    a block wins; else the modifications' categories are summed and their scores maxed."""
    out: list[Decision] = []
    for guard in guards:
        mine = [d for d in decisions if d.guard == guard.name]
        blocked = next((d for d in mine if d.blocked), None)
        if blocked is not None:
            out.append(blocked)
            continue
        acted = [d for d in mine if d.action != "allow"]
        if not acted:
            out.append(Decision.allow(guard.name))
            continue
        strongest = max(acted, key=lambda d: _STRENGTH.get(d.action, 0))
        merged = Decision(guard.name, strongest.verdict, strongest.action, strongest.reason)
        for decision in acted:
            for category, count in decision.categories.items():
                merged.categories[category] = merged.categories.get(category, 0) + count
            for category, score in decision.scores.items():
                merged.scores[category] = max(score, merged.scores.get(category, 0.0))
        out.append(merged)
    return out


def _append(choice: dict[str, Any], tool: int, text: str) -> None:
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        choice["text"] = (choice.get("text") or "") + text
        return
    if tool == -1:
        delta["content"] = (delta.get("content") or "") + text
        return
    calls = delta.setdefault("tool_calls", [])
    for call in calls:
        if isinstance(call, dict) and call.get("index", 0) == tool:
            function = call.setdefault("function", {})
            function["arguments"] = (function.get("arguments") or "") + text
            return
    calls.append({"index": tool, "function": {"arguments": text}})


def _event_bytes(chunk: dict[str, Any]) -> bytes:
    return _DATA + orjson.dumps(chunk) + b"\n\n"


__all__ = ["GuardedStream", "SlidingWindow", "Span", "StreamBlocked", "merged_decisions"]
