"""Small guards written only against the public protocol, for the pipeline's own tests
(also loadable as plugins by dotted path, e.g. `tests.guards.sample_guards:WordGuard`)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from gateway.guards import (
    Decision,
    GuardBlocked,
    GuardContext,
    SlidingWindow,
    Span,
    Verdict,
    rewrite_all,
)


class WordGuard:
    """Redacts (or blocks) whole words, on requests, answers and streams."""

    def __init__(self, words: list[str], action: str = "redact", name: str = "words") -> None:
        self.name = name
        self.action = action
        self.pattern = re.compile(r"\b(?:" + "|".join(map(re.escape, words)) + r")\b", re.I)
        self.window = max(map(len, words)) + 1

    def scan(self, text: str) -> list[Span]:
        return [Span(m.start(), m.end(), "WORD") for m in self.pattern.finditer(text)]

    def _replacer(self, ctx: GuardContext) -> Any:
        def replace(text: str, span: Span) -> str:
            if self.action == "block":
                raise GuardBlocked(Decision.block(self.name, "a forbidden word", {"WORD": 1}))
            ctx.decisions.append(Decision(self.name, Verdict.MODIFY, "redact", None, {"WORD": 1}))
            return "[word]"

        return replace

    async def check(self, ctx: GuardContext) -> Decision:
        found = 0
        for slot in ctx.slots:
            spans = self.scan(slot.text)
            if spans and self.action == "block":
                return Decision.block(self.name, "a forbidden word", {"WORD": len(spans)})
            if spans:
                found += len(spans)
                ctx.replace(slot, rewrite_all(slot.text, self.scan, lambda t, s: "[word]"))
        if found:
            return Decision(self.name, Verdict.MODIFY, "redact", None, {"WORD": found})
        return Decision.allow(self.name)

    def stream_filter(self, ctx: GuardContext) -> SlidingWindow:
        return SlidingWindow(self.scan, self._replacer(ctx), self.window)


class ShoutGuard:
    """No stream filter: upper-cases whole texts (streams are held until each choice ends)."""

    name = "shout"

    async def check(self, ctx: GuardContext) -> Decision:
        for slot in ctx.slots:
            ctx.replace(slot, slot.text.upper())
        return (
            Decision(self.name, Verdict.MODIFY, "shout")
            if ctx.modified
            else Decision.allow(self.name)
        )


class SlowGuard:
    name = "slow"

    def __init__(self, seconds: float = 5.0) -> None:
        self.seconds = seconds

    async def check(self, ctx: GuardContext) -> Decision:
        await asyncio.sleep(self.seconds)
        return Decision.allow(self.name)


class BrokenGuard:
    name = "broken"

    async def check(self, ctx: GuardContext) -> Decision:
        raise RuntimeError("bug in a guard")


class NameGuard:
    """Pseudonymizes one name wherever it appears (input stage)."""

    name = "names"

    def __init__(self, person: str) -> None:
        self.person = person

    async def check(self, ctx: GuardContext) -> Decision:
        assert ctx.pseudonyms is not None
        for slot in ctx.slots:
            if self.person in slot.text:
                placeholder = ctx.pseudonyms.placeholder("PERSON", self.person)
                ctx.replace(slot, slot.text.replace(self.person, placeholder))
        if ctx.modified:
            return Decision(self.name, Verdict.MODIFY, "pseudonymize", None, {"PERSON": 1})
        return Decision.allow(self.name)
