"""The keyword filter guard: blocks or redacts configured keywords and regexes.

Works on requests (input), whole answers and streams (output); a stream is filtered through a
`SlidingWindow`, so a term split across chunks is still caught before any of it leaves.
Written only against `gateway.guards`, the public guard protocol.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.guards import (
    Decision,
    GuardBlocked,
    GuardContext,
    SlidingWindow,
    Span,
    StreamFilter,
    Verdict,
)

from .matcher import Matcher, rewrite


class KeywordFilterConfig(BaseModel):
    """The plugin's `options` in the policy (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "keyword_filter"
    # Literal terms, matched as whole words unless `whole_words` is off; labelled "keyword".
    keywords: tuple[str, ...] = ()
    # Regular expressions by label: {ticket: "TCK-\\d{6}"}.
    patterns: dict[str, str] = Field(default_factory=dict)
    action: Literal["block", "redact"] = "block"
    # What a redacted match becomes; "{label}" is replaced by the term's label.
    replacement: str = "[REDACTED]"
    case_sensitive: bool = False
    whole_words: bool = True
    # The longest text a pattern can match: how much of a stream is held back.
    max_match_chars: int = Field(64, ge=1, le=4096)
    # Skip system and developer messages (the deployment's own text) on input.
    user_controlled_only: bool = True

    @field_validator("keywords")
    @classmethod
    def _no_empty_keywords(cls, keywords: tuple[str, ...]) -> tuple[str, ...]:
        if any(not word.strip() for word in keywords):
            raise ValueError("keywords must not be empty or blank")
        return keywords

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, patterns: dict[str, str]) -> dict[str, str]:
        for label, pattern in patterns.items():
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {label!r} is not a valid regex: {exc}") from None
            if compiled.fullmatch(""):
                raise ValueError(f"pattern {label!r} matches the empty string")
        return patterns

    @model_validator(mode="after")
    def _has_terms(self) -> KeywordFilterConfig:
        if not self.keywords and not self.patterns:
            raise ValueError("give at least one of `keywords` or `patterns`")
        return self


class KeywordFilterGuard:
    """Blocks or redacts the configured terms (see KeywordFilterConfig)."""

    # The plugin loader validates the policy's options with this model.
    config_model = KeywordFilterConfig

    def __init__(self, config: KeywordFilterConfig) -> None:
        self.config = config
        self.name = config.name
        self.matcher = Matcher.build(
            config.keywords,
            config.patterns,
            case_sensitive=config.case_sensitive,
            whole_words=config.whole_words,
        )
        self.window = max([config.max_match_chars, *map(len, config.keywords)])

    async def check(self, ctx: GuardContext) -> Decision:
        counts: dict[str, int] = {}
        for slot in ctx.texts(user_controlled_only=self.config.user_controlled_only):
            spans = self.matcher.scan(slot.text)
            if not spans:
                continue
            for span in spans:
                counts[span.label] = counts.get(span.label, 0) + 1
            if self.config.action == "block":
                return Decision.block(
                    self.name, f"{slot.path} contains a filtered {_labels(spans)}", counts
                )
            ctx.replace(slot, rewrite(slot.text, spans, self.config.replacement))
        if counts:
            return Decision(self.name, Verdict.MODIFY, "redact", categories=counts)
        return Decision.allow(self.name)

    def stream_filter(self, ctx: GuardContext) -> StreamFilter:
        return SlidingWindow(self.matcher.scan, _StreamAction(self, ctx).replace, self.window)


class _StreamAction:
    """What a match in a stream becomes; keeps one decision per stream in `ctx.decisions`."""

    def __init__(self, guard: KeywordFilterGuard, ctx: GuardContext) -> None:
        self.guard = guard
        self.ctx = ctx
        self.decision: Decision | None = None

    def replace(self, text: str, span: Span) -> str:
        name = self.guard.name
        if self.guard.config.action == "block":
            reason = f"the response contains a filtered {span.label}"
            raise GuardBlocked(Decision.block(name, reason, {span.label: 1}))
        if self.decision is None:
            self.decision = Decision(name, Verdict.MODIFY, "redact")
            self.ctx.decisions.append(self.decision)
        categories = self.decision.categories
        categories[span.label] = categories.get(span.label, 0) + 1
        return self.guard.config.replacement.replace("{label}", span.label)


def _labels(spans: list[Span]) -> str:
    return ", ".join(sorted({span.label for span in spans}))
