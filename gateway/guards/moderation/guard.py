"""The `moderation` guard: scores text in OpenAI's moderation categories and blocks or flags it.

Three scorers, each optional: the built-in lexicon (lexicon.py), a local classifier and an LLM
judge. A category's score is the highest any of them gives. On input it reads user-controlled
text only (the deployment's system prompt may well describe what it forbids); on output, the
answer. Streams are checked by the lexicon through a sliding window, so a phrase split across
chunks is caught before any of it leaves the gateway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.guards.base import (
    Decision,
    GuardBlocked,
    GuardContext,
    Stage,
    StreamFilter,
    Verdict,
)
from gateway.guards.classifier import Classifier
from gateway.guards.moderation.categories import with_parents
from gateway.guards.moderation.config import ModerationConfig
from gateway.guards.moderation.judge import Judge, JudgeFailed
from gateway.guards.moderation.lexicon import Lexicon, default_lexicon
from gateway.guards.window import SlidingWindow, Span
from gateway.upstream.interface import Upstream

# Below this many characters the lexicon runs on the event loop: a thread hop costs more.
INLINE_CHARS = 4096


@dataclass(slots=True)
class ModerationResult:
    """Scores for one text (or one request's texts): category -> score, and what went wrong."""

    scores: dict[str, float] = field(default_factory=dict)
    # Hazard codes the judge named that map to no category (still unsafe).
    codes: list[str] = field(default_factory=list)
    # Why the judge could not answer, when it could not.
    judge_error: str | None = None

    def raise_to(self, scores: Mapping[str, float]) -> None:
        for category, value in scores.items():
            if value > self.scores.get(category, 0.0):
                self.scores[category] = value


class ModerationGuard:
    def __init__(
        self, config: ModerationConfig, upstreams: Mapping[str, Upstream] | None = None
    ) -> None:
        self.config = config
        self.name = config.name
        self.lexicon: Lexicon | None = default_lexicon() if config.lexicon else None
        self.classifier = Classifier(config.classifier) if config.classifier else None
        self.judge: Judge | None = None
        if upstreams is not None:
            self.bind_upstreams(upstreams)
        self._active = frozenset(config.categories)

    def bind_upstreams(self, upstreams: Mapping[str, Upstream]) -> None:
        """Connect the judge (if configured) to the runtime's backends: at construction, and
        again when a reload keeps this guard but builds new backends. Until then a configured
        judge counts as failed (its `on_error` applies)."""
        judge = self.config.judge
        if judge is None:
            return
        upstream = upstreams.get(judge.backend)
        if upstream is None:
            known = ", ".join(sorted(upstreams)) or "none"
            raise ValueError(
                f"moderation judge: unknown backend {judge.backend!r} (backends: {known})"
            )
        self.judge = Judge(judge, upstream)

    async def start(self) -> None:
        if self.classifier is not None:
            await self.classifier.start()

    async def assess(
        self, texts: list[str], stage: Stage = "input", request_id: str = ""
    ) -> ModerationResult:
        """All scorers over `texts` taken together (each category: the highest score)."""
        result = ModerationResult()
        texts = [text for text in texts if text.strip()]
        if not texts:
            return result
        if self.lexicon is not None:
            lexicon = self.lexicon
            if sum(map(len, texts)) <= INLINE_CHARS:
                per_text = [lexicon.score(text) for text in texts]
            else:
                per_text = await asyncio.to_thread(lambda: [lexicon.score(t) for t in texts])
            for scores in per_text:
                result.raise_to(scores)
        if self.classifier is not None:
            for scores in await self.classifier.scores(texts):
                result.raise_to(scores)
        judge = self.config.judge
        if judge is not None and max(result.scores.values(), default=0.0) >= judge.min_score:
            await self._ask_judge(result, "\n\n".join(texts), stage, request_id)
        result.scores = with_parents(result.scores)
        return result

    async def _ask_judge(
        self, result: ModerationResult, text: str, stage: Stage, request_id: str
    ) -> None:
        if self.judge is None:
            result.judge_error = "the judge is not connected to this gateway's backends"
            return
        try:
            verdict = await self.judge.assess(text, stage, f"{request_id or 'modr'}-judge")
        except JudgeFailed as failure:
            result.judge_error = str(failure)
            return
        if verdict.unsafe:
            mapped, unmapped = self.judge.categories(verdict)
            result.raise_to(dict.fromkeys(mapped, 1.0))
            result.codes = unmapped if (mapped or unmapped) else ["unsafe"]

    def flagged(self, result: ModerationResult) -> list[str]:
        """The active categories at or over their threshold, and any unmapped judge codes."""
        over = [
            category
            for category, score in result.scores.items()
            if category in self._active and score >= self.config.threshold_for(category)
        ]
        return sorted(over) + result.codes

    async def check(self, ctx: GuardContext) -> Decision:
        slots = ctx.texts(user_controlled_only=ctx.stage == "input")
        result = await self.assess([slot.text for slot in slots], ctx.stage, ctx.request_id)
        return self.decide(result)

    def decide(self, result: ModerationResult) -> Decision:
        scores = {c: round(v, 4) for c, v in sorted(result.scores.items()) if v > 0.0}
        judge = self.config.judge
        failure = result.judge_error
        if failure is not None and judge is not None and judge.on_error == "block":
            why = f"moderation judge unavailable (on_error: block): {failure}"
            return Decision.block(self.name, why, {"judge_error": 1}, scores)
        flagged = self.flagged(result)
        if not flagged:
            note = f"moderation judge unavailable (on_error: allow): {failure}" if failure else None
            return Decision(self.name, Verdict.ALLOW, "allow", note, scores=scores)
        categories = dict.fromkeys(flagged, 1)
        reason = "content flagged by moderation: " + ", ".join(flagged)
        if self.config.action == "block":
            return Decision.block(self.name, reason, categories, scores)
        return Decision(self.name, Verdict.ALLOW, "flag", reason, categories, scores)

    def stream_filter(self, ctx: GuardContext) -> StreamFilter:
        if self.lexicon is None:
            return _Unfiltered()
        tally = _StreamTally(self, self.lexicon, ctx)
        return SlidingWindow(self.lexicon.spans, tally.replace, self.config.stream_window_chars)


class _StreamTally:
    """Adds up the lexicon rules a stream has triggered; blocks (or records a flag) once the
    rules seen so far flag a category, exactly as they would on the whole text."""

    def __init__(self, guard: ModerationGuard, lexicon: Lexicon, ctx: GuardContext) -> None:
        self.guard = guard
        self.lexicon = lexicon
        self.ctx = ctx
        self.rules: set[str] = set()
        self.recorded: int | None = None

    def replace(self, text: str, span: Span) -> str:
        matched = text[span.start : span.end]
        new = set(span.label.split(",")) - self.rules
        if not new:
            return matched
        self.rules |= new
        decision = self.guard.decide(ModerationResult(self.lexicon.scores(self.rules)))
        if decision.blocked:
            raise GuardBlocked(decision)
        if decision.action == "flag":
            if self.recorded is None:
                self.recorded = len(self.ctx.decisions)
                self.ctx.decisions.append(decision)
            else:
                self.ctx.decisions[self.recorded] = decision
        return matched


class _Unfiltered:
    """The stream filter of a guard with nothing to check on streams (no lexicon)."""

    def feed(self, text: str) -> str:
        return text

    def flush(self) -> str:
        return ""
