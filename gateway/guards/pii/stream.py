"""The PII guard on a stream: a sliding window scanned by the pattern recognizers only.

spaCy's NER costs milliseconds per hundred characters here, far too much to run on the event
loop for every streamed piece, so a stream is scanned by our secret rules and Presidio's
regex/checksum recognizers (email, phone, card, SSN, IBAN, IP, ...) called directly, without
Presidio's context-word boost: what needs NER (PERSON, LOCATION, NRP) or context to reach its
threshold is not caught in a stream; the whole-response `check` catches it.

Pieces are gathered until `MIN_SCAN_CHARS` have arrived before the window is scanned again,
so a stream of one-token pieces costs a scan per few tokens, not one per token. Neither that
nor the window changes what comes out: the same text as rewriting the whole answer at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.guards.base import Decision, GuardBlocked, GuardContext, StreamFilter, Verdict
from gateway.guards.pii.actions import replacement
from gateway.guards.pii.config import PIIAction
from gateway.guards.pii.detector import Detector
from gateway.guards.window import Replace, Scan, SlidingWindow, Span

MIN_SCAN_CHARS = 24


def pattern_scanner(detector: Detector, recognizers: Sequence[Any]) -> Scan:
    """A pure scanner over `recognizers` (Presidio pattern recognizers) and our secrets."""
    asked = [
        (recognizer, [e for e in recognizer.supported_entities if e in detector.presidio_types])
        for recognizer in recognizers
    ]

    def scan(text: str) -> list[Span]:
        proposed: list[Span] = []
        for recognizer, entities in asked:
            for result in recognizer.analyze(text, entities, None):
                proposed.append(Span(result.start, result.end, result.entity_type, result.score))
        return list(detector.detect(text, proposed))

    return scan


def stream_replacer(guard: str, detector: Detector, ctx: GuardContext, salt: bytes) -> Replace:
    """Rewrites one final span and records it in `ctx.decisions`; a `block` ends the stream."""

    def replace(text: str, span: Span) -> str:
        action = detector.action_of(span.label)
        categories, scores = {span.label: 1}, {span.label: span.score}
        if action is None:
            return text[span.start : span.end]
        if action is PIIAction.BLOCK:
            raise GuardBlocked(Decision.block(guard, f"found {span.label}", categories, scores))
        verdict = Verdict.ALLOW if action is PIIAction.FLAG else Verdict.MODIFY
        ctx.decisions.append(Decision(guard, verdict, action.value, None, categories, scores))
        value = text[span.start : span.end]
        return replacement(
            action, span.label, value, salt=salt, pseudonyms=ctx.pseudonyms, output=True
        )

    return replace


class Gathered:
    """A `StreamFilter` that passes pieces on to `inner` only in runs of `min_chars` or more."""

    __slots__ = ("_pending", "inner", "min_chars")

    def __init__(self, inner: StreamFilter, min_chars: int = MIN_SCAN_CHARS) -> None:
        self.inner = inner
        self.min_chars = min_chars
        self._pending = ""

    def feed(self, text: str) -> str:
        self._pending += text
        if len(self._pending) < self.min_chars:
            return ""
        pending, self._pending = self._pending, ""
        return self.inner.feed(pending)

    def flush(self) -> str:
        pending, self._pending = self._pending, ""
        return (self.inner.feed(pending) if pending else "") + self.inner.flush()


def pii_stream_filter(scan: Scan, replace: Replace, window: int) -> StreamFilter:
    return Gathered(SlidingWindow(scan, replace, window))
